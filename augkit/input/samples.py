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
    kind: str  # "folders", "flat", "mixed", "manifest" or "shards"
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
