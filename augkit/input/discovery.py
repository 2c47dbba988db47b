"""Discovery: which images a source holds, their labels, and a stable key for each.

A source is one of:
- WebDataset tar shards: :mod:`augkit.input.shard_sources` (the rest of this docstring is
  about the other kinds);
- a folder of class folders (``SRC/cat/x.jpg``: label ``cat``), searched recursively;
- a flat folder of images (no labels);
- a CSV manifest with a path column and, optionally, a label column (paths relative to
  the CSV), such as ``augkit split`` writes.

A sample's ``key`` is its path relative to the source, in POSIX form. Seeds and output
names derive from it, so it must not depend on the machine or the order of listing.
Hidden files and folders (``.DS_Store``, ``._x.jpg``, ``.git``), files whose suffix is
not an image suffix, and FIFOs, sockets and devices (even named ``x.jpg``: reading one
could wait forever) are skipped and counted. The order is sorted by key.

What is refused, because it would leak a split or write outside an output folder:
- **A split manifest without a split.** A manifest with a ``split`` column needs
  ``split=NAME`` (its rows of that split) or ``split="all"`` (every row, on purpose).
  ``"all"`` is accepted by every source: on a manifest without a split column and on a
  folder it means what no split means, every image.
- **A folder of split folders.** Class-level folders named like splits (train, val,
  valid, validation, test; any case) are refused when one of them holds class folders
  (``SRC/train/cat/x.jpg``), or when every class-level folder has such a name
  (``SRC/train/x.jpg``, ``SRC/test/y.jpg``). A class named "test" that holds its images
  directly, beside other classes, is kept: it may be a real class.
- **A manifest label that is not a plain folder name**: labels name output folders
  (``OUT/<label>/``), so ``.``, ``..``, a ``/`` or ``\\``, a Windows drive (``C:``), a
  control character, or a hidden name (``.git``) is refused with its line.
- **A folder holding its own split manifest**, such as the ``SRC/split.csv`` that ``augkit
  split SRC`` writes (a CSV at the top of the folder with a ``split`` column): the folder
  has every split's images, val and test included. The manifest with ``split=NAME`` is
  what was meant; ``split="all"`` takes every image on purpose. Refused for what trains or
  makes training data (augment, flow and the adapters, stream, cache-features); ``stats``,
  ``preview``, ``split`` and ``predict`` read the folder (``for_training=False``).
- **A folder inside a split dataset**, such as ``photos/ants`` when ``photos/split.csv``
  puts its images in train, val and test: refused likewise, for the same commands, when a
  split manifest at the top of one of the three folders above it (as above) gives the
  images it lists inside the folder more than one split. A folder whose listed images are
  all of one split (``data/train`` beside a ``data/split.csv``) is that split's folder.
- **The same image twice**, as written or after normalising (``imgs/../imgs/x.jpg`` is
  ``imgs/x.jpg``), in any rows of the manifest: across splits that would be a leak.

A manifest key is the path as written, with ``\\`` as ``/``, normalised (``a/./b``, ``a//b``
and ``a/../b`` collapse). An image outside the CSV's folder has a key that starts with
``../`` or ``/`` (a Windows drive becomes ``/C:/...``); every other key is relative with
no ``..`` part, so it stays inside any folder it is joined to.
"""

from __future__ import annotations

import csv
import ntpath
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from augkit.core.errors import UsageError
from augkit.core.files import TEXT_ERRORS
from augkit.input.shard_sources import discover_shards, is_shard_source
from augkit.input.samples import Dataset, Sample, is_hidden, label_problem
from augkit.input.suffixes import IMAGE_SUFFIXES

PATH_COLUMNS = ("path", "filepath", "file", "filename", "image", "image_path")
LABEL_COLUMNS = ("label", "class", "category", "target")
SPLIT_FOLDER_NAMES = ("train", "val", "valid", "validation", "test")
ALL = "all"  # split= value meaning every row, on purpose
NOT_A_FILE = "not a regular file"  # the skipped reason of a FIFO, socket or device with an image suffix


def discover(src: str | os.PathLike, *, split: str | None = None, for_training: bool = True,
             held_out: bool = False) -> Dataset:
    """The samples of a folder or CSV manifest; raises UsageError for an unusable source.

    ``split``: the rows of one split of a split manifest, or ``"all"`` for every image.
    ``for_training=False`` (stats, preview, split, predict: nothing read is trained on): a
    folder holding its split manifest, or inside a folder whose split manifest lists its
    images in several splits, is read all the same.
    ``held_out=True`` (predict: a model is judged on images it did not train on): a folder
    of split folders, or a split manifest without a split, is refused naming val (or test)
    to pass, not train.
    Tar shards (a .tar, a folder of them, a brace pattern, :class:`~augkit.input.shard_sources.Shards`)
    are read by :mod:`augkit.input.shard_sources`."""
    if is_shard_source(src):
        return discover_shards(src, split=split)
    path = Path(src)
    if not path.exists():
        raise UsageError(f"{src}: no such file or folder; pass a folder of images or a CSV manifest")
    if not path.is_file() and not path.is_dir():  # reading a FIFO waits for a writer, forever
        raise UsageError(f"{src}: is {_what_is(path)}, not a file or folder; pass a folder of images or a CSV manifest")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise UsageError(f"{src}: is a file; pass a folder of images or a CSV manifest (.csv)")
        return _from_manifest(path, split, held_out)
    if split is not None and split != ALL:
        folder = _child_folder(path, split)
        if folder is not None:
            raise UsageError(f"--split {split} selects rows of a split manifest (CSV), but {src} is a folder; "
                             f"pass {folder} as SRC instead")
        inside = _split_manifest_inside(path)
        fix = f"; pass {inside} --split {split}" if inside is not None else ""
        raise UsageError(f"--split {split} selects rows of a split manifest (CSV), but {src} is a folder{fix}")
    guarded = for_training and split != ALL  # split="all": every image, on purpose
    manifest = _split_manifest_inside(path) if guarded else None
    if manifest is not None:
        why = f"{src} holds {manifest.name}, a split manifest: the folder has every split's images, val and test included"
        raise UsageError(f"{why}; pass {manifest} with split='train' (one split), or split='all' to use every image "
                         f"on purpose",
                         cli=f"{why}; pass {manifest} --split train (one split), or --split all to use every image on "
                             f"purpose")
    above = split_manifest_above(path) if guarded else None
    if above is not None:
        manifest, splits = above
        shown = manifest if path.is_absolute() else Path(os.path.relpath(manifest))
        suggest = _suggested_split(splits)
        why = (f"{src} is inside {shown.parent}, which holds {shown.name}, a split manifest that puts the folder's "
               f"images in splits {', '.join(splits)}")
        raise UsageError(f"{why}; pass {shown} with split={suggest!r} (one split, every class), or split='all' to "
                         f"use every image of {src} on purpose",
                         cli=f"{why}; pass {shown} --split {suggest} (one split, every class), or {src} --split all to "
                             f"use every image of {src} on purpose")
    return _from_folder(path, held_out)


def _suggested_split(names, held_out: bool = False) -> str:
    """The split a refusal suggests among ``names``: train, or to judge a model (``held_out``)
    val, valid, validation or test, in that order; else the first name."""
    preferred = ("val", "valid", "validation", "test") if held_out else ("train",)
    return min(names, key=lambda name: (preferred + (name.lower(),)).index(name.lower()))


def _split_manifest_inside(root: Path) -> Path | None:
    """A CSV at the top of ``root`` with a ``split`` column (as ``augkit split`` writes), if any."""
    try:
        with os.scandir(root) as entries:
            names = sorted(e.name for e in entries
                           if e.name.lower().endswith(".csv") and not is_hidden(e.name) and e.is_file())
    except OSError:
        return None
    for name in names:
        try:
            with open(root / name, newline="", encoding="utf-8-sig", errors=TEXT_ERRORS) as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        if _pick(header, ("split",)) is not None and _pick(header, PATH_COLUMNS) is not None:
            return root / name
    return None


def split_manifest_above(root: Path, levels: int = 3) -> tuple[Path, list[str]] | None:
    """A split manifest at the top of one of the ``levels`` folders above ``root`` that puts
    the images it lists inside ``root`` in more than one split (``photos/split.csv`` for
    ``photos/ants``), and those splits; the folders are ``root``'s as written, made absolute."""
    where = Path(os.path.abspath(root))
    for folder in list(where.parents)[:levels]:
        manifest = _split_manifest_inside(folder)
        splits = _splits_inside(manifest, where) if manifest is not None else []
        if len(splits) > 1:
            return manifest, splits
    return None


def _splits_inside(manifest: Path, root: Path) -> list[str]:
    """The split names ``manifest`` gives the images it lists inside ``root`` (absolute,
    normalised), its paths read relative to the CSV as :func:`_from_manifest` reads them."""
    inside = _posix_key(str(root)).rstrip("/") + "/"
    return sorted({name for place, name in _listed(manifest) if name and place.startswith(inside)})


def lists_images_outside(manifest: Path, root: Path) -> bool:
    """Whether ``manifest`` lists images outside the folder ``root`` (absolute): it splits
    more than that folder."""
    inside = _posix_key(os.path.abspath(root)).rstrip("/") + "/"
    return any(not place.startswith(inside) for place, _name in _listed(manifest))


def _listed(manifest: Path) -> Iterator[tuple[str, str]]:
    """(absolute place, split name) of each row of ``manifest``; nothing when it cannot be
    read (passed as SRC, the manifest says what is wrong with it)."""
    base = _posix_key(str(manifest.parent))
    try:
        with open(manifest, newline="", encoding="utf-8-sig", errors=TEXT_ERRORS) as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            path_col, split_col = _pick(columns, PATH_COLUMNS), _pick(columns, ("split",))
            for row in reader:
                raw = (row.get(path_col) or "").strip()
                if raw:
                    yield _image_place(base, _posix_key(raw)), (row.get(split_col) or "").strip()
    except (OSError, UnicodeDecodeError, csv.Error):
        return


def _what_is(path: Path) -> str:
    """The kind of a path that is neither a regular file nor a folder, in words."""
    kinds = (("is_fifo", "a named pipe (FIFO)"), ("is_socket", "a socket"),
             ("is_char_device", "a character device"), ("is_block_device", "a block device"))
    return next((words for test, words in kinds if getattr(path, test)()), "neither")


def _child_folder(root: Path, name: str) -> Path | None:
    """The folder ``root/name``, its name matched case-insensitively, if there is one."""
    try:
        with os.scandir(root) as entries:
            names = sorted(e.name for e in entries if e.name.lower() == name.lower() and e.is_dir())
    except OSError:
        return None
    return root / names[0] if names else None


def _from_folder(root: Path, held_out: bool = False) -> Dataset:
    samples: list[Sample] = []
    skipped: dict[str, int] = {}

    def skip(reason: str, n: int = 1) -> None:
        skipped[reason] = skipped.get(reason, 0) + n

    for dirpath, dirnames, filenames, others in _walk(root):
        hidden_dirs = sum(is_hidden(d) for d in dirnames)
        if hidden_dirs:  # counted once each; their contents are not listed
            skip("hidden", hidden_dirs)
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        for name, regular in [(name, True) for name in filenames] + [(name, False) for name in others]:
            if is_hidden(name):
                skip("hidden")
            elif Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                skip("not an image suffix")
            elif not regular:
                skip(NOT_A_FILE)  # reading it as an image would wait forever (FIFO) or never end (device)
            else:
                key = (rel_dir / name).as_posix().removeprefix("./")
                parts = key.split("/")
                label = parts[0] if len(parts) > 1 else None
                samples.append(Sample(os.path.join(dirpath, name), key, label))
    if not samples:
        raise UsageError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    samples.sort(key=lambda s: s.key)
    _refuse_split_folders(root, samples, held_out)
    labelled = sum(s.label is not None for s in samples)
    kind = "folders" if labelled == len(samples) else "flat" if labelled == 0 else "mixed"
    return Dataset(root, samples, kind, skipped)


def _walk(root: Path):
    """os.walk(root, followlinks=True), top-down, but each folder's non-folders split in
    two: (dirpath, dirnames, files, others). ``others`` are FIFOs, sockets and devices,
    told apart from files by the listing's own entry types (no stat per file, except
    for symlinks). A symlink to nothing stays a file: reading it fails with "missing",
    as for a file deleted after discovery. Each real folder is listed once, so a
    symlink loop ends; unreadable folders are passed over, as os.walk does."""
    seen: set[str] = set()
    stack = [os.fspath(root)]
    while stack:
        dirpath = stack.pop()
        real = os.path.realpath(dirpath)
        if real in seen:
            continue
        seen.add(real)
        dirnames, files, others = [], [], []
        try:
            with os.scandir(dirpath) as entries:
                for entry in entries:
                    (dirnames if _is_dir(entry) else files if _is_file(entry) else others).append(entry.name)
        except OSError:
            continue
        yield dirpath, dirnames, files, others  # the caller prunes and orders dirnames
        stack.extend(os.path.join(dirpath, d) for d in reversed(dirnames))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path))
    except OSError:
        return True  # cannot tell: let reading it say what is wrong


def _refuse_split_folders(root: Path, samples: list[Sample], held_out: bool = False) -> None:
    """Split folders read as classes would mix train and val into one training set. The fix
    names the train folder, or with ``held_out`` the val folder (else valid, validation, test)."""
    classes = {s.label for s in samples if s.label is not None}
    split_like = sorted(c for c in classes if c.lower() in SPLIT_FOLDER_NAMES)
    holding_classes = {s.label for s in samples if s.label in split_like and s.key.count("/") >= 2}
    if holding_classes or (split_like and len(split_like) == len(classes)):
        first = _suggested_split(split_like, held_out)
        raise UsageError(f"{root}: holds split folders ({', '.join(split_like)}), not classes: pass "
                         f"{root / first} as SRC (each split folder is a source of its own), or list the images "
                         f"in a CSV manifest with path, label and split columns")


def _pick(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _from_manifest(csv_path: Path, split: str | None, held_out: bool = False) -> Dataset:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig", errors=TEXT_ERRORS) as f:
            reader = csv.DictReader(f)
            rows = [(reader.line_num, row) for row in reader]  # the line a row ends on
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{csv_path}: cannot read the manifest ({exc})") from None
    path_col = _pick(columns, PATH_COLUMNS)
    if path_col is None:
        raise UsageError(f"{csv_path}: no path column; name one of: {', '.join(PATH_COLUMNS)}")
    label_col = _pick(columns, LABEL_COLUMNS)
    split_col = _pick(columns, ("split",))
    base = csv_path.parent
    base_key = _posix_key(str(base.absolute()))
    listed = []
    seen: dict[str, int] = {}  # the image's absolute normalised path -> its line
    for line_no, row in rows:
        raw = (row.get(path_col) or "").strip()
        if not raw:
            raise UsageError(f"{csv_path}:{line_no}: empty {path_col!r}")
        key = _manifest_key(csv_path, line_no, raw)
        where = _image_place(base_key, key)
        if where in seen:  # in any two rows, whatever their splits: across splits it is a leak
            raise UsageError(f"{csv_path}:{line_no}: {raw} is listed twice (first on line {seen[where]}); each image once")
        seen[where] = line_no
        label = (row.get(label_col) or "").strip() or None if label_col else None
        if label is not None:
            _check_label(csv_path, line_no, label)
        split_name = (row.get(split_col) or "").strip() if split_col else ""
        listed.append((Sample(str(base / raw.replace("\\", "/")), key, label), split_name))
    samples = _select_split(csv_path, listed, split, has_split_column=split_col is not None, held_out=held_out)
    if not samples:
        raise UsageError(f"{csv_path}: the manifest lists no images")
    samples.sort(key=lambda s: s.key)
    return Dataset(base, samples, "manifest")


def _select_split(csv_path: Path, listed: list[tuple[Sample, str]], split: str | None,
                  has_split_column: bool, held_out: bool = False) -> list[Sample]:
    names = sorted({name for _, name in listed if name})  # a column of empty cells holds no splits
    if split == ALL:
        if ALL in names:
            raise UsageError(f"{csv_path}: has a split named {ALL!r}, which --split all (every row) cannot select; "
                             f"rename that split")
        return [sample for sample, _ in listed]
    if split is None:
        if names:
            suggest = _suggested_split(names, held_out)
            raise UsageError(f"{csv_path} has splits {', '.join(names)}: pass split={suggest!r}, or split='all' to "
                             f"use every row",
                             cli=f"{csv_path} has splits {', '.join(names)}: pass --split {suggest}, or --split all "
                                 f"to use every row")
        return [sample for sample, _ in listed]
    if not has_split_column:
        raise UsageError(f"{csv_path}: --split {split} given but the manifest has no 'split' column")
    chosen = [sample for sample, name in listed if name == split]
    if not chosen:
        raise UsageError(f"{csv_path}: no rows with split {split!r}; the manifest has: {', '.join(names) or 'none'}")
    return chosen


def _manifest_key(csv_path: Path, line_no: int, raw: str) -> str:
    """The path as written, in POSIX form and normalised; see the module docstring."""
    if "\x00" in raw:
        raise UsageError(f"{csv_path}:{line_no}: the path {raw!r} holds a NUL character; no file has such a name")
    key = _posix_key(raw)
    if raw.endswith(("/", "\\")) or PurePosixPath(key).name in ("", ".."):  # normpath leaves no other "."
        raise UsageError(f"{csv_path}:{line_no}: the path {raw!r} names a folder, not an image; give an image file")
    return key


def _image_place(base_key: str, key: str) -> str:
    """Where a manifest key's image is, as an absolute normalised POSIX path: ``base_key`` is
    the CSV's folder (absolute, as :func:`_posix_key` writes it)."""
    return key if key.startswith("/") else posixpath.normpath(f"{base_key}/{key}")


def _posix_key(path: str) -> str:
    key = posixpath.normpath(path.replace("\\", "/"))
    if ntpath.splitdrive(path)[0][1:2] == ":":  # C:/x.jpg, or C:x.jpg: not relative on Windows
        key = "/" + key
    return key


def _check_label(csv_path: Path, line_no: int, label: str) -> None:
    problem = label_problem(label)
    if problem:
        raise UsageError(f"{csv_path}:{line_no}: label {label!r} is not a plain folder name ({problem}); labels name "
                         f"the output folders OUT/<label>/, so use a name such as 'cat' or 'golden retriever'")
