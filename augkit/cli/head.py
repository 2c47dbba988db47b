"""``augkit train-head CACHE -o HEAD``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from augkit.cli import options


def _values(ctx, param, value):
    """``--C 0.1,1,10`` -> floats."""
    if value is None:
        return None
    try:
        found = tuple(float(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {value!r}") from None
    if not found:
        raise click.BadParameter("give at least one value")
    return found


@click.command("train-head")
@click.argument("cache", callback=options.not_empty)
@click.option("-o", "--out", "head", required=True, metavar="HEAD", callback=options.not_empty,
              help="Folder for the head: model.onnx, metrics.json, confusion.png, head.npz, classes.txt.")
@click.option("--val", default=None, metavar="CACHE",
              help="Validate on this feature cache (e.g. the val split, made without a recipe).")
@click.option("--val-fraction", type=float, default=None, metavar="F",
              help="Without --val: validate on this fraction of each class's images, held out with all their "
                   "views (default 0.2; 0 trains on everything).")
@click.option("--C", "c_values", callback=_values, default=None, metavar="C1,C2,...",
              help="Inverse L2 strength, scikit-learn's C; several values: the one best on validation is kept "
                   "(default 0.01,0.1,1,10; 1 without validation).")
@click.option("--balanced", is_flag=True, help="Weigh classes by the inverse of their row counts (imbalanced data).")
@click.option("--max-iter", type=click.IntRange(min=1), default=1000, show_default=True,
              help="L-BFGS iterations per C at most.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which images --val-fraction holds out.")
@click.option("--weights", default=None, metavar="PATH",
              help="The backbone's ONNX file, when it is not where cache-features found it.")
@click.option("--mirror", default=None, metavar="URL", help="Download a registry backbone's weights from this base URL.")
@click.option("--overwrite", is_flag=True, help="Replace a HEAD made from another cache or with other settings.")
@options.quiet
@options.json_output
def train_head(cache, head, val, val_fraction, c_values, balanced, max_iter, seed, weights, mirror, overwrite, quiet,
               as_json) -> None:
    """Train a linear softmax classifier on a feature cache (from `augkit cache-features`).

    Every cached view is a training row. Validation images are those of --val CACHE, or
    --val-fraction of each class's images held out (all their views), never rows. HEAD gets
    model.onnx (backbone + head + softmax, preprocessing inside: uint8 RGB in, class
    probabilities out), metrics.json, confusion.png, head.npz and classes.txt.
    """
    from augkit.core.progress import shows_progress
    from augkit.stages.head import HeadOptions
    from augkit.stages.head import train_head as run

    opts = HeadOptions(C=c_values, balanced=balanced, seed=seed, val_fraction=val_fraction, max_iter=max_iter)
    summary = run(cache, head, val=val, options=opts, weights=weights, mirror=mirror, overwrite=overwrite,
                  progress=shows_progress(quiet))
    for note in summary.notes:
        click.echo(note, err=True)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
        return
    judged = (f"val accuracy {summary.val_accuracy:.3f} on {summary.val_images} images"
              if summary.val_accuracy is not None else "no validation images")
    tried = f", best of {len(summary.search)}" if len(summary.search) > 1 else ""
    model = Path(head) / "model.onnx"  # head/ or head// print as head/model.onnx
    click.echo(f"{len(summary.classes)} classes, {summary.train_rows} rows of {summary.train_images} images: "
               f"train accuracy {summary.train_accuracy:.3f}, {judged} (C={summary.C:g}{tried}) -> {model} "
               f"({summary.seconds:.1f} s)")
