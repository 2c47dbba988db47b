"""``augkit cache-features SRC -o CACHE`` and ``augkit backbones``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from augkit.cli import options
from augkit.cli.report import nothing_usable, report_failures
from augkit.core.words import numbers


def _numbers_callback(count: int):
    """A Click callback: ``--mean 0.5,0.5,0.5`` -> three floats, read as a backbone entry reads them."""

    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return numbers(value, count)
        except ValueError:
            raise click.BadParameter(f"expected {count} numbers separated by commas, got {value!r}") from None

    return convert


@click.command("cache-features")
@click.argument("src", callback=options.not_empty)
@click.option("-o", "--out", "cache", required=True, metavar="CACHE", callback=options.not_empty, help="Folder for the feature cache.")
@click.option("-b", "--backbone", default=None, metavar="NAME|FILE",
              help="A name from `augkit backbones` (default mobilenet_v2), a backbone .yaml file, or an .onnx file.")
@click.option("--weights", default=None, metavar="PATH", help="Use this local ONNX file instead of downloading the weights.")
@click.option("--mirror", default=None, metavar="URL",
              help="Download weights from this base URL instead of the public host (or set AUGKIT_MIRROR).")
@click.option("-r", "--recipe", "recipe_path", default=None, metavar="RECIPE", help="Augment each view with this recipe.")
@click.option("-k", "--views", type=click.IntRange(min=1), default=1, show_default=True,
              help="Views per image (each augmented with the recipe, seeded by image and view).")
@click.option("--plain-first", is_flag=True, help="View 0 of each image is the image without the recipe.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per inference batch (default: 2 per ONNX Runtime thread of a stream, i.e. 2 up to 4 cores).")
@click.option("-w", "--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes preparing images (default: from what preparing an image costs against "
                   "inferring it: 0, i.e. this process, for ImageNet-size photos without a recipe; more with a "
                   "recipe, large photos (from a few headers) or many cores).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime threads (default: one per core; workers prepare images meanwhile).")
@options.seed
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True,
              help="Stored feature type.")
@click.option("--input-size", type=click.IntRange(min=1), default=None, help="Override the backbone's input side (pixels).")
@click.option("--resize", type=click.IntRange(min=1), default=None, help="Override the shorter side before the centre crop.")
@click.option("--mean", callback=_numbers_callback(3), default=None, metavar="M1,M2,M3", help="Override the per-channel mean.")
@click.option("--std", callback=_numbers_callback(3), default=None, metavar="S1,S2,S3", help="Override the per-channel std.")
@click.option("--range", "value_range", callback=_numbers_callback(2), default=None, metavar="LO,HI",
              help="Override the range pixel values 0..255 are mapped onto before mean/std (e.g. 0,1 or 0,255).")
@click.option("--channels", type=click.Choice(["RGB", "BGR"], case_sensitive=False), default=None,
              help="Override the channel order.")
@click.option("--layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False), default=None,
              help="Override the input layout.")
@click.option("--feature-node", default=None, metavar="NAME", help="Cut the graph at this tensor instead of the entry's rule.")
@click.option("--shard-images", type=click.IntRange(min=1), default=None,
              help="Images per shard file (default: 4096 // --views, at least 1, so that a shard holds up to "
                   "4096 rows, a row per view).")
@click.option("--overwrite", is_flag=True, help="Replace a cache made with another backbone, recipe or settings.")
@options.split
@options.label_key
@options.max_pixels
@options.exact_decode
@options.engine
@options.ray_address
@options.device
@options.providers
@options.quiet
@options.json_output
def cache_features(src, cache, backbone, weights, mirror, recipe_path, views, plain_first, batch_size, workers, threads,
                   seed, dtype, input_size, resize, mean, std, value_range, channels, layout, feature_node, shard_images,
                   overwrite, split, label_key, max_pixels, exact_decode, engine, ray_address, device, providers, quiet,
                   as_json) -> None:
    """Compute a frozen backbone's pooled features for every image of SRC, once.

    SRC is a folder of class folders, a flat folder, a CSV manifest (path, label), or
    WebDataset tar shards (a .tar, a folder of them, or data/shard-{000000..000099}.tar;
    labels from --label-key). CACHE gets features-*.npy (rows x features), labels.npy, manifest.csv (path, label,
    view per row), failures.csv and meta.json; read it with augkit.load_features(CACHE).
    Rerunning the same command after an interruption computes only what is missing.
    """
    from augkit.core.progress import shows_progress
    from augkit.stages.backbones import resolve_backbone
    from augkit.stages.features import FeatureOptions
    from augkit.stages.features import cache_features as run
    from augkit.recipes import load_recipe
    from augkit.stages.providers import resolve_providers

    chosen = resolve_providers(device, providers)
    resolved = resolve_backbone(backbone, weights=weights, input_size=input_size, resize=resize, value_range=value_range,
                                mean=mean, std=std, channels=channels and channels.upper(),
                                layout=layout and layout.upper(), feature_node=feature_node)
    recipe = load_recipe(recipe_path) if recipe_path else None
    opts = FeatureOptions(views=views, plain_first=plain_first, seed=seed, dtype=dtype, batch_size=batch_size,
                          threads=threads, shard_images=shard_images, max_pixels=max_pixels, providers=chosen,
                          reduced_decode=not exact_decode)
    try:
        summary = run(options.source(src, label_key), cache, backbone=resolved, recipe=recipe, options=opts,
                      workers=workers, overwrite=overwrite,
                      split=split, progress=shows_progress(quiet), mirror=mirror, engine=engine,
                      engine_options=options.engine_options(engine, ray_address))
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {cache} holds only complete shards; rerun the same command to finish", err=True)
        sys.exit(130)
    for note in summary.notes:
        click.echo(note, err=True)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        rate = _rate(summary)
        values = f"{summary.feature_dim} values, " if summary.feature_dim else ""
        click.echo(f"{summary.images} images -> {summary.rows} feature rows ({values}{summary.dtype}) in {cache} "
                   f"({summary.computed_rows} computed, {summary.rows - summary.computed_rows} from earlier runs; "
                   f"{summary.seconds:.1f} s{rate})")
        report_failures(summary.failed_images, "image", summary.failures, str(Path(cache) / "failures.csv"))
    if summary.images and not summary.rows:
        raise nothing_usable(f"none of the {summary.images} images gave features", summary.failures,
                             str(Path(cache) / "failures.csv"))


@click.command()
@click.argument("name", required=False)
@options.json_output
def backbones(name, as_json) -> None:
    """List the backbones augkit knows, or show one (NAME, a .yaml entry or an .onnx file).

    Weights are downloaded on first use into AUGKIT_CACHE_DIR (else the user cache
    directory) and checked against their sha256; `--weights PATH` uses a local file.
    """
    from augkit.stages.backbones import cached_path, registry, resolve_backbone

    names = [name] if name else list(registry())
    rows = []
    for n in names:
        b = resolve_backbone(n)
        cached = cached_path(b)
        rows.append({
            "name": b.name, "description": b.description, "input_size": b.preprocessing.input_size,
            "feature_dim": b.feature_dim, "top1": b.top1, "license": b.license, "url": b.url, "sha256": b.sha256,
            "size": b.size, "pooled": b.feature_node or b.pooled, "preprocessing": b.preprocessing.as_dict(),
            "cached": str(cached) if cached is not None and cached.is_file() else None,
        })
    if as_json:
        click.echo(json.dumps(rows if not name else rows[0], indent=2))
        return
    if name:
        for key, value in rows[0].items():
            click.echo(f"{key:13s} {value if value is not None else '-'}")
        return
    click.echo(f"{'name':20s} {'input':>5s} {'features':>8s} {'top-1':>6s} {'MB':>6s}  {'licence':13s} cached")
    for r in rows:
        size = f"{r['size'] / 1e6:.1f}" if r["size"] else "-"
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else "-"
        click.echo(f"{r['name']:20s} {r['input_size']:>5d} {r['feature_dim'] or '-':>8} {top1:>6s} {size:>6s}  "
                   f"{r['license'] or '-':13s} {'yes' if r['cached'] else 'no'}")


def _rate(summary) -> str:
    """The steady rate once it was measured over a second or more (a run of a batch or
    two has almost no time between its first batch and its last); the whole run's below."""
    steady, rows = summary.steady_rows_per_s, summary.computed_rows
    if steady and rows / steady >= 1.0:
        return f", {steady:.0f} rows/s"
    return f", {rows / summary.seconds:.0f} rows/s" if rows and summary.seconds else ""
