"""The engine: any task, any worker count, the same outcomes; failures are outcomes."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from augkit.engines import _shm
from augkit.engines import get_engine
from augkit.engines.contract import WorkerSetupError
from augkit.engines.local import MAX_CHUNK, LocalEngine
from augkit.core.errors import UsageError


class Square:
    def __call__(self, item):
        return item * item


class FailOn:
    """Raises on one item, kills its worker process on another."""

    def __init__(self, bad=None, deadly=None):
        self.bad, self.deadly = bad, deadly

    def __call__(self, item):
        if item == self.deadly:
            os._exit(3)
        if item == self.bad:
            raise ValueError(f"cannot take {item}")
        return item


class BrokenSetup:
    def setup(self):
        raise RuntimeError("model file is missing")

    def __call__(self, item):
        return item


class Big:
    """A result large enough that a worker is still sending it when the run is stopped."""

    def __call__(self, item):
        return b"x" * 80_000_000


class Pid:
    def __call__(self, item):
        time.sleep(0.01)
        return os.getpid()


_work = [0.0]  # seconds of work done in this process, by the work clock


def work_clock() -> float:
    """A clock that moves only with the work items declare: chunk timing without wall time."""
    return _work[0]


class Costs:
    """Each item takes exactly ``seconds`` on :func:`work_clock`."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, item):
        _work[0] += self.seconds
        return item


class DiesOnceCalled:
    """Item 1 waits until ``go`` exists, then kills its worker: the caller chooses when."""

    def __init__(self, go: Path):
        self.go = go

    def __call__(self, item):
        if item == 1:
            while not self.go.exists():
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)
        return item


class HoldsItsItem:
    """Says it holds its item (a file ``holding``), then holds it until ``release`` exists:
    for a minute at most, after which it says it gave up (``gave-up``) and returns."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self, item):
        (self.folder / "holding").touch()
        for _ in range(6000):
            if (self.folder / "release").exists():
                return item
            time.sleep(0.01)
        (self.folder / "gave-up").touch()
        return item


def wait_until(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_map_gives_every_result_in_order_for_any_worker_count(workers):
    with LocalEngine(workers=workers, chunk_size=3) as engine:
        outcomes = list(engine.map(Square(), range(50)))
    assert [o.index for o in outcomes] == list(range(50))
    assert [o.value for o in outcomes] == [i * i for i in range(50)]
    assert all(o.error is None for o in outcomes)


def test_map_unordered_gives_every_item_once():
    with LocalEngine(workers=2, chunk_size=2) as engine:
        outcomes = list(engine.map_unordered(Square(), range(40)))
    assert sorted(o.index for o in outcomes) == list(range(40))


def test_an_exception_is_an_outcome_and_the_rest_still_run():
    with LocalEngine(workers=2) as engine:
        outcomes = list(engine.map(FailOn(bad=5), range(12)))
    failed = [o for o in outcomes if o.error]
    assert [o.index for o in failed] == [5]
    assert "ValueError: cannot take 5" in failed[0].error and "\n" not in failed[0].error
    assert [o.value for o in outcomes if not o.error] == [i for i in range(12) if i != 5]


def test_a_worker_that_dies_is_pinned_on_its_item_and_the_run_finishes():
    with LocalEngine(workers=2, chunk_size=4) as engine:
        outcomes = list(engine.map(FailOn(deadly=7), range(30)))
    crashed = [o for o in outcomes if o.crashed]
    assert [o.index for o in crashed] == [7]
    assert [o.value for o in outcomes if not o.crashed] == [i for i in range(30) if i != 7]


@pytest.mark.parametrize("ordered", [True, False], ids=["map", "map_unordered"])
def test_a_worker_that_dies_while_the_caller_holds_an_outcome_is_recovered_from_too(tmp_path, ordered):
    # A training step or a feature batch keeps the caller away for a while; the pool then
    # breaks between two outcomes, and the next submit met a broken pool (flow, stream and
    # cache-features stopped with a BrokenProcessPool traceback).
    go = tmp_path / "go"
    with LocalEngine(workers=1, chunk_size=1, prefetch=4) as engine:
        run = (engine.map if ordered else engine.map_unordered)(DiesOnceCalled(go), range(12))
        first = next(run)
        go.touch()  # item 1 now kills its worker, while we hold item 0
        wait_until(lambda: engine._executor._broken, "the pool to notice its dead worker")
        outcomes = [first, *run]
    assert sorted(o.index for o in outcomes) == list(range(12))
    assert [o.index for o in outcomes if o.crashed] == [1]  # it killed its worker twice: pinned
    assert all(o.value == o.index for o in outcomes if not o.crashed)


def test_a_setup_that_fails_stops_the_run_with_its_reason():
    with LocalEngine(workers=2) as engine, pytest.raises(WorkerSetupError, match="model file is missing"):
        list(engine.map(BrokenSetup(), range(5)))


class CountsSetups:
    """Writes a file per ``setup()`` call, named by its process: how often each process set up."""

    def __init__(self, folder: Path):
        self.folder = folder

    def setup(self):
        (self.folder / f"{os.getpid()}-{time.monotonic_ns()}").touch()

    def __call__(self, item):
        time.sleep(0.005)  # long enough that both workers take items
        return os.getpid()


def setups_per_process(folder: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for entry in folder.iterdir():
        pid = int(entry.name.split("-")[0])
        counts[pid] = counts.get(pid, 0) + 1
    return counts


@pytest.mark.parametrize("workers", [0, 2])
def test_setup_runs_once_in_each_process_that_runs_the_task_however_many_calls(tmp_path, workers):
    task = CountsSetups(tmp_path)
    with LocalEngine(workers=workers, chunk_size=1) as engine:
        ran = {o.value for o in engine.map(task, range(20))} | {o.value for o in engine.map(task, range(20))}
    counts = setups_per_process(tmp_path)
    assert set(counts.values()) == {1}
    assert ran <= set(counts)  # no process ran an item before setting up


def test_a_failed_outcome_is_a_task_error_row_or_a_worker_crashed_row():
    from augkit.engines.contract import Outcome, failure_of

    assert failure_of(Outcome(3, error="ValueError: bad (x.py:1)"), "a/b.png") == {
        "reason": "task_error", "message": "a/b.png: ValueError: bad (x.py:1)"}
    died = Outcome(3, error="the worker process died on this item", crashed=True)
    assert failure_of(died, "a/b.png") == {"reason": "worker_crashed",
                                           "message": "a/b.png: the worker process died on this item"}
    assert failure_of(died, "a/b.png", died="its batch died")["message"] == "a/b.png: its batch died"


def test_workers_start_with_the_caller_s_task_modules_imported_once_by_the_forkserver(tmp_path):
    # The forkserver imports albumentations, OpenCV, the decoder and the modules the caller
    # names (preload=) before it forks any worker: workers start with them loaded, and the
    # engine layer itself names no stage (a stage above it names its own module).
    import json
    import textwrap

    (tmp_path / "stage_like.py").write_text(textwrap.dedent("""
        import os
        with open(os.environ["IMPORTS_LOG"], "a") as f:
            f.write(f"{os.getpid()}\\n")
    """))
    (tmp_path / "probe.py").write_text(textwrap.dedent("""
        import os, sys

        def probe(item):  # not in stage_like: its pickle must not make workers import stage_like
            return (os.getpid(), "stage_like" in sys.modules, "albumentations" in sys.modules,
                    "augkit.input.decoding" in sys.modules, any(m.startswith("augkit.stages") for m in sys.modules))
    """))
    (tmp_path / "run.py").write_text(textwrap.dedent("""
        import json
        from augkit.engines.local import LocalEngine
        from probe import probe

        with LocalEngine(workers=2, chunk_size=1, preload=("stage_like",)) as engine:
            print(json.dumps([o.value for o in engine.map(probe, range(6))]))
    """))
    log = tmp_path / "imports.log"
    done = subprocess.run([sys.executable, str(tmp_path / "run.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "IMPORTS_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert all(loaded == [True, True, True, False] for _, *loaded in seen)
    importers = [int(line) for line in log.read_text().split()]
    assert len(importers) == 1 and importers[0] not in {pid for pid, *_ in seen}  # once, in the forkserver


class RecordingSink:
    """A sink of engine.feed that records what it was handed."""

    def __init__(self, cpus):
        self.cpus, self.seen, self.ended = cpus, [], []

    def add(self, tag, pairs):
        self.seen += [(tag, item, outcome.value, outcome.error is not None) for item, outcome in pairs]
        return len(pairs)

    def end(self, tag):
        self.ended.append(tag)

    def close(self):
        return {"cpus": self.cpus, "seen": self.seen, "ended": self.ended}

    def abort(self):
        pass


GROUPS = [("a", [1, 2, 3]), ("b", [4]), ("c", [5, 6])]


@pytest.mark.parametrize("workers", [0, 2])
def test_feed_hands_each_group_s_outcomes_in_item_order_to_a_sink_made_here(workers):
    counted = []
    with LocalEngine(workers=workers, chunk_size=1) as engine:
        results = engine.feed(FailOn(bad=5), GROUPS, RecordingSink, counted.append)
    assert results == [{"cpus": None, "ended": ["a", "b", "c"],
                        "seen": [("a", 1, 1, False), ("a", 2, 2, False), ("a", 3, 3, False), ("b", 4, 4, False),
                                 ("c", 5, None, True), ("c", 6, 6, False)]}]
    assert sum(counted) == 6


def test_workers_are_reused_between_calls_with_the_same_task():
    task = Pid()
    with LocalEngine(workers=2) as engine:
        first = {o.value for o in engine.map(task, range(20))}
        second = {o.value for o in engine.map(task, range(20))}
        # Started again, the first call's workers would be gone; which worker took which
        # item is the scheduler's business, so compare the processes, not who ran what.
        assert all(alive(pid) for pid in first)
    assert len(first | second) <= 2 and os.getpid() not in first


def test_a_consumer_that_stops_early_leaves_no_worker_behind():
    engine = LocalEngine(workers=2)
    results = engine.map_unordered(Pid(), range(1000))
    pids = {next(results).value for _ in range(10)}
    results.close()  # what a `break` out of a for loop, or Ctrl-C in the loop body, does
    wait_until(lambda: not any(alive(p) for p in pids), "the workers to be gone")


def test_chunks_hold_about_a_tenth_of_a_second_of_work_unless_fixed():
    # Every chunk costs the parent CPU that the workers need; cheap items travel many at once.
    # Workers time their chunks with the work clock: exact, however busy the machine is.
    with LocalEngine(workers=2, clock=work_clock) as engine:
        assert engine._next_chunk_size() == 1  # nothing measured yet: the first results come at once
        list(engine.map_unordered(Costs(1 / 256), range(100)))
        assert engine._next_chunk_size() == 25  # 0.1 s / 3.9 ms per item = 25.6
        assert engine._next_chunk_size(left=12) == 3  # the last chunks shrink: 12 items, 2 workers
        list(engine.map_unordered(Costs(0.0), range(50)))  # another task: measured afresh
        assert engine._next_chunk_size() == MAX_CHUNK
        engine._measured(4, 2.0)  # 0.5 s per item: one a chunk
        assert engine._next_chunk_size() == 1
    with LocalEngine(workers=2, chunk_size=3, clock=work_clock) as engine:
        list(engine.map_unordered(Costs(0.0), range(50)))
        assert engine._next_chunk_size() == 3


def test_workers_zero_runs_in_this_process():
    with LocalEngine(workers=0) as engine:
        assert {o.value for o in engine.map(Pid(), range(3))} == {os.getpid()}


def test_unknown_engine_name_lists_the_known_ones():
    with pytest.raises(UsageError, match="known: local"):
        get_engine("spark")


def test_stopping_while_a_worker_sends_a_result_does_not_hang_the_process():
    engine = LocalEngine(workers=2, chunk_size=1, prefetch=1)
    results = engine.map_unordered(Big(), range(6))
    next(results)  # the other worker is now in the middle of sending its 80 MB
    manager = engine._executor._executor_manager_thread
    time.sleep(0.05)  # paces only: later or sooner, the thread must end; the assert reads no clock
    results.close()
    manager.join(10)
    # The interpreter joins this thread at exit: alive here means a process that never exits.
    assert not manager.is_alive()


def test_workers_import_the_augkit_of_their_parent_whatever_the_current_folder(tmp_path):
    # The parent of a clone holds augkit/recipes/ (a folder, no __init__.py): the workers
    # once imported it as a namespace package, and every task failed to unpickle.
    import subprocess
    import sys
    import textwrap

    shadow = tmp_path / "parent_of_clone"
    (shadow / "augkit" / "recipes").mkdir(parents=True)
    (shadow / "augkit" / "recipes" / "standard.yaml").write_text("transforms: []\n")
    script = tmp_path / "scripts" / "run.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent("""
        import functools
        import numpy as np
        from augkit.engines.local import LocalEngine
        from augkit.recipes import Recipe, load_recipe

        recipe = load_recipe({"transforms": [{"HorizontalFlip": {"p": 1.0}}]})
        images = [np.full((4, 4, 3), i, np.uint8) for i in range(4)]
        with LocalEngine(workers=2) as engine:
            outcomes = list(engine.map(functools.partial(Recipe.__call__, recipe), images))
        print([o.error for o in outcomes if o.error])
        print(sum(o.value is not None for o in outcomes))
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=shadow, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "4"]


# --- Ctrl-C and what a killed run leaves behind --------------------------------------------


# The forkserver's preload, made to hold still: it is importing this module (HOLDING says so)
# until the run it serves is gone, so a Ctrl-C sent meanwhile lands in the middle of its import.
HOLDING = """
import os, pathlib, time
from augkit.core.processes import gone

run = os.getppid()  # the forkserver's parent
pathlib.Path(os.environ["HOLDING"]).touch()
while not gone(run):  # reaped, or a zombie its caller has not reaped yet
    time.sleep(0.01)
os._exit(0)  # the forkserver goes with its run, never past this import
"""

# ``augkit augment`` whose forkserver imports HOLDING first, and which sends the terminal's
# Ctrl-C (SIGINT to the whole process group) at one place: when it has asked the forkserver
# for its first worker and waits for it, the forkserver being in the middle of its import.
CTRL_C_RUN = """
import multiprocessing.forkserver as forkserver, os, pathlib, signal, sys, time
import augkit.engines.local as local

local.PRELOAD = ("holding", *local.PRELOAD)
read_signed = forkserver.read_signed


def ctrl_c_then_read(fd):
    forkserver.read_signed = read_signed
    while not pathlib.Path(os.environ["HOLDING"]).exists():  # the forkserver has begun its import
        time.sleep(0.01)
    os.killpg(0, signal.SIGINT)
    return read_signed(fd)


forkserver.read_signed = ctrl_c_then_read  # the parent reads the new worker's pid through it
from augkit.cli import main
sys.argv = ["augkit", *sys.argv[1:]]
main()
"""


def test_ctrl_c_while_the_forkserver_imports_prints_one_line_and_no_traceback(tmp_path):
    from imagefiles import class_folders

    recipe = tmp_path / "r.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    data = class_folders(tmp_path / "data", per_class=2)
    out = tmp_path / "out"
    scripts = tmp_path / "scripts"  # on the path the forkserver copies from the run
    scripts.mkdir()
    (scripts / "holding.py").write_text(HOLDING)
    (scripts / "run.py").write_text(CTRL_C_RUN)
    env = {**os.environ, "HOLDING": str(tmp_path / "importing")}
    run = subprocess.Popen([sys.executable, str(scripts / "run.py"), "augment", str(recipe), str(data), str(out),
                            "-w", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           start_new_session=True)
    try:
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert (tmp_path / "importing").exists()  # the Ctrl-C reached the forkserver inside its import
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip() == f"interrupted: {out} holds only complete files; rerun the same command to finish"
    assert run.returncode == 130


def test_a_ctrl_c_taken_by_another_thread_stops_a_run_whose_workers_all_hold_items(tmp_path, python_ctrl_c):
    # Python runs a SIGINT's handler in the main thread only when that thread next wakes. A
    # signal that another thread took (or one landing just before the wait blocked, which
    # once hung CI for five minutes) left the run waiting on a worker that held its item.
    import threading

    managers = []

    def ctrl_c_on_this_thread():
        wait_until(lambda: (tmp_path / "holding").exists(), "the worker to take its item")
        managers.append(engine._executor._executor_manager_thread)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # not the main thread

    sender = threading.Thread(target=ctrl_c_on_this_thread)
    with LocalEngine(workers=1) as engine:
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            list(engine.map(HoldsItsItem(tmp_path), [1]))
        sender.join()
        # The pool's thread has ended too: at exit the interpreter writes to its wake-up
        # pipe, and doing so while the thread closed it printed 'Exception ignored ... Bad
        # file descriptor' under the Ctrl-C's one line.
        assert not managers[0].is_alive()
    assert not (tmp_path / "gave-up").exists()  # stopped while the worker held its item


# A worker started, as the forkserver does, for a pool that closed first: a Ctrl-C while the
# run waited for the forkserver (importing) to start it left the request with the forkserver.
ORPHAN = """
import os, sys, _multiprocessing, multiprocessing
from multiprocessing import context, reduction, resource_tracker, spawn
import augkit.engines._preload  # what the forkserver imports before it forks a worker


class Child:  # the forkserver's popen, as far as pickling for a child goes
    def duplicate_for_child(self, fd):
        return fd


lock = multiprocessing.get_context("forkserver").Lock()  # a pool's queues hold such named semaphores
context.set_spawning_popen(Child())
data = bytes(reduction.ForkingPickler.dumps({})) + bytes(reduction.ForkingPickler.dumps(lock))
context.set_spawning_popen(None)
_multiprocessing.sem_unlink(lock._semlock.name)  # the pool closed: its semaphores are gone
resource_tracker.unregister(lock._semlock.name, "semaphore")
r, w = os.pipe()
os.write(w, data if sys.argv[1] == "closed" else data[:5])  # or the start-up data was cut short
os.close(w)
print(spawn._main(r, os.dup(r)), flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("how", ["closed", "cut"])
def test_a_worker_whose_pool_is_gone_before_it_starts_exits_without_a_traceback(tmp_path, how):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    done = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")  # exit status 1, and not a word


needs_shm = pytest.mark.skipif(not (os.path.isdir(_shm.SHM_DIR) and _shm._pid_namespace()),
                               reason="needs /dev/shm and /proc")


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def pool_semaphores(engine: LocalEngine) -> list[Path]:
    """The /dev/shm entries of the semaphores the engine's pool holds: its call queue's two
    locks and bounded semaphore, its result queue's two locks. Read from the pool itself, not
    from a listing of /dev/shm, which every process on the machine writes to at once."""
    calls, results = engine._executor._call_queue, engine._executor._result_queue
    locks = (calls._rlock, calls._wlock, calls._sem, results._rlock, results._wlock)
    return [Path(_shm.SHM_DIR) / f"sem.{lock._semlock.name.lstrip('/')}" for lock in locks]


@needs_shm
def test_the_pool_names_its_semaphores_and_removes_them_when_it_closes():
    with LocalEngine(workers=1) as engine:
        list(engine.map(Square(), range(3)))
        made = pool_semaphores(engine)
        assert len(set(made)) == 5 and all(p.name.startswith(f"sem.mp-{_shm.tag()}-") for p in made)
        assert all(p.exists() for p in made)
    gc.collect()
    assert not any(p.exists() for p in made)


def semaphore_name() -> str:
    """The name the next semaphore multiprocessing makes in this process would get."""
    from multiprocessing import synchronize

    return synchronize.SemLock._make_name()


@needs_shm
def test_pools_made_at_once_in_two_threads_both_name_their_semaphores():
    # The naming is the process's: a pool that finished first once put back the plain one
    # while another thread's pool was still making its queues, whose semaphores were then
    # nobody's to sweep after a kill -9.
    import threading

    trying, inside, first_made, seen = threading.Event(), threading.Event(), threading.Event(), []

    def second_pool():
        trying.set()
        with _shm.named_semaphores():
            inside.set()
            first_made.wait()  # it makes its queues once the first pool is made
            seen.append(semaphore_name())

    with _shm.named_semaphores():
        other = threading.Thread(target=second_pool)
        other.start()
        trying.wait()
        inside.wait(0.2)  # paces only: while the naming is held, the second is not let in before the first is made
    first_made.set()
    other.join()
    assert len(seen) == 1 and seen[0].startswith(f"/mp-{_shm.tag()}-")
    assert not semaphore_name().startswith(f"/mp-{_shm.tag()}")  # the program's own semaphores: as they were


@needs_shm
def test_the_pool_names_its_semaphores_in_a_program_that_imported_joblibs_loky(monkeypatch):
    # loky (scikit-learn imports it) replaces SemLock._make_name with one that ignores the
    # process's semprefix: the pool's semaphores were /loky-<pid>-..., nobody's to sweep.
    from multiprocessing import synchronize

    loky_naming = staticmethod(lambda: f"/loky-{os.getpid()}-{next(synchronize.SemLock._rand)}")
    monkeypatch.setattr(synchronize.SemLock, "_make_name", loky_naming)
    with LocalEngine(workers=1) as engine:
        list(engine.map(Square(), range(3)))
        assert all(p.name.startswith(f"sem.mp-{_shm.tag()}-") for p in pool_semaphores(engine))
    assert synchronize.SemLock.__dict__["_make_name"] is loky_naming  # the program's naming is put back


@needs_shm
def test_the_semaphores_of_a_killed_run_are_removed_by_the_next_engine_and_nobody_elses(tmp_path):
    ns, dead = _shm._pid_namespace(), dead_pid()
    shm = Path(_shm.SHM_DIR)
    killed_run = shm / f"sem.mp-augkit-{dead}-{ns}-t3st0"
    running = shm / f"sem.mp-augkit-{os.getpid()}-{ns}-t3st1"
    other_namespace = shm / f"sem.mp-augkit-{dead}-{ns + 1}-t3st2"  # a container sharing /dev/shm
    other_program = shm / f"sem.mp-t3st3-{dead}"
    entries = [killed_run, running, other_namespace, other_program]
    try:
        for entry in entries:
            entry.write_bytes(b"")
        with LocalEngine(workers=1):
            pass
        assert [entry.exists() for entry in entries] == [False, True, True, True]
    finally:
        for entry in entries:
            entry.unlink(missing_ok=True)


def test_workers_exit_when_their_run_is_killed_even_before_anyone_reaps_it(tmp_path):
    # subprocess.run(capture_output=True) reads the run's output before waiting for it: the
    # killed run stays a zombie, which kill(pid, 0) still finds, and its workers (holding
    # the output pipe) once waited for it forever while the caller waited for them.
    import signal
    import subprocess
    import sys
    import textwrap

    from interrupting import session_processes

    (tmp_path / "killer.py").write_text(textwrap.dedent("""
        import os, signal, time

        def task(item):
            if item == 3:
                os.kill(int(os.environ["RUN_PID"]), signal.SIGKILL)  # the OOM killer, say
                time.sleep(600)  # a long image: the worker is busy when its run dies
            return item
    """))
    (tmp_path / "run.py").write_text(textwrap.dedent("""
        import os
        os.environ["RUN_PID"] = str(os.getpid())
        import killer
        from augkit.engines.local import LocalEngine
        with LocalEngine(workers=2, chunk_size=1) as engine:
            list(engine.map(killer.task, range(8)))
    """))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:  # the output ends once every process holding the pipe has gone
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the workers outlived their killed run")
    deadline = time.monotonic() + 30  # a process that has closed its files may not have exited yet
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_processes(proc.pid) == [], output
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("gib, cores, expected", [(24, 2, 2), (2, 8, 1), (6, 8, 4), (0.5, 4, 1)])
def test_the_default_worker_count_leaves_each_worker_memory_for_a_large_photo(monkeypatch, gib, cores, expected):
    import augkit.engines.local as engine

    monkeypatch.setattr(engine, "available_memory", lambda: int(gib * 2**30))
    monkeypatch.setattr(engine.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert engine.default_workers() == expected
