"""``augkit augment RECIPE SRC OUT``: write K augmented copies of every image."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from augkit.cli import options
from augkit.cli.report import nothing_usable, report_failures


@click.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.argument("src", callback=options.not_empty)
@click.argument("out", callback=options.not_empty)
@click.option("-k", "--copies", type=click.IntRange(min=0), default=None,
              help="Augmented copies per input image.  [default: 1]")
@click.option("--balance", "--per-class", "balance", type=click.IntRange(min=1), default=None, metavar="N",
              help="Instead of --copies: N outputs for every class, copies spread evenly over its images "
                   "(originals counted with --include-original).")
@options.workers
@options.seed
@click.option("--include-original", is_flag=True, help="Also write each original (decoded, re-encoded) as <stem>_orig.")
@click.option("--format", "fmt", type=click.Choice(["jpg", "png", "webp"]), default="jpg", show_default=True,
              help="Output image format.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier run in OUT made with other settings (only the files it wrote are removed).")
@click.option("--strict", is_flag=True, help="Exit 1 if any input failed.")
@click.option("--output-format", type=click.Choice(["files", "webdataset"]), default="files", show_default=True,
              help="files: an image file per output; webdataset: tar shards OUT/shard-000000.tar, ...")
@click.option("--shard-size", default=None, metavar="N|SIZE",
              help="With --output-format webdataset: samples per shard (1000), or a size (100MB).  [default: 1000]")
@options.label_key
@options.split
@options.max_pixels
@options.exact_decode
@options.engine
@options.ray_address
@options.quiet
@options.json_output
def augment(recipe_path, src, out, copies, balance, workers, seed, include_original, fmt, quality, overwrite, strict,
            output_format, shard_size, label_key, split, max_pixels, exact_decode, engine, ray_address, quiet,
            as_json) -> None:
    """Write COPIES augmented versions of every image in SRC to OUT (or, with --balance
    N, N outputs for every class).

    SRC is a folder of class folders, a flat folder, a CSV manifest (path, label), or
    WebDataset tar shards (a .tar, a folder of them, or data/shard-{000000..000099}.tar).
    OUT mirrors the class layout (or holds tar shards, with --output-format webdataset)
    and gets manifest.csv, failures.csv and summary.json.
    Rerunning the same command after an interruption writes only what is missing.
    """
    from augkit.core.progress import shows_progress
    from augkit.stages.augment import AugmentOptions
    from augkit.stages.augment import augment as run

    # The recipe is loaded inside run(), after the engine has started its workers, so
    # that the two imports of albumentations (here and in the workers) overlap.
    if balance is not None and copies is not None:
        raise click.UsageError("--balance chooses the copies of every image; drop --copies (or --balance)")
    opts = AugmentOptions(copies=1 if copies is None else copies, seed=seed, include_original=include_original,
                          fmt=fmt, quality=quality, max_pixels=max_pixels, balance=balance,
                          reduced_decode=not exact_decode)
    try:
        summary = run(recipe_path, options.source(src, label_key), out, options=opts, workers=workers,
                      overwrite=overwrite, split=split, engine=engine,
                      engine_options=options.engine_options(engine, ray_address), progress=shows_progress(quiet),
                      output_format=output_format, shard_size=shard_size)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {out} holds only complete files; rerun the same command to finish", err=True)
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        rate = summary.written / summary.seconds if summary.seconds else 0.0
        click.echo(f"{summary.inputs} inputs -> {summary.outputs} outputs in {out} "
                   f"({summary.written} written, {summary.existing} already there; "
                   f"{summary.seconds:.1f} s, {rate:.0f} outputs/s)")
        report_failures(summary.failed_inputs, "input", summary.failures, str(Path(out) / "failures.csv"))
        if summary.balance is not None:
            for line in balance_lines(summary.balance):
                click.echo(line, err=line.startswith("warning"))
    if summary.inputs and not summary.outputs:
        raise nothing_usable(f"none of the {summary.inputs} inputs gave an output", summary.failures,
                             str(Path(out) / "failures.csv"))
    if strict and summary.failed_inputs:
        sys.exit(1)


def balance_lines(balance: dict) -> list[str]:
    """``--balance``'s plan per class, one line each, and a warning for each class that
    ended short of the target."""
    target = balance["target"]
    lines = [f"balance: {target} outputs per class"]
    for label, c in balance["per_class"].items():
        least, most = c["copies_per_image"]
        each = f"{least}" if least == most else f"{least}-{most}"
        originals = f"{c['originals']} originals + " if c["originals"] else ""
        lines.append(f"  {label}: {c['images']} images, {originals}{c['copies']} copies ({each} per image)"
                     f" -> {c['outputs']}")
    for label, c in balance["per_class"].items():
        if c["outputs"] == 0:
            lines.append(f"warning: {label}: none of its {c['images']} images could be read, so it has no output; "
                         f"see failures.csv")
        elif c["outputs"] < c["planned"]:
            lines.append(f"warning: {label}: {c['outputs']} outputs, not {target} ({c['unreadable_images']} of its "
                         f"images could not be read; see failures.csv): fix them and rerun, or remove them and "
                         f"rerun with --overwrite")
    return lines
