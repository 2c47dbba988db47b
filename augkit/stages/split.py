"""Split: assign every image of a source to train / val / test, exactly and reproducibly.

What a user can rely on:
- **Exact counts.** Within each class (or the whole dataset with ``stratify=False``) of
  ``n`` files, split ``s`` with fraction ``f_s`` gets ``floor(n * f_s)`` files, and the
  files left over go one each to the splits with the largest remainders
  ``n * f_s - floor(n * f_s)`` (largest-remainder rounding), ties going to train, then
  val, then test. Fractions are taken as the decimals written (0.1 is exactly 1/10), so
  a class of 10 with ``--val 0.2 --test 0.1`` is always 7 / 2 / 1. A small class may get
  no val or test file at all; :attr:`SplitResult.empty` lists where that happened.
- **Deterministic.** Within a group, files are ordered by a hash of (seed, path), which
  is a seeded shuffle of the sorted paths, and taken in that order: train first, then
  val, then test. The same seed gives the same split on any machine, and adding files to
  a class moves only the few old ones at the boundaries between splits (each file's
  place in the order depends on its own path only).
- **One split per file.** Paths that are the same file (hard links, symlinks) or have
  the same bytes are one unit: the split's counts are counted in units, and a unit always
  lands in one split; :attr:`SplitResult.counts` counts images (every path).
- **Never moves anything.** ``materialize`` builds ``DIR/<split>/<label>/...`` from hard
  links (copies where linking is impossible, or with ``copy=True``) into an empty folder.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor
from pathlib import Path, PurePosixPath

from augkit.core.seeds import derive_seed
from augkit.core.errors import UsageError
from augkit.core.files import check_output_file, csv_text, write_text_atomic

SPLITS = ("train", "val", "test")
HEADER = "path,label,split"  # the manifest's first line


@dataclass(frozen=True)
class Assignment:
    path: str  # where the file is
    key: str  # the sample key (relative to the source)
    label: str | None
    split: str


@dataclass
class SplitResult:
    rows: list[Assignment]  # sorted by key
    counts: dict[str, dict[str, int]]  # group (label or "" unlabelled) -> split -> images (every path)
    duplicates: int = 0  # paths that are the same file as another listed path
    duplicate_groups: int = 0  # groups of such paths (each kept in one split)
    empty: list[tuple[str, str]] = field(default_factory=list)  # (group, split) with f > 0 but 0 files
    stratified: bool = True


def exact_fraction(value: float, name: str) -> Fraction:
    """The decimal the user wrote (0.1 -> 1/10, not the binary float just above it)."""
    if not math.isfinite(value) or not 0 <= value <= 1:  # nan and inf have no Fraction
        raise UsageError(f"{name} {value}: a fraction must be between 0 and 1")
    frac = Fraction(repr(float(value)))
    if not 0 <= frac <= 1:
        raise UsageError(f"{name} {value}: a fraction must be between 0 and 1")
    return frac


def quotas(n: int, fractions: dict[str, Fraction]) -> dict[str, int]:
    """Largest-remainder rounding of ``n * f`` per split: the counts add up to ``n``."""
    shares = {s: n * f for s, f in fractions.items()}
    counts = {s: floor(v) for s, v in shares.items()}
    left = n - sum(counts.values())
    order = sorted(fractions, key=lambda s: (-(shares[s] - counts[s]), SPLITS.index(s)))
    for s in order[:left]:
        counts[s] += 1
    return counts


def _file_identity(path: str) -> tuple | None:
    """(device, inode, size) of a file; a shard's member adds its offset in the shard."""
    shard = getattr(path, "shard", None)
    try:
        st = os.stat(path if shard is None else shard)
    except OSError:
        return None  # a missing file is still assigned; reading it is a later stage's job
    if shard is not None:
        return (st.st_dev, st.st_ino, path.size, path.offset)
    return (st.st_dev, st.st_ino, st.st_size)


def _units(samples) -> tuple[list[list], int]:
    """Group samples that are the same file (same inode) or have the same bytes; each group
    is one unit, listed under its first key. Only files of equal size are hashed."""
    by_inode: dict[tuple, list] = defaultdict(list)
    alone = []
    for s in samples:
        ident = _file_identity(s.path)
        (by_inode[ident] if ident else alone).append(s)
    groups = list(by_inode.values())
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, ident in enumerate(by_inode):
        by_size[ident[2]].append(i)
    parent = list(range(len(groups)))
    for indices in by_size.values():
        # Same size: compare the first 64 KiB, and only where those match, whole files.
        for same_start in _buckets(indices, lambda i: _content_hash(groups[i][0].path, 1 << 16)):
            for same in _buckets(same_start, lambda i: _content_hash(groups[i][0].path)):
                for i in same[1:]:
                    parent[i] = same[0]
    merged: dict[int, list] = defaultdict(list)
    for i, group in enumerate(groups):
        merged[parent[i]].extend(group)
    units = [sorted(g, key=lambda s: s.key) for g in merged.values()] + [[s] for s in alone]
    units.sort(key=lambda u: u[0].key)
    return units, len(samples) - len(units)


def _buckets(indices: list[int], digest) -> list[list[int]]:
    """Groups of two or more indices with equal ``digest(i)``."""
    if len(indices) < 2:
        return []
    found: dict[bytes, list[int]] = defaultdict(list)
    for i in indices:
        found[digest(i)].append(i)
    return [b for b in found.values() if len(b) > 1]


def _content_hash(path: str, limit: int | None = None) -> bytes:
    from augkit.input.decoding import DecodeError, open_sample

    h = hashlib.blake2b(digest_size=16)
    try:
        with open_sample(path) as f:  # a file, or a shard's member
            if limit is not None:
                h.update(f.read(limit))
            else:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    except (OSError, DecodeError):
        return path.encode("utf-8", "surrogateescape")  # unreadable: equal to nothing else
    return h.digest()


def split_samples(samples, *, val: float = 0.2, test: float = 0.1, seed: int = 0, stratify: bool = True) -> SplitResult:
    """Assign every sample to a split; see the module docstring for the rules."""
    f_val, f_test = exact_fraction(val, "--val"), exact_fraction(test, "--test")
    if f_val + f_test > 1:
        raise UsageError(f"--val {val} and --test {test} add up to more than 1; lower one of them")
    fractions = {"train": 1 - f_val - f_test, "val": f_val, "test": f_test}
    units, duplicates = _units(samples)
    groups: dict[str, list[list]] = defaultdict(list)
    for unit in units:
        groups[(unit[0].label or "") if stratify else ""].append(unit)
    rows: list[Assignment] = []
    counts: dict[str, dict[str, int]] = {}
    empty = []
    for group in sorted(groups):
        # A seeded shuffle by the one seed derivation (the key breaks a 63-bit tie, never met in practice).
        members = sorted(groups[group], key=lambda u: (derive_seed(seed, u[0].key), u[0].key))
        wanted = quotas(len(members), fractions)  # units: a group of identical files counts once
        empty += [(group, s) for s in SPLITS if fractions[s] > 0 and wanted[s] == 0]
        names = [s for s in SPLITS for _ in range(wanted[s])]
        counts[group] = dict.fromkeys(SPLITS, 0)
        for unit, name in zip(members, names):
            rows += [Assignment(s.path, s.key, s.label, name) for s in unit]
            counts[group][name] += len(unit)
    rows.sort(key=lambda a: a.key)
    return SplitResult(rows, counts, duplicates, sum(len(u) > 1 for u in units), empty, stratify)


# --- outputs ------------------------------------------------------------------------------


def manifest_text(result: SplitResult, csv_path) -> str:
    """CSV ``path,label,split`` with paths relative to the CSV's folder (what discovery reads)."""
    base = os.path.dirname(os.path.abspath(csv_path))
    rows = []
    for a in result.rows:
        try:
            rel = Path(os.path.relpath(os.path.abspath(a.path), base)).as_posix()
        except ValueError:  # another drive (Windows): keep it absolute
            rel = Path(os.path.abspath(a.path)).as_posix()
        rows.append([rel, a.label or "", a.split])
    return csv_text(HEADER.split(","), rows)


def is_manifest(path) -> bool:
    """A manifest ``split`` wrote: it starts with its header."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(len(HEADER) + 2).rstrip("\r\n") == HEADER
    except OSError:
        return False


def check_not_part_of_a_split(src) -> None:
    """Refuse to split a folder inside a dataset that a split manifest already splits
    (``photos/ants`` beside ``photos/split.csv``): the second manifest would put images the
    first holds out for val and test into its train split, and mixing the two leaks them."""
    from augkit.input.discovery import lists_images_outside, split_manifest_above

    above = split_manifest_above(Path(src)) if os.path.isdir(src) else None
    if above is None or not lists_images_outside(above[0], Path(src)):
        return  # none, or a manifest of this folder as a whole, which --overwrite guards
    manifest, splits = above
    shown = manifest if Path(src).is_absolute() else Path(os.path.relpath(manifest))
    raise UsageError(f"{src} is inside {shown.parent}, which {shown} already splits ({', '.join(splits)}): a second "
                     f"split of part of it would move images between splits; split {shown.parent} itself (with "
                     f"--overwrite to re-split it), or copy {src} out of {shown.parent} to split it on its own")


def check_manifest_path(csv_path, overwrite: bool = False, dataset=None) -> None:
    """Refuse, before any work, a manifest path that holds a file ``split`` did not write
    (unless ``overwrite``) or one of the source's images (``dataset``), whatever ``overwrite``
    says (:func:`augkit.core.files.check_output_file`)."""
    if Path(csv_path).suffix.lower() != ".csv":
        raise UsageError(f"-o {csv_path}: a manifest is a CSV; give a file name ending in .csv, such as split.csv")
    check_output_file(csv_path, option="-o", what="a manifest augkit split wrote", ours=is_manifest,
                      overwrite=overwrite, inside_source=None if dataset is None else dataset.holds,
                      source=str(dataset.root) if dataset is not None else "SRC")


def write_manifest(result: SplitResult, csv_path, overwrite: bool = False, dataset=None) -> bool:
    """Write the manifest atomically; False if an identical one is already there. Another
    manifest is refused unless ``overwrite``: a split is meant to stay; any other file as
    :func:`check_manifest_path` says."""
    check_manifest_path(csv_path, overwrite, dataset)
    text = manifest_text(result, csv_path)
    path = Path(csv_path)
    if path.exists():
        if path.read_text(encoding="utf-8", errors="replace") == text:
            return False
        if not overwrite:
            raise UsageError(f"-o {csv_path}: exists with another split; use another -o, or --overwrite to replace it")
    write_text_atomic(path, text)
    return True


def _destination(a: Assignment) -> PurePosixPath:
    key = PurePosixPath(a.key)
    inside = not key.is_absolute() and ".." not in key.parts
    if inside and (a.label is None or key.parts[0] == a.label):
        return PurePosixPath(a.split) / key  # mirrors the class folders of the source
    return PurePosixPath(a.split, a.label or "", key.name)


def check_materialize_target(out_dir, src_root) -> None:
    """Refuse a --materialize folder before anything is written (the manifest included)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--materialize {out_dir}: exists and is not an empty folder; choose a new folder")
    src_real, out_real = Path(src_root).resolve(), out.resolve()
    if out_real == src_real or src_real in out_real.parents:
        raise UsageError(f"--materialize {out_dir}: is inside the source {src_root}; choose a folder outside it")


def materialize(result: SplitResult, out_dir, src_root, copy: bool = False) -> dict[str, int]:
    """Create ``out_dir/<split>/<label>/<file>`` for every row, as hard links (or copies).
    Returns {"linked": n, "copied": m}. The source is never modified."""
    check_materialize_target(out_dir, src_root)
    out = Path(out_dir)
    taken: Counter = Counter()
    done = Counter(linked=0, copied=0)
    for a in result.rows:
        rel = _destination(a)
        if taken[rel.as_posix().lower()]:  # two files would share a name: keep both
            rel = rel.with_name(f"{rel.stem}-{hashlib.blake2b(a.key.encode('utf-8', 'surrogateescape'), digest_size=3).hexdigest()}{rel.suffix}")
        taken[rel.as_posix().lower()] += 1
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not copy:
            try:
                os.link(a.path, target)
                done["linked"] += 1
                continue
            except OSError:
                pass  # another file system, or one without hard links
        try:
            shutil.copy2(a.path, target)
        except OSError as exc:
            raise UsageError(f"--materialize: cannot copy {a.path} to {target} ({exc.strerror or exc})") from None
        done["copied"] += 1
    return dict(done)
