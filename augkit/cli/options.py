"""Options shared by several commands, defined once so they read the same everywhere."""

from __future__ import annotations

import click

workers = click.option(
    "-w", "--workers", type=click.IntRange(min=0), default=None,
    help="Worker processes (default: one per core; 0 runs in this process).",
)
seed = click.option(
    "--seed", type=click.IntRange(min=0), default=None,
    help="Run seed (default: the recipe's seed, else 0). Same seed, same output.",
)
split = click.option(
    "--split", default=None, metavar="NAME",
    help="With a split manifest as SRC: use only the rows of this split (train, val, test).",
)
max_pixels = click.option(
    "--max-pixels", type=click.IntRange(min=1), default=None,
    help="Reject images larger than this many pixels, from the header, before decoding "
         "(default 89478485, or AUGKIT_MAX_IMAGE_PIXELS).",
)
quiet = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
json_output = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
