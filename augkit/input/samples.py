"""What a source holds, whatever its kind: :class:`Sample` and :class:`Dataset`.

A folder, a CSV manifest (:mod:`augkit.input.discovery`) and a set of WebDataset tar shards
(:mod:`augkit.input.shard_sources`) all give a :class:`Dataset` of samples sorted by key.
A sample's ``path`` is where a worker reads its bytes: a file, or a member of a shard
(:class:`augkit.input.shards.ShardMember`, a ``str`` that also knows the member's offset
and size), which the decoder reads like a file. So no stage needs to know the kind.
"""

from __future__ import annotations

import ntpath
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    path: str  # where to read it
    key: str  # stable relative POSIX path: seeds and output names derive from it
    label: str | None = None


@dataclass
class Dataset:
    root: Path
    samples: list[Sample]
    kind: str  # "folders", "flat", "mixed", "manifest", "shards", or "image" (one image file)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    # The classes in index order, where the source fixes the order (shards' ``cls`` index);
    # None: the labels sorted by name.
    class_order: list[str] | None = None

    @property
    def classes(self) -> list[str]:
        if self.class_order is not None:
            return list(self.class_order)
        return sorted({s.label for s in self.samples if s.label is not None})

    @property
    def class_to_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.samples)

    def source_folders(self) -> list[Path]:
        """The folders whose contents are the source: the folder itself, or for a manifest
        the folders its images are in (the CSV's own folder may well hold OUT too), or for
        shards the folders the shards are in."""
        if self.kind == "shards":
            return sorted({Path(os.fspath(getattr(s.path, "shard", s.path))).parent for s in self.samples})
        if self.kind != "manifest":
            return [self.root]
        return sorted({Path(s.path).parent for s in self.samples})

    def holds(self, path: str | os.PathLike) -> bool:
        """Whether a file written at ``path`` would land on this source's images: it is one
        of them (or a shard holding them), or, in a folder source, it would be read as one
        (a visible file with an image suffix anywhere inside the folder). A file written
        there replaces that name only, so ``path`` is compared as a name in its folder."""
        from augkit.input.suffixes import IMAGE_SUFFIXES

        path = Path(path)
        if self.kind in ("folders", "flat", "mixed") and path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                inside = path.resolve().relative_to(Path(self.root).resolve())
            except ValueError:
                inside = None
            if inside is not None and not any(is_hidden(part) for part in inside.parts):
                return True
        if not os.path.lexists(path):
            return False
        folder = path.parent.resolve()
        named = (os.fspath(getattr(s.path, "shard", s.path)) for s in self.samples)
        return any(Path(f).parent.resolve() == folder for f in named if os.path.basename(f) == path.name)


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be one folder name under OUT, or None if it can."""
    if label in (".", ".."):
        return "it names a folder relative to OUT"
    if "/" in label or "\\" in label:
        return "it holds a path separator"
    if ntpath.splitdrive(label)[0]:
        return "it starts with a Windows drive"
    if any(unicodedata.category(ch) == "Cc" for ch in label):
        return "it holds a control character"
    if is_hidden(label):
        return "a name starting with '.' is hidden, and hidden folders are skipped as sources"
    return None
