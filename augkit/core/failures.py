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
import time
import weakref
from typing import Any

from augkit.core.errors import AugkitError, SampleError
from augkit.core.processes import gone


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


LOG_PREFIX, LOG_SUFFIX = "augkit-failures-", ".jsonl"  # $TMPDIR/augkit-failures-<pid>-<random>.jsonl
STALE_SECONDS = 60  # a log of a dead process is swept once untouched this long


class FailureLog:
    """Failure rows appended by any process, read back by any. A row is one ``write`` of a
    line opened for appending, so rows from concurrent processes never interleave. The file
    is removed when the log that made it is collected (or its process exits); its name
    carries the maker's pid, so the log of a process that was killed (SIGKILL, or SIGTERM
    without cleanup) is removed by the next log made on the machine (:func:`sweep_stale_logs`)."""

    def __init__(self) -> None:
        sweep_stale_logs()
        fd, self.path = tempfile.mkstemp(prefix=f"{LOG_PREFIX}{os.getpid()}-", suffix=LOG_SUFFIX)
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


def sweep_stale_logs(folder: str | None = None) -> None:
    """Remove the failure logs in ``folder`` ($TMPDIR) whose maker is dead and which are
    untouched for :data:`STALE_SECONDS`: the age guards against a pid already reused. Logs
    named without a pid (older augkit), or unreadable, are left; POSIX only (``os.kill(pid,
    0)`` asks whether a process lives there; on Windows it would end it)."""
    if os.name != "posix":
        return
    folder = folder or tempfile.gettempdir()
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.startswith(LOG_PREFIX) and e.name.endswith(LOG_SUFFIX)]
    except OSError:
        return
    for name in names:
        pid, dash, _ = name[len(LOG_PREFIX):-len(LOG_SUFFIX)].partition("-")
        if dash and pid.isdigit() and gone(int(pid)):
            path = os.path.join(folder, name)
            try:
                if time.time() - os.stat(path).st_mtime > STALE_SECONDS:
                    os.unlink(path)
            except OSError:
                pass  # gone already, or another user's



def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
