"""``augkit predict MODEL SRC -o predictions.csv``."""

from __future__ import annotations

import json
import sys

import click

from augkit.cli import options
from augkit.cli.report import nothing_usable, report_failures


@click.command()
@click.argument("model", callback=options.not_empty)
@click.argument("src", callback=options.not_empty)
@click.option("-o", "--out", required=True, metavar="CSV", callback=options.not_empty,
              help="The predictions: path, label, status, class_1, prob_1, ... per image.")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Classes (with their probabilities) per image; at most the model's classes.")
@click.option("--plot", default=None, metavar="PNG",
              help="With labels in SRC: draw the confusion matrix into this PNG.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per inference batch (default: as cache-features).")
@click.option("-w", "--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes decoding images (default: as cache-features without a recipe).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ONNX Runtime threads (default: one per core).")
@click.option("--overwrite", is_flag=True, help="Replace a CSV or PNG that augkit predict did not write.")
@options.split
@options.max_pixels
@options.exact_decode_crop
@options.engine
@options.ray_address
@options.device
@options.providers
@options.quiet
@options.json_output
def predict(model, src, out, top_k, plot, batch_size, workers, threads, overwrite, split, max_pixels, exact_decode, engine,
            ray_address, device, providers, quiet, as_json) -> None:
    """Classify every image of SRC with MODEL (a HEAD folder from `augkit train-head`, or its model.onnx).

    SRC is a folder (of class folders, or flat), a CSV manifest, or one image. With
    labels in SRC (class folders, a manifest's label column) it also reports accuracy,
    per-class precision and recall and the confusion matrix (--json, --plot). Images
    that cannot be read are rows with status `failed` and their reason.
    """
    from augkit.core.progress import shows_progress
    from augkit.stages.predict import predict as run
    from augkit.stages.providers import resolve_providers

    chosen = resolve_providers(device, providers)
    try:
        summary = run(model, src, out, top_k=top_k, split=split, workers=workers, threads=threads,
                      batch_size=batch_size, providers=chosen, max_pixels=max_pixels, plot=plot, overwrite=overwrite,
                      progress=shows_progress(quiet), engine=engine,
                      engine_options=options.engine_options(engine, ray_address), reduced_decode=not exact_decode)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {out} was not written; rerun the same command", err=True)
        sys.exit(130)
    if summary.unknown_labels:
        click.echo(f"note: labels the model has no class for (counted as wrong): {', '.join(summary.unknown_labels)}",
                   err=True)
    if plot is not None and summary.metrics is None:
        click.echo(f"note: no labels in {src}: no confusion matrix to draw into {plot}", err=True)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        rate = f", {summary.images_per_s:.0f} images/s" if summary.images_per_s else ""
        scored = (f"; accuracy {summary.metrics['accuracy']:.3f} on {summary.labelled} labelled images"
                  if summary.metrics else "")
        click.echo(f"{summary.predicted} of {summary.images} images classified -> {out} ({summary.seconds:.1f} s"
                   f"{rate}){scored}")
        report_failures(summary.failed_images, "image", summary.failures, str(out))
    if summary.images and not summary.predicted:
        raise nothing_usable(f"none of the {summary.images} images could be classified", summary.failures, str(out))
