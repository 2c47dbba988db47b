"""``augkit stats SRC``: one streaming pass over a dataset, written to stats.json."""

from __future__ import annotations

import json
import sys

import click

from augkit.cli import options


@click.command()
@click.argument("src", callback=options.not_empty)
@click.option("-o", "--output", default="stats.json", show_default=True, type=click.Path(dir_okay=False),
              callback=options.not_empty,
              help="JSON file to write (.json).")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), metavar="PNG",
              help="Also draw class balance, image sizes and channel histograms to this PNG.")
@click.option("--overwrite", is_flag=True, help="Replace a file at -o or --plot that augkit stats did not write.")
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              help="Analyze a deterministic random subset of N images (default: every image, exact).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Which images --sample picks.")
@options.split
@options.label_key
@options.workers
@options.max_pixels
@options.engine
@options.ray_address
@options.quiet
@options.json_output
def stats(src, output, plot_path, overwrite, sample, seed, split, label_key, workers, max_pixels, engine, ray_address, quiet,
          as_json) -> None:
    """Count, measure and check every image of SRC, and write OUTPUT (stats.json).

    SRC is a folder of class folders, a flat folder, a CSV manifest (`--split` picks
    the rows of one split of an `augkit split` manifest), or WebDataset tar shards (a
    .tar, a folder of them, or data/shard-{000000..000099}.tar; labels from --label-key).
    stats.json holds the image and
    per-class counts, sizes, bad files with their reasons, the per-channel mean and
    standard deviation (RGB, 0-1 scale, ready for flow's preprocess=(mean, std)), channel histograms,
    and the RGB PCA that `PCAColor` (source: dataset) reads. Exact unless --sample.
    Without --workers, datasets under 1000 images are read in this process. A file at
    OUTPUT or --plot that augkit stats did not write is replaced only with --overwrite,
    and never an image of SRC.
    """
    from augkit.core.errors import AugkitError
    from augkit.core.files import write_json_atomic
    from augkit.core.progress import shows_progress
    from augkit.stages.stats import check_outputs, compute_stats, imbalance_warning, plot_stats, summary_lines

    check = check_outputs(output, plot_path, overwrite, src)
    try:
        result = compute_stats(options.source(src, label_key), split=split, sample=sample, seed=seed, workers=workers,
                               max_pixels=max_pixels, engine=engine,
                               engine_options=options.engine_options(engine, ray_address),
                               progress=shows_progress(quiet), check=check)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: nothing was written", err=True)
        sys.exit(130)
    write_json_atomic(output, result)
    if plot_path:
        from augkit.input.encoding import write_image_atomic

        write_image_atomic(plot_path, plot_stats(result), fmt="png", mark="stats")
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "histograms"}, indent=2))
    else:
        for line in summary_lines(result):
            click.echo(line)
        click.echo(f"wrote {output}" + (f" and {plot_path}" if plot_path else ""))
    warning = imbalance_warning(result)
    if warning:
        click.echo(warning, err=True)
    if result["ok"] == 0:
        raise AugkitError(f"{src}: none of the {result['analyzed']} images could be read; see {output} for the reasons")
