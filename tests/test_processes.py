"""augkit.core.processes: whether a process is gone, zombies included."""

from __future__ import annotations

import os
import subprocess
import sys

from augkit.core.processes import gone


def test_a_running_process_is_not_gone():
    assert not gone(os.getpid())


def test_a_process_that_exited_and_was_reaped_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert gone(child.pid)


def test_a_process_that_exited_but_is_not_reaped_yet_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited; left a zombie, not reaped
    try:
        assert gone(child.pid)
    finally:
        child.wait()
