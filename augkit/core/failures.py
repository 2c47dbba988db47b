"""Failures are rows: a sample that cannot be used becomes a row with a ``reason`` code and a
one-line ``message``, never a crash of the run and never garbage pixels.

:func:`failure_row` is the one way an exception raised for one sample becomes such a row.
:class:`FailureLog` collects rows from every process that holds a copy of it (the workers
of a PyTorch DataLoader or of Keras's multiprocessing), which a plain list in the parent
cannot: each row is appended as one line to a small file that every copy shares.
"""

from __future__ import annotations

import json
import os
import tempfile
import weakref
from typing import Any

from augkit.core.errors import AugkitError, SampleError


def one_line(text: str) -> str:
    """Library messages may hold newlines; a row's message is one line."""
    return " ".join(str(text).split("\n")).replace("\r", " ")


def failure_row(key: str, exc: BaseException) -> dict[str, str]:
    """The row for sample ``key`` that raised ``exc``: a SampleError (such as a DecodeError)
    keeps its reason; any other exception is the recipe's (``transform_error``). An
    AugkitError (bad usage, such as a bad AUGKIT_MAX_IMAGE_PIXELS) is no sample's fault: it
    is raised again."""
    if isinstance(exc, SampleError):
        return {"source": key, "reason": exc.reason, "message": one_line(str(exc))}
    if isinstance(exc, AugkitError):
        raise exc
    return {"source": key, "reason": "transform_error", "message": one_line(f"{key}: {type(exc).__name__}: {exc}")}


class FailureLog:
    """Failure rows appended by any process, read back by any. A row is one ``write`` of a
    line opened for appending, so rows from concurrent processes never interleave. The file
    is removed when the log that made it is collected (or its process exits)."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="augkit-failures-", suffix=".jsonl")
        os.close(fd)
        self._remove = weakref.finalize(self, _remove, self.path)

    def add(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def rows(self) -> list[dict[str, Any]]:
        """Every row so far, once each (a bad image fails again every epoch), in order."""
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        unique = dict.fromkeys(lines)
        return [json.loads(line) for line in unique if line]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}  # a copy appends to the same file; only the maker removes it

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._remove = None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
