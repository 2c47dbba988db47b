"""``augkit stream RECIPE SRC``: training batches on stdout, for a training script in a pipe."""

from __future__ import annotations

import os
import sys

import click

from augkit.cli import options
from augkit.core.errors import AugkitError


def parse_size(value: str | None) -> tuple[int, int] | None:
    """``--size 224``, ``224,160`` or ``224x160``: the text split into numbers, checked by the
    library's one rule (:func:`augkit.stages.preprocess.parse_size`)."""
    from augkit.core.errors import UsageError
    from augkit.stages.preprocess import parse_size as final_size

    if value is None:
        return None
    parts = [p for p in value.lower().replace("x", ",").split(",") if p.strip()]
    try:
        return final_size(int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts))
    except (ValueError, UsageError):
        raise click.BadParameter(f"{value!r}: give one size (224) or height,width (224,160)", param_hint="--size") \
            from None


@click.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.argument("src")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--shuffle/--no-shuffle", default=True, show_default=True, help="A new order every epoch.")
@click.option("--epochs", type=click.IntRange(min=0), default=1, show_default=True, help="0 = forever.")
@click.option("--size", default=None, metavar="H[,W]", help="Final size of every sample (resized after the recipe).")
@click.option("--preprocess", type=click.Choice(["none", "tf", "torch", "caffe"]), default="none", show_default=True,
              help="none: uint8; tf: [-1,1]; torch: ImageNet mean/std; caffe: BGR minus means.")
@click.option("--channels-first", is_flag=True, help="NCHW instead of NHWC.")
@click.option("--drop-last", is_flag=True, help="Drop the last, smaller batch of each epoch.")
@click.option("--balance", is_flag=True, help="Draw every class equally often each epoch.")
@click.option("--mixup", type=click.FloatRange(min=0), default=0.0, metavar="ALPHA",
              help="MixUp with lam ~ Beta(ALPHA, ALPHA) (timm: 0.8); 0 = off. y becomes soft targets.")
@click.option("--cutmix", type=click.FloatRange(min=0), default=0.0, metavar="ALPHA",
              help="CutMix with lam ~ Beta(ALPHA, ALPHA) (timm: 1.0); 0 = off. y becomes soft targets.")
@click.option("--mix-prob", type=click.FloatRange(0, 1), default=1.0, show_default=True, metavar="P",
              help="Probability that a batch is mixed at all.")
@click.option("--switch-prob", type=click.FloatRange(0, 1), default=0.5, show_default=True, metavar="P",
              help="With both: probability of CutMix rather than MixUp.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              metavar="S",
              help="Smoothed soft targets (timm: 0.1).")
@click.option("--one-hot", is_flag=True, help="One-hot targets (batch, classes) without mixing: validation batches "
                                              "for a soft-target loss.")
@options.workers
@options.seed
@options.split
@options.label_key
@options.max_pixels
@options.exact_decode
def stream(recipe_path, src, batch_size, shuffle, epochs, size, preprocess, channels_first, drop_last, balance, mixup,
           cutmix, mix_prob, switch_prob, label_smoothing, one_hot, workers, seed, split, label_key, max_pixels,
           exact_decode) -> None:
    """Write augmented batches of SRC to stdout as .npy arrays, x then y per batch.

    y holds class indices (classes sorted by name; -1 for unlabelled images), or with
    --mixup, --cutmix or --label-smoothing, soft targets: float32 (batch, classes); with
    --one-hot, one-hot rows.
    Read the batches with augkit:

    \b
        import sys, augkit
        for x, y in augkit.read_stream(sys.stdin.buffer):
            ...

    or with NumPy alone. np.load and a bare read_array(f) need a seekable file, and a
    pipe is not one: the Pipe wrapper makes NumPy read through .read().

    \b
        import sys, numpy as np
        class Pipe:
            def __init__(self, f): self.read = f.read
        f = sys.stdin.buffer
        while f.peek(1):
            x = np.lib.format.read_array(Pipe(f)); y = np.lib.format.read_array(Pipe(f))
    """
    if sys.stdout is None:  # started with stdout closed (>&-)
        raise AugkitError("stdout is closed; pipe the stream into a program (augkit stream ... | python train.py)")
    if sys.stdout.isatty():
        raise click.UsageError("stdout is a terminal; pipe the stream into a program (augkit stream ... | python train.py)")
    from augkit.stages.batches import flow

    batches = flow(options.source(src, label_key), recipe_path, batch_size=batch_size, shuffle=shuffle, seed=seed,
                   epochs=epochs or None, workers=workers, size=parse_size(size), preprocess=None if preprocess == "none" else preprocess,
                   channels_first=channels_first, drop_last=drop_last, split=split, max_pixels=max_pixels,
                   balance=balance, mixup=mixup, cutmix=cutmix, mix_prob=mix_prob, switch_prob=switch_prob,
                   label_smoothing=label_smoothing, one_hot=one_hot, reduced_decode=not exact_decode)
    for note in batches.notes:
        click.echo(f"note: {note}", err=True)
    told = len(batches.notes)
    written = _write(batches)
    for note in batches.notes[told:]:
        click.echo(f"note: {note}", err=True)
    for failure in batches.failures:
        click.echo(f"skipped: {failure['message']}", err=True)
    if not written:
        raise _nothing_written(batches, batch_size)


def _write(batches) -> int:
    """Write every batch to stdout and stop the workers; the number of batches written."""
    from augkit.stages.stream import StreamWriteError, write_stream

    try:
        return write_stream(batches, sys.stdout.buffer)
    except BrokenPipeError:
        # The reader went away (head, a script that stopped): stop quietly. The finally
        # below stops the workers.
        _forget_stdout()
        sys.exit(0)
    except StreamWriteError as exc:  # stdout full, or not open for writing
        _forget_stdout()
        raise AugkitError(f"cannot write the stream to stdout: {exc}") from None
    finally:  # Ctrl-C too: the group prints its one line and exits 130
        batches.close()


def _nothing_written(batches, batch_size: int) -> Exception:
    """The error for a run that wrote no batch: every image failed, or too few for one."""
    from collections import Counter

    from augkit.cli.report import nothing_usable

    if batches.failures:
        return nothing_usable("no batch was written: every image failed",
                              dict(Counter(f["reason"] for f in batches.failures)), "the lines above")
    return click.UsageError(f"no batch was written: {len(batches)} batches per epoch "
                            f"(fewer images than --batch-size {batch_size} with --drop-last?)")


def _forget_stdout() -> None:
    # What is still buffered for stdout cannot be written; point stdout at /dev/null so
    # that the interpreter's final flush does not fail again (a second message, exit 120).
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
