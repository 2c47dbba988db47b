"""Discovery: which images a source holds, their labels, and a stable key for each.

A source is one of:
- a folder of class folders (``SRC/cat/x.jpg``: label ``cat``), searched recursively;
- a flat folder of images (no labels);
- a CSV manifest with a path column and, optionally, a label column (paths relative to
  the CSV), such as ``augkit split`` writes; ``split=`` selects the rows of one split.

A sample's ``key`` is its path relative to the source, in POSIX form. Seeds and output
names derive from it, so it must not depend on the machine or the order of listing.
Hidden files and folders (``.DS_Store``, ``._x.jpg``, ``.git``) and files whose suffix is
not an image suffix are skipped and counted. The order is sorted by key.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from augkit.decoding import IMAGE_SUFFIXES
from augkit.errors import UsageError

PATH_COLUMNS = ("path", "filepath", "file", "filename", "image", "image_path")
LABEL_COLUMNS = ("label", "class", "category", "target")


@dataclass(frozen=True)
class Sample:
    path: str  # where to read it
    key: str  # stable relative POSIX path: seeds and output names derive from it
    label: str | None = None


@dataclass
class Dataset:
    root: Path
    samples: list[Sample]
    kind: str  # "folders", "flat", "mixed" or "manifest"
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.samples if s.label is not None})

    @property
    def class_to_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.samples)


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def discover(src: str | os.PathLike, *, split: str | None = None) -> Dataset:
    """The samples of a folder or CSV manifest; raises UsageError for an unusable source."""
    path = Path(src)
    if not path.exists():
        raise UsageError(f"{src}: no such file or folder; pass a folder of images or a CSV manifest")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise UsageError(f"{src}: is a file; pass a folder of images or a CSV manifest (.csv)")
        return _from_manifest(path, split)
    if split is not None:
        raise UsageError(f"--split {split} selects rows of a split manifest (CSV), but {src} is a folder")
    return _from_folder(path)


def _from_folder(root: Path) -> Dataset:
    samples: list[Sample] = []
    skipped: dict[str, int] = {}
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a symlink loop: each real folder is listed once
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        hidden_dirs = sum(is_hidden(d) for d in dirnames)
        if hidden_dirs:  # counted once each; their contents are not listed
            skipped["hidden"] = skipped.get("hidden", 0) + hidden_dirs
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        for name in filenames:
            if is_hidden(name):
                skipped["hidden"] = skipped.get("hidden", 0) + 1
                continue
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                skipped["not an image suffix"] = skipped.get("not an image suffix", 0) + 1
                continue
            key = (rel_dir / name).as_posix().removeprefix("./")
            parts = key.split("/")
            label = parts[0] if len(parts) > 1 else None
            samples.append(Sample(os.path.join(dirpath, name), key, label))
    if not samples:
        raise UsageError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    samples.sort(key=lambda s: s.key)
    labelled = sum(s.label is not None for s in samples)
    kind = "folders" if labelled == len(samples) else "flat" if labelled == 0 else "mixed"
    return Dataset(root, samples, kind, skipped)


def _pick(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _from_manifest(csv_path: Path, split: str | None) -> Dataset:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{csv_path}: cannot read the manifest ({exc})") from None
    path_col = _pick(columns, PATH_COLUMNS)
    if path_col is None:
        raise UsageError(f"{csv_path}: no path column; name one of: {', '.join(PATH_COLUMNS)}")
    label_col = _pick(columns, LABEL_COLUMNS)
    split_col = _pick(columns, ("split",))
    if split is not None:
        if split_col is None:
            raise UsageError(f"{csv_path}: --split {split} given but the manifest has no 'split' column")
        available = sorted({r[split_col] for r in rows})
        rows = [r for r in rows if r[split_col] == split]
        if not rows:
            raise UsageError(f"{csv_path}: no rows with split {split!r}; the manifest has: {', '.join(available)}")
    base = csv_path.parent
    samples = []
    seen: set[str] = set()
    for line_no, row in enumerate(rows, start=2):
        raw = (row.get(path_col) or "").strip()
        if not raw:
            raise UsageError(f"{csv_path}:{line_no}: empty {path_col!r}")
        key = PurePosixPath(raw.replace("\\", "/")).as_posix()
        if key in seen:
            raise UsageError(f"{csv_path}:{line_no}: {raw} is listed twice; each image once")
        seen.add(key)
        label = (row.get(label_col) or "").strip() or None if label_col else None
        samples.append(Sample(str(base / raw), key, label))
    if not samples:
        raise UsageError(f"{csv_path}: the manifest lists no images")
    samples.sort(key=lambda s: s.key)
    return Dataset(base, samples, "manifest")
