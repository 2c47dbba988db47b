"""The ``augkit`` command: a thin Click layer over the library.

Each command parses its options, calls the library, and reports. Nothing here imports
albumentations, NumPy or OpenCV at module level, so ``augkit --help`` answers at once.
Library errors (:class:`augkit.core.errors.AugkitError`) become one line on stderr and their
exit code: 2 for bad usage, 1 for a failure; a traceback means a bug in augkit.

One exit-code rule for every command that reads a dataset: 0 when it produced something
usable (bad images are rows in its report, not failures of the run); 1 when it produced
nothing usable (every input failed, every worker crashed), or with ``--strict`` when any
input failed; 2 for bad usage; 130 after Ctrl-C.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading


def _ctrl_c_while_starting(signum, frame) -> None:
    sys.stderr.write("\ninterrupted\n")
    raise SystemExit(130)  # nothing has run yet: nothing to clean up or resume


# A Ctrl-C while the command's modules import (click, the commands: a tenth of a second)
# printed a KeyboardInterrupt traceback from inside an import. Until they are in, it exits
# with the one line every command prints. Only where Python's own handler is in place:
# a program that imports augkit.cli keeps its own.
_STARTING = threading.current_thread() is threading.main_thread() and \
    signal.getsignal(signal.SIGINT) is signal.default_int_handler
if _STARTING:
    signal.signal(signal.SIGINT, _ctrl_c_while_starting)

import click  # noqa: E402

from augkit._version import __version__
from augkit.core.errors import AugkitError


class _Failure(click.ClickException):
    """A library error shown as ``Error: <message>`` with the error's own exit code."""

    def __init__(self, error: AugkitError):
        super().__init__(error.cli or str(error))
        self.exit_code = error.exit_code


class AugkitGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AugkitError as error:
            raise _Failure(error) from None
        except KeyboardInterrupt:  # commands with something to resume say so themselves
            click.echo("\ninterrupted", err=True)
            ctx.exit(130)
        except OSError as error:
            if error.errno not in _ENVIRONMENT_FIXES:
                raise  # not the machine's state: a bug, which deserves its traceback
            raise _Failure(AugkitError(environment_message(error))) from None


# The machine's state, not augkit's: one line naming the file and what to do. Files are
# written whole or not at all, so rerunning the same command afterwards finishes the job.
_ENVIRONMENT_FIXES = {
    errno.ENOSPC: "free some space and rerun the same command: complete files are kept",
    errno.EDQUOT: "free some of your quota and rerun the same command: complete files are kept",
    errno.EROFS: "the filesystem is read-only: write to another folder",
    errno.EACCES: "permission denied: write to a folder you can write to",
    errno.EPERM: "not permitted: write to a folder you can write to",
    errno.EIO: "the disk reported an I/O error: check it, then rerun the same command",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or use fewer --workers",
}


def environment_message(error: OSError) -> str:
    where = os.fsdecode(error.filename) if error.filename is not None else "writing"
    return f"{where}: {error.strerror or error}; {_ENVIRONMENT_FIXES[error.errno]}"


@click.group(cls=AugkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="augkit")
def cli() -> None:
    """Augment and prepare image-classification datasets.

    Write a recipe (YAML) once, look at it with `augkit preview`, then use it to
    multiply a dataset on disk, feed training batches, or cache backbone features.
    """


def _register() -> None:
    from augkit.cli import augment as augment_cmd
    from augkit.cli import features as features_cmd
    from augkit.cli import head as head_cmd
    from augkit.cli import predict as predict_cmd
    from augkit.cli import preview as preview_cmd
    from augkit.cli import recipe as recipe_cmd
    from augkit.cli import split as split_cmd
    from augkit.cli import stats as stats_cmd
    from augkit.cli import stream as stream_cmd

    cli.add_command(recipe_cmd.recipe)
    cli.add_command(recipe_cmd.transforms)
    cli.add_command(preview_cmd.preview)
    cli.add_command(augment_cmd.augment)
    cli.add_command(features_cmd.cache_features)
    cli.add_command(features_cmd.backbones)
    cli.add_command(head_cmd.train_head)
    cli.add_command(predict_cmd.predict)
    cli.add_command(stats_cmd.stats)
    cli.add_command(split_cmd.split)
    cli.add_command(stream_cmd.stream)


_register()
if _STARTING:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    from augkit.core._albu import defer_torch_bridge

    defer_torch_bridge()  # this process never needs torch: see augkit/_albu.py
    cli(prog_name="augkit")
