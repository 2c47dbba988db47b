"""The plan of an augment run: which outputs each input gets, and their names.

Output ``OUT/<class>/<stem>_<copy>.<ext>`` for copy ``k`` of ``<class>/<stem>.<ext>``
(``<stem>_orig.<ext>`` for ``--include-original``); a ``-<hash>`` is added to the stem only
when two inputs would share a name. A folder source's layout is mirrored; a manifest's
labelled images go to ``<label>/``, whatever folders their paths name. The plan depends only
on the samples' keys and labels and the options, never on timing, so a rerun plans the
same names, and every name is a plain relative path that stays below OUT.
"""

from __future__ import annotations

import hashlib
import ntpath  # a stem like 'C:x' would be drive-relative on Windows
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

from augkit.core.errors import UsageError

FORMATS = ("jpg", "png", "webp")

# One run plans every output name in memory, with the rows the reports need: this many
# stays within a few GB (bytes per output: benchmarks/RESULTS.md, "Figures behind code comments").
MAX_OUTPUTS = 10_000_000


@dataclass(frozen=True)
class AugmentOptions:
    copies: int = 1
    seed: int | None = None  # None: the recipe's seed, else 0
    include_original: bool = False
    fmt: str = "jpg"
    quality: int = 95
    max_pixels: int | None = None


@dataclass(frozen=True)
class Job:
    """One input and the outputs to make from it: (path relative to OUT, copy or None)."""

    path: str
    key: str
    label: str | None
    outputs: tuple[tuple[str, int | None], ...]  # still to write
    present: tuple[tuple[str, int | None], ...] = ()  # written by an earlier run


def check_options(options: AugmentOptions, inputs: int | None = None) -> None:
    """Usage errors in the options, before anything is planned (``inputs``: how many)."""
    if options.fmt not in FORMATS:
        raise UsageError(f"unknown output format {options.fmt!r}; use one of: {', '.join(FORMATS)}")
    if options.copies < 0 or (options.copies == 0 and not options.include_original):
        raise UsageError("--copies must be at least 1 (or 0 with --include-original)")
    planned = (inputs or 1) * (options.copies + options.include_original)
    if planned > MAX_OUTPUTS:
        what = f"{options.copies} copies of {inputs:,} inputs is {planned:,} outputs; " if inputs else ""
        raise UsageError(f"--copies {options.copies}: {what}one run plans at most {MAX_OUTPUTS:,} outputs (about "
                         f"400 bytes of memory each): use fewer --copies, or split SRC into several runs, each "
                         f"with its own OUT")


def plan_jobs(samples, options: AugmentOptions) -> list[Job]:
    """The output names of every input (see the module's docstring)."""
    width = max(2, len(str(max(options.copies - 1, 0))))
    places = [_folder_and_stem(s) for s in samples]
    taken = Counter((folder, stem.lower()) for folder, stem in places)
    jobs = []
    for sample, (folder, stem) in zip(samples, places):
        if taken[(folder, stem.lower())] > 1:  # a.jpg and a.png, or two manifest rows
            stem = f"{stem}-{hashlib.blake2b(sample.key.encode('utf-8', 'surrogateescape'), digest_size=3).hexdigest()}"
        prefix = f"{folder}/{stem}" if folder else stem
        outputs = [(f"{prefix}_{k:0{width}d}.{options.fmt}", k) for k in range(options.copies)]
        if options.include_original:
            outputs.insert(0, (f"{prefix}_orig.{options.fmt}", None))
        jobs.append(Job(sample.path, sample.key, sample.label, tuple(outputs)))
    return jobs


def _folder_and_stem(sample) -> tuple[str, str]:
    key = PurePosixPath(sample.key)
    inside = not key.is_absolute() and ".." not in key.parts
    if sample.label and not (inside and key.parts[0] == sample.label):
        parts: tuple[str, ...] = (sample.label,)  # a manifest's label names the class folder
    elif inside:
        parts = key.parent.parts  # a folder source's layout, mirrored (() for a key without one)
    else:
        parts = ()  # unlabelled and outside the manifest's folder: OUT itself
    if not all(_plain_name(part) for part in parts) or ntpath.splitdrive(key.stem)[0]:
        raise UsageError(f"{sample.key}: its output path {'/'.join((*parts, key.stem))!r} would not be a plain "
                         f"path inside OUT; a label must be a folder name without '/', '\\' or '..'")
    return "/".join(parts), key.stem


def _plain_name(part: str) -> bool:
    return part not in ("", ".", "..") and not any(c in part for c in "/\\\0") and part.isprintable()
