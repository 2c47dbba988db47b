"""The file helpers every stage shares: whole-or-nothing writes, and CSV text.

A file augkit writes appears complete or not at all: it is written under a temporary name
in the same folder (``.<name>.augkit-tmp-<pid>-<n>``) and renamed into place with
``os.replace``. A run killed mid-write leaves only such a temporary, which the next run
sweeps away with :func:`remove_temporaries`, and only where the file it would have become
is one of that run's own: a user's ``.notes.tmp-draft`` is never taken for one. (No fsync: a power cut may lose recent files, never leave a
half-written one under its real name on the journaling filesystems in common use.)
"""

from __future__ import annotations

import csv
import io
import json
import itertools
import os
import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

_counter = itertools.count()  # unique temporaries for threads of one process
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.augkit-tmp-\d+-\d+")


def temporary_name(name: str) -> str:
    return f".{name}.augkit-tmp-{os.getpid()}-{next(_counter)}"


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(f)`` on a temporary file, then move it to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temporary_name(path.name))
    try:
        with open(tmp, "xb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as exc:
        raise _naming(exc, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, parents: bool = True) -> None:
    """``data`` into ``path``, whole or not at all; with plain system calls, as this is the
    per-image path of ``augment`` (``parents=False`` when the caller made the folders)."""
    path = os.fspath(path)
    if parents:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, temporary_name(name))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise


def _naming(exc: OSError, path) -> OSError:
    """The error as the file the caller asked for, not its temporary (or no name at all)."""
    return OSError(exc.errno, exc.strerror or str(exc), os.fspath(path))


# File names are bytes on POSIX: a name that is not UTF-8 reaches Python with surrogate
# escapes (os.fsdecode), and goes back out as the same bytes, so it round-trips through
# every CSV augkit writes and reads (JSON escapes it as \\udcXX, which round-trips too).
TEXT_ERRORS = "surrogateescape"


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8", TEXT_ERRORS))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """``data`` as indented JSON at ``path``, whole or not at all. A file written outside
    any folder augkit holds (``stats -o``): the temporaries an earlier write of this same
    file left when it was killed are swept first, as a run sweeps its own folder's."""
    path = Path(path)
    remove_temporaries(path.parent, lambda name: name == path.name)
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def remove_temporaries(folder: str | os.PathLike, ours: Callable[[str], bool]) -> None:
    """Delete the temporaries a killed run left in ``folder`` (not below it) for the files
    ``ours(name)`` says the run writes there; anything else is left as it is."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match and ours(match["target"]) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


# Names an operating system drops into any folder; a folder holding only these is empty.
NOT_CONTENT = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".augkit-lock"})


def is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_paths(src_folders: list[Path], out: Path) -> None:
    """Refuse an output folder (augment's OUT, a feature CACHE) inside the source, or one
    that holds it: a run would read its own outputs, or an overwrite remove its inputs."""
    from augkit.core.errors import UsageError

    out_real = out.resolve()
    for folder in src_folders:
        src_real = folder.resolve()
        if is_within(out_real, src_real):
            raise UsageError(f"{out}: OUT is inside SRC ({folder}); choose an output folder outside the source")
        if is_within(src_real, out_real):
            raise UsageError(f"{out}: SRC ({folder}) is inside OUT; choose an output folder that does not contain the source")


def is_empty_folder(folder: str | os.PathLike) -> bool:
    return all(entry.name in NOT_CONTENT for entry in os.scandir(folder))


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str):
    """Hold ``folder`` for one run: a second process asking for it is refused (UsageError)
    until the first ends, however it ends (the kernel drops the lock with the process).
    Where ``fcntl`` is missing (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    from augkit.core.errors import UsageError

    fd = os.open(os.path.join(folder, ".augkit-lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{folder}: another augkit run is writing to this {what} now; wait for it to end, "
                             f"or choose another {what}") from None
        yield
    finally:
        os.close(fd)


# --- a single output file a command writes ------------------------------------------------

# What a file already at an output path is, read from its first bytes, for the refusal.
_KINDS = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"GIF8", "a GIF image"),
          (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"BM", "a BMP image"))


def _what_it_is(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            start = f.read(16)
    except OSError:
        return None
    if start[:4] == b"RIFF" and start[8:12] == b"WEBP":
        return "a WebP image"
    return next((kind for signature, kind in _KINDS if start.startswith(signature)), None)


def check_output_file(path: str | os.PathLike, *, option: str, what: str, ours: Callable[[Path], bool],
                      overwrite: bool | None = None, inside_source: Callable[[Path], Path | bool] | None = None,
                      source: str = "SRC", inputs: str = "images") -> None:
    """The one rule for a single file a command writes (``stats -o``/``--plot``, ``preview
    -o``, ``predict``'s CSV and ``--plot``, ``split``'s manifest), checked before any work.

    A file already at ``path`` is replaced only when ``ours(path)`` recognises it as one
    augkit wrote for this command (``what`` names that kind), or with ``overwrite``
    (None: the command has no ``--overwrite``). A path that ``inside_source`` says is one
    of the source's images (``inputs`` names what they are), or would be read as one (it
    may answer with the folder, which the refusal then names), is
    refused even with ``overwrite``: augkit never writes into its inputs. UsageError: one line naming the file, what it is
    and the fix."""
    from augkit.core.errors import UsageError

    path = Path(path)
    named = f"{option} {path}"
    if path.is_dir():
        raise UsageError(f"{named}: is a folder; give a file name")
    exists = os.path.lexists(path)
    held = inside_source(path) if inside_source is not None else False
    if held:
        if exists:
            raise UsageError(f"{named}: is one of the input {inputs} ({source}); augkit never writes over its "
                             f"inputs: choose another path")
        folder = held if isinstance(held, Path) else source  # the source's folder it lands in, when it says
        raise UsageError(f"{named}: is inside {folder}, where it would be read as one of its images; choose a path "
                         f"outside it")
    if not exists or overwrite or ours(path):
        return
    kind = _what_it_is(path)
    fix = "choose another path" + (", or --overwrite to replace it" if overwrite is not None else "")
    raise UsageError(f"{named}: exists and is {kind + ', ' if kind else ''}not {what}; {fix}")


def file_stamp(path: str | os.PathLike) -> tuple[int, int] | None:
    """(size, mtime in ns) of a source file, or None when it cannot be read: enough to tell
    that a file was replaced or edited since a run recorded it. A path that knows its own
    stamp (a tar shard's member, ``augkit.input.shards.ShardMember``) gives that."""
    own = getattr(path, "stamp", None)
    if callable(own):
        return own()
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class CsvWriter:
    """``csv.writer`` that also quotes a row holding a carriage return: the csv module's
    minimal quoting looks only at the line terminator ("\\n"), so a name with a bare "\\r"
    went out unquoted and broke every reader of the file."""

    def __init__(self, f):
        self._plain = csv.writer(f, lineterminator="\n")
        self._quoted = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row: Iterable[Any]) -> None:
        row = list(row)
        writer = self._quoted if any("\r" in str(v) for v in row) else self._plain
        writer.writerow(row)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_text(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = CsvWriter(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
