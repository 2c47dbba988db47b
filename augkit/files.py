"""The file helpers every stage shares: whole-or-nothing writes, and CSV text.

A file augkit writes appears complete or not at all: it is written under a temporary name
in the same folder (``.<name>.tmp-<pid>-<n>``) and renamed into place with ``os.replace``.
A run killed mid-write leaves only such a temporary, which the next run sweeps away with
:func:`remove_temporaries`. (No fsync: a power cut may lose recent files, never leave a
half-written one under its real name on the journaling filesystems in common use.)
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

_counter = itertools.count()  # unique temporaries for threads of one process


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(f)`` on a temporary file, then move it to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{next(_counter)}")
    try:
        with open(tmp, "xb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, parents: bool = True) -> None:
    """``data`` into ``path``, whole or not at all; with plain system calls, as this is the
    per-image path of ``augment`` (``parents=False`` when the caller made the folders)."""
    path = os.fspath(path)
    if parents:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}-{next(_counter)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def remove_temporaries(folder: str | os.PathLike) -> None:
    """Delete the temporaries a killed run left below ``folder``."""
    for path in Path(folder).rglob(".*.tmp-*"):
        if path.is_file():
            path.unlink(missing_ok=True)


def csv_text(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
