"""Whether a process is gone: the one test behind every sweep of what a killed process
left (its shared memory and semaphores, failure logs, partial downloads, predict's work
folders) and behind a worker noticing that its run was killed."""

from __future__ import annotations

import os


def gone(pid: int) -> bool:
    """True when no process ``pid`` runs any more: none exists, or it has exited and only
    its parent has not reaped it yet (a zombie holds no memory and writes nothing). Another
    user's process counts as running. POSIX: on Windows ``os.kill(pid, 0)`` would end it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):  # no /proc (macOS), or it ended just now: it existed
        return False
