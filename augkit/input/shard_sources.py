"""WebDataset tar shards as a source: which shards, their samples, keys and labels.

A shard source is one of:
- a tar file (``data/shard-000000.tar``);
- a folder whose top level holds ``.tar`` files (a folder that also holds images or
  folders is refused: which of the two was meant?); other files there, such as the
  reports ``augkit augment`` writes beside its shards, are skipped and counted;
- a brace pattern, ``data/shard-{000000..000099}.tar`` or ``data/{a,b}.tar``, whose every
  shard must exist;
- :class:`Shards` (``augkit.Shards(source, label_key=...)``), to read labels elsewhere.

A sample is a group of members sharing a WebDataset key (:func:`augkit.input.shards.split_name`)
with an image member (an image suffix as its extension; the first, should there be more).
Its ``key`` is that image member's name, ``__key__`` plus the extension: the path the
image would have in a folder, so a folder and the shards made from it give the same keys,
hence the same seeds. Keys are unique across the source (UsageError otherwise).

Labels come from the ``cls`` member by default: a class index, WebDataset's convention.
Classes are then in index order (``y`` is ``cls``), named by the sample's ``json``
``label`` where it has one (augkit writes it), else by the index itself. Another
``label_key`` (``--label-key txt``) names a member holding the class name as text; classes
are then sorted by name, as for folders. A ``cls`` that is not a whole number, and the rest
of a damaged shard, are failure rows like bad files (the sample's path raises a
DecodeError saying why when read).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from augkit.core.errors import UsageError
from augkit.input.samples import Dataset, Sample, is_hidden, label_problem
from augkit.input.shards import TAR_SUFFIX, ShardIndex, ShardMember, index_shard
from augkit.input.suffixes import IMAGE_SUFFIXES

DEFAULT_LABEL_KEY = "cls"
MAX_SHARDS = 1_000_000  # a brace pattern expanding to more is a typo, not a dataset
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"(\d+)\.\.(\d+)")


class Shards(os.PathLike):
    """Tar shards as a source, with the member that holds each sample's label: ``cls`` (a
    class index, the default) or another (``txt``: the class name as text)."""

    def __init__(self, source: str | os.PathLike, label_key: str = DEFAULT_LABEL_KEY):
        self.source = os.fspath(source)
        self.label_key = label_key.strip().lstrip(".").lower()
        if not self.label_key or "/" in self.label_key:
            raise UsageError(f"--label-key {label_key!r}: name a member's extension, such as cls or txt")

    def __fspath__(self) -> str:
        return self.source

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Shards({self.source!r}, label_key={self.label_key!r})"


def is_shard_source(src: str | os.PathLike) -> bool:
    """Whether ``src`` names tar shards (see the module docstring); cheap: one listing at most."""
    if isinstance(src, Shards):
        return True
    text = os.fspath(src)
    if not os.path.exists(text):
        return _BRACE.search(text) is not None
    if os.path.isfile(text):
        return text.lower().endswith(TAR_SUFFIX)
    try:
        with os.scandir(text) as entries:
            return any(_is_shard_file(entry) for entry in entries)
    except OSError:
        return False


def _is_shard_file(entry: os.DirEntry) -> bool:
    try:
        return entry.name.lower().endswith(TAR_SUFFIX) and not is_hidden(entry.name) and entry.is_file()
    except OSError:
        return False


def expand_braces(pattern: str) -> list[str]:
    """Every name a brace pattern stands for, in order: ``{000..002}`` counts (zero-padded
    as written), ``{a,b}`` lists; several groups multiply."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    count = _RANGE.fullmatch(body)
    if count:
        first, last = count.groups()
        if int(first) > int(last):
            raise UsageError(f"{pattern}: the range {{{body}}} counts down; write it from the lower number")
        if int(last) - int(first) >= MAX_SHARDS:
            raise UsageError(f"{pattern}: the range {{{body}}} names over {MAX_SHARDS:,} shards; check the numbers")
        width = len(first) if len(first) > 1 and first.startswith("0") else 0  # {000000..000099}: as written
        values = [f"{i:0{width}d}" for i in range(int(first), int(last) + 1)]
    elif "," in body:
        values = body.split(",")
    else:
        raise UsageError(f"{pattern}: {{{body}}} is neither a range ({{000000..000099}}) nor a list ({{a,b}})")
    head, tail = pattern[:match.start()], pattern[match.end():]
    expanded = [name for value in values for name in expand_braces(head + value + tail)]
    if len(expanded) > MAX_SHARDS:
        raise UsageError(f"{pattern}: names over {MAX_SHARDS:,} shards; check the pattern")
    return expanded


def shard_paths(src: str | os.PathLike) -> tuple[Path, list[str], dict[str, int]]:
    """(root, the shards in order, what was skipped beside them) of a shard source."""
    text = os.fspath(src)
    if not os.path.exists(text) and _BRACE.search(text):
        paths = expand_braces(text)
        for path in paths:
            _require_shard_file(path, f" (from the pattern {text})")
        return Path(paths[0]).parent, paths, {}
    path = Path(text)
    if not path.exists():
        raise UsageError(f"{text}: no such file or folder; pass a folder of images, a CSV manifest or tar shards")
    if path.is_dir():
        return path, *_folder_shards(path, src)
    _require_shard_file(text, "")
    return path.parent, [text], {}


def _require_shard_file(path: str, where: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise UsageError(f"{path}{where}: no such shard; check the name or the range") from None
    if not stat.S_ISREG(mode):  # opening a FIFO would wait for a writer, forever
        raise UsageError(f"{path}{where}: is not a regular file; a shard is a .tar file")
    if not path.lower().endswith(TAR_SUFFIX):
        raise UsageError(f"{path}{where}: is not a .tar file; pass tar shards (WebDataset), a folder of images or "
                         f"a CSV manifest")


def _folder_shards(folder: Path, src) -> tuple[list[str], dict[str, int]]:
    shards, others, skipped = [], [], {}
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if _is_shard_file(entry):
                shards.append(entry.path)
            elif is_hidden(entry.name):
                skipped["hidden"] = skipped.get("hidden", 0) + 1
            elif _holds_anything(entry) or Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                others.append(entry.name)
            else:
                skipped["not a shard"] = skipped.get("not a shard", 0) + 1
    if not shards:
        raise UsageError(f"{src}: holds no .tar shards; --label-key reads labels of tar shards (WebDataset)")
    if others:
        raise UsageError(f"{folder}: holds tar shards ({Path(shards[0]).name}) and images or folders ({others[0]}); "
                         f"pass the shards as a pattern ({folder}/name-{{000000..000009}}.tar) or move them apart")
    return shards, skipped


def _holds_anything(entry: os.DirEntry) -> bool:
    """A folder that is not empty (an empty one, such as a class folder an overwrite
    emptied, says nothing about what the source is)."""
    try:
        if not entry.is_dir():
            return False
        with os.scandir(entry.path) as inside:
            return any(True for _ in inside)
    except OSError:
        return False


def discover_shards(src: str | os.PathLike, *, split: str | None = None) -> Dataset:
    """The samples of a shard source, sorted by key (see the module docstring)."""
    if split not in (None, "all"):
        raise UsageError(f"--split {split} selects rows of a split manifest (CSV), but {src} is tar shards")
    label_key = src.label_key if isinstance(src, Shards) else DEFAULT_LABEL_KEY
    root, paths, skipped = shard_paths(src)
    reading = _Reading(label_key, skipped)
    for path in paths:
        reading.add_shard(path, index_shard(path, frozenset({label_key, "json"})))
    if not reading.samples:
        raise UsageError(f"{src}: no samples with an image found in {len(paths)} shard(s) (members named KEY.jpg, "
                         f"KEY.png, ...: WebDataset's layout)")
    samples = sorted(reading.samples, key=lambda s: s.key)
    return Dataset(root, samples, "shards", reading.skipped, reading.class_order())


class _Reading:
    """The samples of one source, shard by shard, with their labels and where each key is."""

    def __init__(self, label_key: str, skipped: dict[str, int]):
        self.label_key = label_key
        self.skipped = dict(skipped)
        self.samples: list[Sample] = []
        self.where: dict[str, str] = {}  # key -> its shard
        self.names: dict[int, tuple[str, str]] = {}  # class index -> (name, the member that named it)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def add_shard(self, path: str, index: ShardIndex) -> None:
        groups: dict[str, list] = {}
        for member in index.members:
            parts = member.parts
            if parts is None:
                self.skip("member without a sample key")
            else:
                groups.setdefault(parts[0], []).append((parts[1], member))
        for members in groups.values():
            images = [m for ext, m in members if f".{ext}" in IMAGE_SUFFIXES]
            if not images:
                self.skip("sample without an image")
                continue
            if len(images) > 1:
                self.skip("second image of a sample", len(images) - 1)
            first = {}
            for ext, member in members:
                first.setdefault(ext, member)
            self._add(path, images[0], first.get(self.label_key), first.get("json"))
        if index.problem is not None:  # the rest of the shard: one failure row
            name = Path(path).name
            self._add_sample(path, Sample(ShardMember(path, "", 0, 0, ("corrupt", index.problem)), name))

    def _add(self, path: str, image, label_member, json_member) -> None:
        label, problem = self._label(path, label_member, json_member)
        where = ShardMember(path, image.name, image.offset, image.size, problem)
        self._add_sample(path, Sample(where, image.name, label))

    def _add_sample(self, path: str, sample: Sample) -> None:
        if sample.key in self.where:
            raise UsageError(f"{sample.key}: in {self.where[sample.key]} and in {path}; each sample once (its key "
                             f"is WebDataset's __key__ and the image's extension)")
        self.where[sample.key] = path
        self.samples.append(sample)

    def _label(self, path: str, member, json_member) -> tuple[str | None, tuple[str, str] | None]:
        """(label, problem) of a sample from its label member (and json, for a cls's name)."""
        if member is None:
            return None, None
        if member.data is None:
            return None, ("corrupt", f"its {self.label_key} member is {member.size} bytes: too big for a label")
        text = member.data.decode("utf-8", "replace").strip()
        if self.label_key != DEFAULT_LABEL_KEY:
            self._check_name(path, member.name, text)
            return text or None, None
        if not text.isdecimal() or not text.isascii():
            return None, ("corrupt", f"its cls member holds {text[:40]!r}, not a class index (a whole number); "
                                     f"--label-key names another member to read labels from")
        index = int(text)
        name = _json_label(json_member) or str(index)
        self._check_name(path, (json_member or member).name, name)
        known = self.names.setdefault(index, (name, f"{path}/{member.name}"))
        if known[0] != name:
            raise UsageError(f"{path}/{member.name}: class {index} is named {name!r} here and {known[0]!r} in "
                             f"{known[1]}; one name per class index")
        return name, None

    def _check_name(self, path: str, member: str, name: str) -> None:
        problem = label_problem(name) if name else None
        if problem:
            raise UsageError(f"{path}/{member}: label {name!r} is not a plain folder name ({problem}); labels name "
                             f"the output folders OUT/<label>/, so use a name such as 'cat' or 'golden retriever'")

    def class_order(self) -> list[str] | None:
        """With cls labels, the class names in index order (an index no sample has is named
        by its number); None otherwise: classes sorted by name."""
        if self.label_key != DEFAULT_LABEL_KEY or not self.names:
            return None
        order = [self.names[i][0] if i in self.names else str(i) for i in range(max(self.names) + 1)]
        if len(set(order)) < len(order):
            twice = next(name for name in order if order.count(name) > 1)
            indices = [i for i, name in enumerate(order) if name == twice]
            raise UsageError(f"class name {twice!r} is given to class indices {indices[0]} and {indices[1]} (a json "
                             f"label, or an index named by its number); one name per class")
        return order


def _json_label(member) -> str | None:
    """The ``label`` of a sample's json member, when it holds a name."""
    if member is None or member.data is None:
        return None
    try:
        value = json.loads(member.data)
    except ValueError:
        return None
    label = value.get("label") if isinstance(value, dict) else None
    return label.strip() or None if isinstance(label, str) else None
