"""Interrupt a real augkit command at a chosen input, at the same place however busy the
machine is: no sleep-then-kill race.

The command runs in a fresh process (its own session) from a small script that swaps one
task class for a subclass. When that subclass meets the chosen input, before doing any of
its work, it sends the signal: SIGKILL to the whole process group (the run, its forkserver
and workers, as a crash or the OOM killer would), or SIGINT to the run itself (Ctrl-C).
The subclass lives in a module beside the script, on the path the forkserver copies from
its parent, so worker processes can import it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

INTERRUPTER = """
import importlib, os, signal, time

_module, _name = os.environ["INTERRUPT_TASK"].rsplit(".", 1)
Base = getattr(importlib.import_module(_module), _name)


class Interrupting(Base):
    def __call__(self, item):
        key = item.key if hasattr(item, "key") else item[1]  # a Job, or a (path, key) pair
        if key == os.environ["INTERRUPT_AT"]:
            run = int(os.environ["INTERRUPT_RUN"])
            if os.environ["INTERRUPT_HOW"] == "SIGKILL":
                os.killpg(os.getpgid(run), signal.SIGKILL)
            os.kill(run, signal.SIGINT)
            time.sleep(600)  # the run stops its workers
        return super().__call__(item)
"""

RUN = """
import importlib, os, sys
import interrupter
os.environ["INTERRUPT_RUN"] = str(os.getpid())
_module, _name = os.environ["INTERRUPT_TASK"].rsplit(".", 1)
setattr(importlib.import_module(_module), _name, interrupter.Interrupting)
from augkit.cli import main
sys.argv = ["augkit"] + sys.argv[1:]
main()
"""


def run_interrupted(tmp_path: Path, task: str, at: str, how: signal.Signals, *args) -> tuple[int, str, int]:
    """(exit status, stderr, session id) of ``augkit *args`` interrupted by ``how`` when the
    task class ``task`` (a dotted name) reaches the input whose key is ``at``."""
    scripts = tmp_path / "interrupting"
    scripts.mkdir(exist_ok=True)
    (scripts / "interrupter.py").write_text(INTERRUPTER)
    (scripts / "run.py").write_text(RUN)
    env = {**os.environ, "INTERRUPT_TASK": task, "INTERRUPT_AT": at, "INTERRUPT_HOW": how.name}
    proc = subprocess.Popen([sys.executable, str(scripts / "run.py"), *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    _, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr.decode(errors="replace"), proc.pid


def session_processes(sid: int) -> list[int]:
    """The live processes of session ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry))
    return pids
