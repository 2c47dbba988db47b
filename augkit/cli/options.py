"""Options shared by several commands, defined once so they read the same everywhere."""

from __future__ import annotations

import click

from augkit.engines import ENGINES

def not_empty(ctx: click.Context, param: click.Parameter, value):
    """An empty path ('') silently meant the current folder; it is a usage error."""
    if value is not None and not str(value).strip():
        raise click.BadParameter("is empty; name a file or folder ('.' for the current folder)")
    return value


workers = click.option(
    "-w", "--workers", type=click.IntRange(min=0), default=None,
    help="Worker processes (default: one per core; 0 runs in this process).",
)
seed = click.option(
    "--seed", type=click.IntRange(min=0), default=None,
    help="Run seed (default: the recipe's seed, else 0). Same seed, same output.",
)
def split_option(argument: str = "SRC"):
    """--split, its help naming the command's own ``argument``."""
    return click.option(
        "--split", default=None, metavar="NAME",
        help=f"With a split manifest as {argument}: use only the rows of this split (train, val, test), or "
             "`all` for every row. Required when the manifest has a split column.",
    )


def label_key_option(argument: str = "SRC"):
    """--label-key, its help naming the command's own ``argument``."""
    return click.option(
        "--label-key", default=None, metavar="EXT",
        help=f"With WebDataset tar shards as {argument}: the member holding each sample's label (default cls, "
             "a class index; another, such as txt, holds the class name).",
    )


split = split_option()
label_key = label_key_option()


def source(src: str, label_key: str | None):
    """SRC as the library takes it: with --label-key, tar shards whose labels are in that member."""
    if label_key is None:
        return src
    from augkit.input.shard_sources import Shards

    return Shards(src, label_key=label_key)


def _pixel_limit(ctx: click.Context, param: click.Parameter, value):
    """Check AUGKIT_MAX_IMAGE_PIXELS when the option is left out: a bad value is one usage
    error here, not a failure row per image in the workers."""
    if value is None:
        from augkit.input.decoding import resolve_max_pixels

        resolve_max_pixels(None)  # UsageError: the group reports it, exit 2
    return value


max_pixels = click.option(
    "--max-pixels", type=click.IntRange(min=0), default=None, callback=_pixel_limit,
    help="Reject images larger than this many pixels, from the header, before decoding; 0: no limit "
         "(default 89478485, or AUGKIT_MAX_IMAGE_PIXELS).",
)
def _exact_decode(what_shrinks: str):
    return click.option(
        "--exact-decode", is_flag=True,
        help=f"Decode every image whole. By default a JPEG that {what_shrinks} shrinks is decoded at 1/2, 1/4 or 1/8 "
             "of its size, much faster on large photos, within a grey level or two; this gives outputs bit-identical "
             "to a full decode.",
    )


exact_decode = _exact_decode("the recipe's first resize (or the backbone's crop)")
exact_decode_crop = _exact_decode("the backbone's crop")  # predict: no recipe
quiet = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
json_output = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")

engine = click.option(
    "--engine", type=click.Choice(list(ENGINES)), default="local", show_default=True,
    help="local: worker processes on this machine; ray: a Ray cluster (pip install \"augkit[ray]\").",
)
ray_address = click.option(
    "--ray-address", default=None, metavar="ADDRESS",
    help="Ray cluster to use with --engine ray (default: $RAY_ADDRESS, else a local Ray for this run).",
)

device = click.option(
    "--device", default=None, metavar="NAME",
    help="Run the model on cpu (default), cuda, tensorrt, openvino, coreml, directml or rocm; each needs its "
         "onnxruntime package (e.g. onnxruntime-gpu for cuda).",
)
providers = click.option(
    "--providers", default=None, metavar="P1,P2",
    help="ONNX Runtime execution providers by name, best first (e.g. CUDAExecutionProvider); the CPU is the "
         "fallback. Instead of --device.",
)


def engine_options(engine_name: str, ray_address: str | None) -> dict:
    """The engine's own options (``engine_options=`` of the library's commands, passed on to
    :func:`augkit.engines.get_engine`) from the shared options. ``--workers`` is not one of
    them: every command takes ``workers`` as its own argument."""
    if ray_address and engine_name != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    return {"address": ray_address} if engine_name == "ray" else {}
