"""Exceptions that carry a one-line message for the user.

The CLI turns them into ``Error: <message>`` and their exit code; the library raises
them so that scripts get the same words, except where the fix is an option: then the
error carries the command line's words too (``cli=``: ``--split train`` where Python
reads ``split='train'``), which the CLI shows instead. A per-sample problem (a bad image in a dataset)
never reaches the user as an exception: its task raises a :class:`SampleError`, which
becomes a row with a reason (:mod:`augkit.core.failures`), and the run goes on.
"""


class SampleError(Exception):
    """One sample (one image) cannot be used; ``reason`` says why, as a code a run counts.

    Raised inside a task for that sample alone: :func:`augkit.core.failures.failure_row`
    makes it a row and the run goes on. :class:`augkit.input.decode_error.DecodeError` is one.
    """

    reason: str


class AugkitError(Exception):
    """A failure the user can act on; exit code 1. ``cli``: the message in the command
    line's words, where its fix is spelled differently there (None: the same words)."""

    exit_code = 1
    cli: str | None = None

    def __init__(self, *args: object, cli: str | None = None):
        super().__init__(*args)
        self.cli = cli


class UsageError(AugkitError):
    """Bad usage: a wrong argument, path or option combination; exit code 2."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe that cannot be built as written. The message names file, line and fix."""
