"""The plan of an augment run: which outputs each input gets, and their names.

Output ``OUT/<class>/<stem>_<copy>.<ext>`` for copy ``k`` of ``<class>/<stem>.<ext>``
(``<stem>_orig.<ext>`` for ``--include-original``); a ``-<hash>`` is added to the stem only
when two inputs would share a name. A folder source's layout is mirrored; a manifest's
labelled images go to ``<label>/``, whatever folders their paths name. The plan depends only
on the samples' keys and labels and the options, never on timing, so a rerun plans the
same names, and every name is a plain relative path that stays below OUT.

``--balance N`` plans per class instead of per input: every class gets N outputs
(:func:`balance_plan`), its originals counted with ``--include-original``, the copies spread
evenly over the class's images. Which images take the odd extra copy (and, in a class of
more than N images, which ones are used) follows a hash of (seed, key): deterministic,
independent of the listing order.
"""

from __future__ import annotations

import hashlib
import ntpath  # a stem like 'C:x' would be drive-relative on Windows
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

from augkit.core.errors import UsageError
from augkit.core.seeds import derive_seed

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
    balance: int | None = None  # outputs per class (--balance); None: ``copies`` of every input
    reduced_decode: bool = True  # False: decode every image whole (see augkit.stages.decode_size)


@dataclass(frozen=True)
class Job:
    """One input and the outputs to make from it: (path relative to OUT, copy or None)."""

    path: str
    key: str
    label: str | None
    outputs: tuple[tuple[str, int | None], ...]  # still to write
    present: tuple[tuple[str, int | None], ...] = ()  # written by an earlier run


def check_options(options: AugmentOptions, inputs: int | None = None, classes: int | None = None) -> None:
    """Usage errors in the options, before anything is planned (``inputs``, ``classes``: how many)."""
    if options.fmt not in FORMATS:
        raise UsageError(f"unknown output format {options.fmt!r}; use one of: {', '.join(FORMATS)}")
    if options.balance is not None:
        _check_balance(options.balance, classes)
        return
    if options.copies < 0 or (options.copies == 0 and not options.include_original):
        raise UsageError("--copies must be at least 1 (or 0 with --include-original)")
    planned = (inputs or 1) * (options.copies + options.include_original)
    if planned > MAX_OUTPUTS:
        what = f"{options.copies} copies of {inputs:,} inputs is {planned:,} outputs; " if inputs else ""
        raise UsageError(f"--copies {options.copies}: {what}one run plans at most {MAX_OUTPUTS:,} outputs (about "
                         f"400 bytes of memory each): use fewer --copies, or split SRC into several runs, each "
                         f"with its own OUT")


def _check_balance(balance: int, classes: int | None) -> None:
    if balance < 1:
        raise UsageError(f"--balance {balance}: give the number of outputs every class should have (at least 1)")
    planned = balance * (classes or 1)
    if planned > MAX_OUTPUTS:
        what = f"{balance:,} outputs for each of {classes:,} classes is {planned:,}; " if classes else ""
        raise UsageError(f"--balance {balance}: {what}one run plans at most {MAX_OUTPUTS:,} outputs (about 400 "
                         f"bytes of memory each): use a smaller --balance, or split SRC into several runs")


@dataclass(frozen=True)
class ClassPlan:
    """What ``--balance`` plans for one class."""

    images: int
    originals: int
    copies: int  # augmented copies in all
    least: int  # copies of the images that get fewest (0: some images are not used)
    most: int

    @property
    def planned(self) -> int:
        return self.originals + self.copies


def balance_plan(samples, options: AugmentOptions) -> tuple[list[tuple[int, bool]], dict[str, ClassPlan]]:
    """(copies, whether its original is written) per sample, and the plan per class, for
    ``--balance N``: each class gets N outputs. With ``--include-original`` its images'
    originals count first (at most N of them); the copies left to make are spread evenly,
    ``N // n`` or one more per image. An unlabelled sample gets nothing (augment refuses
    them before planning). Depends on keys, labels, the seed and N only."""
    target = options.balance
    members: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        if sample.label is not None:
            members.setdefault(sample.label, []).append(i)
    per_sample = [(0, False)] * len(samples)
    classes = {}
    for label, indices in sorted(members.items()):
        ranked = sorted(indices, key=lambda i: (derive_seed(options.seed, "balance", samples[i].key), samples[i].key))
        originals = min(len(ranked), target) if options.include_original else 0
        copies = target - originals
        each, extra = divmod(copies, len(ranked))
        for rank, i in enumerate(ranked):
            per_sample[i] = (each + (rank < extra), rank < originals)
        classes[label] = ClassPlan(len(ranked), originals, copies, each, each + (extra > 0))
    return per_sample, classes


def plan_jobs(samples, options: AugmentOptions) -> list[Job]:
    """The output names of every input (see the module's docstring)."""
    if options.balance is not None:
        counts = balance_plan(samples, options)[0]
    else:
        counts = [(options.copies, options.include_original)] * len(samples)
    width = max(2, len(str(max((copies - 1 for copies, _ in counts), default=0))))
    places = [_folder_and_stem(s) for s in samples]
    taken = Counter((folder, stem.lower()) for folder, stem in places)
    jobs = []
    for sample, (folder, stem), (copies, original) in zip(samples, places, counts):
        if taken[(folder, stem.lower())] > 1:  # a.jpg and a.png, or two manifest rows
            stem = f"{stem}-{hashlib.blake2b(sample.key.encode('utf-8', 'surrogateescape'), digest_size=3).hexdigest()}"
        prefix = f"{folder}/{stem}" if folder else stem
        outputs = [(f"{prefix}_{k:0{width}d}.{options.fmt}", k) for k in range(copies)]
        if original:
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
