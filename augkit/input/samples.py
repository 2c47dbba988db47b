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
        """The folders whose contents are the source, where nothing is written: the folder
        itself; for shards the folders the shards are in; for a manifest the folders its
        images are in and the dataset's own folder, the deepest folder holding them all,
        when that is the CSV's folder or inside it (``photos/`` for a ``photos/split.csv``
        listing ``ants/...`` and ``bees/...``, ``sample_data/`` for a ``split.csv`` beside
        it: a folder run such as the next ``augkit split`` reads anything written there).
        The CSV's folder is not one otherwise: a project folder may hold the CSV beside OUT,
        and the common folder of images from unrelated places may be ``/`` or a home folder."""
        if self.kind == "shards":
            return sorted({Path(os.fspath(getattr(s.path, "shard", s.path))).parent for s in self.samples})
        if self.kind != "manifest":
            return [self.root]
        folders = {Path(s.path).parent for s in self.samples}
        dataset = _dataset_folder(Path(self.root), folders)
        return sorted(folders | ({dataset} if dataset is not None else set()))

    def holds(self, path: str | os.PathLike) -> Path | bool:
        """Whether a file written at ``path`` would land on this source's images: it is one
        of them (or a shard holding them): True; or it would be read as one by a folder run
        (a visible file with an image suffix anywhere inside a folder source, or inside one
        of a manifest's :meth:`source_folders`): that folder, as the source names it (a
        refusal names it). A file written there replaces that name only, so ``path`` is
        compared as a name in its folder."""
        from augkit.input.suffixes import IMAGE_SUFFIXES

        path = Path(path)
        if self.kind in ("folders", "flat", "mixed", "manifest") and path.suffix.lower() in IMAGE_SUFFIXES:
            where = path.resolve()
            for folder in self.source_folders():
                try:
                    inside = where.relative_to(Path(folder).resolve())
                except ValueError:
                    continue
                if not any(is_hidden(part) for part in inside.parts):
                    return Path(folder)
        if not os.path.lexists(path):
            return False
        folder = path.parent.resolve()
        named = (os.fspath(getattr(s.path, "shard", s.path)) for s in self.samples)
        return any(Path(f).parent.resolve() == folder for f in named if os.path.basename(f) == path.name)


def _dataset_folder(csv_folder: Path, image_folders: set[Path]) -> Path | None:
    """The deepest folder holding every image folder, as a path under ``csv_folder``, if it
    is ``csv_folder`` or inside it; None for images whose common folder lies above it."""
    try:
        common = os.path.commonpath([os.path.abspath(f) for f in image_folders])
        below = os.path.relpath(common, os.path.abspath(csv_folder))
    except ValueError:  # no folders, or folders on different Windows drives
        return None
    if below == os.pardir or below.startswith(os.pardir + os.sep):
        return None
    return csv_folder / below  # csv_folder / "." is csv_folder


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
