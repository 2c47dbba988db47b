"""``augkit preview RECIPE IMAGE``: a captioned grid of augmented samples."""

from __future__ import annotations

import os

import click

from augkit.cli import options

GRID_FORMATS = ("png", "jpg", "jpeg", "webp")  # what augkit.input.encoding.encode_image writes


def _existing(image: str) -> str:
    """IMAGE names a file or folder that exists, or tar shards (a brace pattern)."""
    from augkit.input.shard_sources import is_shard_source

    if not os.path.exists(image) and not is_shard_source(image):
        raise click.BadParameter(f"Path {image!r} does not exist.", param_hint="'IMAGE'")
    return image


@click.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.argument("image", callback=lambda ctx, param, value: _existing(value))
@click.option("-o", "--output", default="preview.png", show_default=True, type=click.Path(dir_okay=False),
              help="Image file to write: .png, .jpg or .webp, as its suffix says.")
@click.option("-n", "--samples", "n", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Augmented samples per image.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Default: the recipe's seed, else 0.")
@click.option("--tile", default=256, show_default=True, type=click.IntRange(64, 1024), help="Tile size in pixels.")
@click.option("--max-images", default=4, show_default=True, type=click.IntRange(1, 32),
              help="When IMAGE is a folder, a manifest or tar shards: how many of its images to show, one row each.")
@click.option("--open", "open_after", is_flag=True, help="Open the grid with the system viewer.")
@click.option("--overwrite", is_flag=True, help="Replace a file at -o that augkit preview did not draw.")
@options.split_option("IMAGE")
@options.label_key_option("IMAGE")
@options.max_pixels
def preview(recipe_path: str, image: str, output: str, n: int, seed: int | None, tile: int,
            max_images: int, open_after: bool, overwrite: bool, split: str | None, label_key: str | None,
            max_pixels: int | None) -> None:
    """Write a grid: the original IMAGE and N augmented samples, each captioned with the
    transforms that fired and their drawn values. IMAGE may be a folder, a CSV manifest
    (with --split NAME for a split manifest) or WebDataset tar shards (a .tar, a folder
    of them, data/shard-{000000..000009}.tar): an image the
    recipe fails on (smaller than a crop) is skipped there, and an error for one IMAGE.
    A file at OUTPUT that augkit preview did not draw is replaced only with --overwrite,
    and never an image of IMAGE."""
    from augkit.input.decoding import DecodeError, decode_image
    from augkit.input.encoding import write_image_atomic
    from augkit.input.discovery import discover
    from augkit.input.encoding import written_by
    from augkit.input.samples import Dataset, Sample
    from augkit.input.shard_sources import is_shard_source
    from augkit.core.errors import AugkitError, UsageError
    from augkit.core.files import check_output_file
    from augkit.stages.preview import preview as make_grid
    from augkit.recipes import load_recipe

    suffix = os.path.splitext(output)[1].lower().lstrip(".")
    if suffix not in GRID_FORMATS:
        raise UsageError(f"{output}: cannot write a grid as {('.' + suffix) if suffix else 'a file without a suffix'};"
                         f" end -o with .png, .jpg or .webp")
    recipe = load_recipe(recipe_path)
    many = os.path.isdir(image) or is_shard_source(image) or image.lower().endswith(".csv")
    if many or label_key is not None or split is not None:
        source = discover(options.source(image, label_key), split=split, for_training=False)
        samples = source.samples
        step = len(samples) / min(max_images, len(samples))
        chosen = [samples[int(i * step)] for i in range(min(max_images, len(samples)))]
    else:
        source = Dataset(os.path.dirname(image) or ".", [Sample(image, os.path.basename(image))], "image")
        chosen = [None]
    check_output_file(output, option="-o", what="a grid augkit preview drew", overwrite=overwrite,
                      ours=lambda path: written_by(path) == "preview", inside_source=source.holds, source=image)
    images = []
    for sample in chosen:
        path, key = (sample.path, sample.key) if sample else (image, os.path.basename(image))
        try:
            images.append((decode_image(path, max_pixels=max_pixels), key))
        except DecodeError as exc:
            if sample is None:
                raise AugkitError(str(exc)) from None
            click.echo(f"skipped: {exc}", err=True)
    if not images:
        raise AugkitError(f"{image}: none of the chosen images could be read")
    skip = (lambda exc: click.echo(f"skipped: {exc}", err=True)) if chosen != [None] else None  # a folder
    grid = make_grid(recipe, images, n=n, seed=seed, tile=tile,
                     on_failure=skip)
    write_image_atomic(output, grid, fmt=suffix, mark="preview")  # the format the suffix names
    click.echo(output)
    if open_after:
        click.launch(output)
