"""The local engine: run a picklable per-sample task over many samples on worker processes.

Every data-parallel command (augment, stats, batches, features) is a *task* plus a list
of *items*, under the contract of :mod:`augkit.engines.contract` (``setup()`` once in each
worker, ``__call__(item)`` per sample, failures as outcomes). The engine knows nothing
about images; the tasks know nothing about processes. The choice of engine is a name
(:func:`augkit.engines.get_engine`; ``local`` here, ``ray`` takes the same task and items).

How the local engine keeps its promises:
- *No oversubscription.* Workers keep OpenCV, OpenMP and BLAS at one thread each, so N
  workers use N cores.
- *No fork hazards, cheap start.* Workers come from a ``forkserver`` that has imported
  albumentations, OpenCV and the caller's task modules once (``augkit.engines._preload``,
  then ``preload``), so a worker starts in milliseconds instead of paying albumentations'
  import (seconds: benchmarks/RESULTS.md), and never inherits threads or OpenCV state
  from the parent (a user's training script may have plenty).
- *Determinism.* Nothing here decides randomness: tasks seed each sample from what it is
  (``augkit.core.seeds``), so results are identical for any worker count or scheduling.
- *Failures are data.* An exception in a task becomes an :class:`Outcome` with an error
  text; a worker process that dies (a crash in a library, kill -9, the OOM killer) is
  replaced, the items it held are retried one at a time, and the one that kills its
  worker again is reported as crashed. ``map`` and ``map_unordered`` share this one
  mechanism, and it holds however long the caller takes between outcomes (the pool may
  break while the caller trains on a batch). Nothing hangs.
- *Prompt Ctrl-C, one line.* The forkserver and the workers never see SIGINT (the
  terminal sends it to the whole process group); the parent terminates them and
  re-raises, so the caller prints its one line and no child prints a traceback. The
  parent waits for chunks with Ctrl-C deferred, waking every 0.1 s
  (``augkit.core.interrupts``): a Ctrl-C never lands inside ``concurrent.futures``' wait,
  and is never lost while every worker holds an item.
- *Nothing left behind.* The pool's semaphores carry augkit's name, so a run killed with
  SIGKILL, which cannot remove them, has them removed by the next run (``augkit.engines._shm``).
- *Little parent work.* Each chunk costs the parent CPU (pickling, the executor's
  threads waking up), taken from the workers' cores: with a few inputs per chunk,
  ``augment``'s parent took a noticeable share of a core. By default a chunk holds ~0.1 s of work
  by the workers' recent time per item; the first chunks hold one item (so results come
  back at once) and, when the number of items is known, the last ones shrink (so no
  worker idles long at the end while another finishes a big chunk).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
from multiprocessing import context as mp_context
from multiprocessing import popen_forkserver, resource_tracker, spawn
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import augkit.engines._shm as _shm
from augkit.core.interrupts import WAKE_SECONDS, deferred
from augkit.engines.contract import Outcome, WorkerSetupError, call, in_order, limit_threads, set_up

# What the forkserver imports first, so that every worker starts with it loaded: thread
# limits, albumentations, OpenCV, the decoder. The caller's task modules follow it.
PRELOAD = ("augkit.engines._preload",)

# Automatic chunk size: about this much work per chunk, within [1, MAX_CHUNK] items.
CHUNK_SECONDS = 0.1
MAX_CHUNK = 64


# Memory one worker may need at its peak: the measured peak of one process taking a
# 24-megapixel photo through Affine, CLAHE and GaussNoise (benchmarks/RESULTS.md, "Peak
# memory of one worker on large photos"). The default worker count leaves each worker that much.
WORKER_MEMORY = 1536 * 2**20


def default_workers() -> int:
    """One per core, but no more than the memory available holds (WORKER_MEMORY each)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    available = available_memory()
    return cores if available is None else max(1, min(cores, available // WORKER_MEMORY))


def available_memory() -> int | None:
    """Bytes of memory available for new work (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def start_forkserver(preload: tuple[str, ...] = ()) -> None:
    """Start the forkserver (once per process) with this process's import path, importing
    :data:`PRELOAD` and then the modules named in ``preload`` (the caller's task modules).

    The first engine with workers in a process starts it; later ones find it running with
    what it imported then (a module it lacks is imported by each worker when a task from it
    arrives: slower, never wrong).

    multiprocessing starts it as ``python -c ...``, which puts the current folder first on
    ``sys.path``, and up to Python 3.12 it ignores the parent's path. From a folder that
    holds an ``augkit/`` folder (the parent of a clone), workers then imported that folder
    as a namespace package instead of the augkit this process runs, and every task failed
    to unpickle. ``PYTHONSAFEPATH`` (3.11+) keeps the current folder off, and
    ``PYTHONPATH`` gives the forkserver this process's path, so a worker imports exactly
    the modules its parent does (a user's own modules beside their script included).

    The terminal's Ctrl-C reaches every process of the group, and the forkserver only
    ignores SIGINT once its preload import is done (seconds: albumentations and OpenCV): a Ctrl-C then
    printed its 56-line KeyboardInterrupt traceback beside the parent's one line. It is
    started with SIGINT blocked, as multiprocessing starts its resource tracker: the mask
    passes to the forkserver and to the workers it forks, so SIGINT never reaches them
    (workers then ignore it too), and this process gets a Ctrl-C that arrived meanwhile as
    soon as the mask is restored.
    """
    multiprocessing.get_context("forkserver").set_forkserver_preload([*PRELOAD, *preload])
    path = [os.getcwd() if entry == "" else entry for entry in sys.path]
    saved = {name: os.environ.get(name) for name in ("PYTHONSAFEPATH", "PYTHONPATH")}
    os.environ["PYTHONSAFEPATH"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(path)
    try:
        # ensure_running starts the resource tracker first, which unblocks SIGINT when it
        # starts: let it start before SIGINT is blocked, and find it running inside.
        resource_tracker.ensure_running()
        with _sigint_blocked():
            multiprocessing.forkserver.ensure_running()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _sigint_blocked():
    if not hasattr(signal, "pthread_sigmask"):  # not on POSIX: no process groups either
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# --- worker side -----------------------------------------------------------------------

_task: Callable[[Any], Any] | None = None
_setup_error: str | None = None
_clock: Callable[[], float] = time.perf_counter


def _exit_with_parent(parent_pid: int) -> None:
    # A worker's own parent is the forkserver, and its task queue stays open while any
    # worker lives, so nothing else tells it that the run was killed (kill -9, OOM). A run
    # killed but not yet reaped is a zombie, which kill(pid, 0) still finds: a caller that
    # reads the run's output before waiting for it (subprocess.run(capture_output=True))
    # would otherwise wait on workers that wait on it.
    from augkit.core.processes import gone

    while True:
        time.sleep(0.5)
        if gone(parent_pid):
            os._exit(1)


def _init_worker(task: Callable[[Any], Any], parent_pid: int, clock: Callable[[], float]) -> None:
    global _task, _setup_error, _clock
    _clock = clock
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    limit_threads()
    try:
        set_up(task)
    except WorkerSetupError as exc:  # reported to the parent with the first chunk
        _setup_error = str(exc)
    _task = task


def _run_chunk(chunk: list[tuple[int, Any]]) -> tuple[list[Outcome], float]:
    """The chunk's outcomes, and the seconds they took (which size the next chunks)."""
    if _setup_error is not None:
        raise WorkerSetupError(_setup_error)
    started = _clock()
    outcomes = [call(_task, index, item) for index, item in chunk]
    return outcomes, _clock() - started


# --- parent side -----------------------------------------------------------------------


class _Popen(popen_forkserver.Popen):
    """Starts a worker without re-importing the parent's ``__main__``.

    multiprocessing would run the user's script (a training script calling
    ``augkit.flow``, say) again in every worker unless it has an ``if __name__ ==
    "__main__"`` guard, and fails outright for ``python -`` or a notebook. augkit's tasks
    live in augkit's modules, so workers never need the main module.
    """

    def _launch(self, process_obj):
        original = spawn.get_preparation_data

        def without_main(name):
            data = original(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        spawn.get_preparation_data = without_main
        try:
            super()._launch(process_obj)
        finally:
            spawn.get_preparation_data = original


class _Process(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):  # noqa: N802 - multiprocessing's name
        return _Popen(process_obj)


class _Context(mp_context.ForkServerContext):
    Process = _Process


class LocalEngine:
    """Runs tasks on a pool of worker processes on this machine.

    ``workers=0`` runs in the calling process (no pool: for debugging and tiny inputs).
    The pool is started on first use and kept for further calls with the same task, so
    an epoch loop does not pay for worker start-up every epoch. Use as a context manager,
    or call :meth:`close`. ``chunk_size=None`` sizes chunks from the measured time per
    item (see :data:`CHUNK_SECONDS`); a number fixes it. ``clock`` is what workers time
    their chunks with (a picklable function; tests give one that counts work, not time).
    ``preload``: the modules of the tasks to come, imported by the forkserver (see
    :func:`start_forkserver`), so workers start with them loaded.
    """

    name = "local"

    def __init__(self, workers: int | None = None, chunk_size: int | None = None, prefetch: int = 4,
                 clock: Callable[[], float] = time.perf_counter, preload: tuple[str, ...] = ()):
        self.workers = default_workers() if workers is None else workers
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        self.chunk_size = None if chunk_size is None else max(1, chunk_size)
        self.prefetch = max(1, prefetch)
        self._executor: ProcessPoolExecutor | None = None
        self._executor_task: Any = None
        self._per_item: float | None = None  # recent seconds per item of the current task
        self.clock = clock
        self._set_up_here: Any = None  # the task set up in this process (workers=0)
        if self.workers > 0:
            _shm.sweep()  # what runs killed with SIGKILL left in /dev/shm
            # Start the forkserver now: its preload import overlaps the caller's own
            # imports (the recipe, albumentations) instead of following them.
            start_forkserver(tuple(preload))

    # -- lifecycle

    def _pool(self, task: Any) -> ProcessPoolExecutor:
        if self._executor is not None and self._executor_task is task:
            return self._executor
        self.close()
        self._per_item = None
        with _shm.named_semaphores():  # the pool's queues make 5 named semaphores
            self._executor = ProcessPoolExecutor(self.workers, mp_context=_Context(), initializer=_init_worker,
                                                 initargs=(task, os.getpid(), self.clock))
        self._executor_task = task
        return self._executor

    def warm_up(self, task: Any) -> None:
        """Start the workers now (they import in the background while the caller works)."""
        if self.workers > 0:
            self._pool(task).submit(_run_chunk, [])

    def close(self, kill: bool = False) -> None:
        executor, self._executor, self._executor_task = self._executor, None, None
        if executor is None:
            return
        processes = list(getattr(executor, "_processes", {}).values())
        if kill:
            for p in processes:
                if p.is_alive():
                    p.terminate()
            for p in processes:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)
            # A worker stopped while sending a result leaves half a message in the result
            # pipe, and the executor's manager thread would wait for the rest for ever (the
            # interpreter too, at exit: it joins that thread). Our copy of the pipe's write
            # end is the only one left once the workers are gone; closing it ends that
            # wait with EOF, which the thread treats as a broken pool and exits.
            result_queue = getattr(executor, "_result_queue", None)
            if result_queue is not None:
                result_queue._writer.close()  # noqa: SLF001 - no public way to unblock it
        manager = getattr(executor, "_executor_manager_thread", None)
        executor.shutdown(wait=not kill, cancel_futures=True)
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        if manager is not None:
            # Let the executor's thread finish closing its pipes now. At exit the interpreter
            # writes to one of them while that thread may be closing it (a race in Python
            # 3.11's concurrent.futures), which printed 'Exception ignored in threading ...
            # Bad file descriptor' under a Ctrl-C's one line.
            manager.join(timeout=5)

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, exc_type, *_: Any) -> None:
        self.close(kill=exc_type is not None)

    # -- running

    def map_unordered(self, task: Any, items: Iterable[Any]) -> Iterator[Outcome]:
        """Outcomes as they complete. At most ``workers * prefetch`` chunks are in flight,
        so memory stays bounded however many items there are."""
        total = len(items) if hasattr(items, "__len__") else None
        numbered = enumerate(items)
        if self.workers == 0:
            if self._set_up_here is not task:  # this process is the one worker: set up once
                set_up(task)
                self._set_up_here = task
            for index, item in numbered:
                yield call(task, index, item)
            return
        try:
            yield from self._run_pool(task, numbered, total)
        except BaseException:
            self.close(kill=True)  # Ctrl-C, a consumer that stopped early, or a bug
            raise

    def map(self, task: Any, items: Iterable[Any]) -> Iterator[Outcome]:
        """Outcomes in the order of ``items``."""
        return in_order(self.map_unordered(task, items))

    def feed(self, task: Any, groups: Sequence[tuple[Any, Sequence[Any]]], make_sink: Callable[[int | None], Any],
             progress: Callable[[Any], Any] | None = None) -> list[Any]:
        """Run ``task`` over every group's items on the workers, and hand the outcomes to one
        sink made in this process, group by group in item order (see
        :mod:`augkit.engines.contract`). Returns ``[sink.close()]``."""
        self.warm_up(task)  # the workers start while the sink gets ready
        sink = make_sink(None)
        outcomes = self.map(task, (item for _, items in groups for item in items))
        try:
            with contextlib.closing(outcomes):
                for tag, items in groups:
                    for item in items:
                        done = sink.add(tag, [(item, next(outcomes))])
                        if progress is not None:
                            progress(done)
                    sink.end(tag)
            return [sink.close()]
        except BaseException:
            sink.abort()
            raise

    def _next_chunk_size(self, left: int | None = None) -> int:
        """Items for the next chunk, ``left`` items not yet sent (None: unknown)."""
        if self.chunk_size is not None:
            return self.chunk_size
        if self._per_item is None:
            return 1
        size = MAX_CHUNK if self._per_item * MAX_CHUNK <= CHUNK_SECONDS else max(1, int(CHUNK_SECONDS / self._per_item))
        if left is not None:  # guided: a few chunks per worker for what is left
            size = min(size, max(1, left // (2 * self.workers)))
        return size

    def _measured(self, items: int, seconds: float) -> None:
        per_item = seconds / items
        # Recent chunks count most: the first ones also pay each worker's warm-up.
        self._per_item = per_item if self._per_item is None else 0.5 * (self._per_item + per_item)

    def _run_pool(self, task: Any, numbered: Iterator[tuple[int, Any]], total: int | None) -> Iterator[Outcome]:
        run = _PoolRun(numbered, total)
        while True:
            outcomes, finished = self._round(task, run)
            yield from outcomes
            if finished:
                return

    def _round(self, task: Any, run: _PoolRun) -> tuple[list[Outcome], bool]:
        """Fill the pool, then wait for the first chunks back: (their outcomes, whether
        everything is done). A worker that died makes suspects of the items it held."""
        # Suspects run alone, so a crash can be pinned on the one item that causes it.
        limit = 1 if run.suspects else self.workers * self.prefetch
        broken = self._fill(task, run, limit)
        if not run.in_flight and not broken:
            return [], True
        outcomes: list[Outcome] = []
        if not broken:
            for future in _first_done(run.in_flight):
                chunk = run.in_flight.pop(future)
                try:
                    chunk_outcomes, seconds = future.result()
                except BrokenProcessPool:
                    broken = True
                    if len(chunk) == 1 and limit == 1:  # it ran alone: pinned
                        index, _item = chunk[0]
                        outcomes.append(Outcome(index, error="the worker process died on this item", crashed=True))
                    else:
                        run.suspects.extend(chunk)
                    continue
                self._measured(len(chunk), seconds)  # never empty: see _fill
                outcomes.extend(chunk_outcomes)
        if broken:
            outcomes.extend(self._restart(run.in_flight, run.suspects))
        return outcomes, False

    def _fill(self, task: Any, run: _PoolRun, limit: int) -> bool:
        """Submit chunks until ``limit`` are in flight or nothing is left; True when the
        pool turned out broken (the chunk it refused is kept for the next pool)."""
        while len(run.in_flight) < limit:
            if run.suspects:
                chunk, back = [run.suspects.popleft()], run.suspects.extendleft
            elif run.unsent:
                chunk, back = run.unsent.popleft(), run.unsent.appendleft
            elif not run.exhausted:
                size = self._next_chunk_size(None if run.total is None else run.total - run.sent)
                chunk, back = [pair for _, pair in zip(range(size), run.numbered)], run.unsent.appendleft
                run.sent += len(chunk)
                run.exhausted = len(chunk) < size
                if not chunk:
                    return False
            else:
                return False
            try:
                run.in_flight[self._pool(task).submit(_run_chunk, chunk)] = chunk
            except BrokenProcessPool:
                # A worker died while the caller had the last outcome: the pool refuses
                # new work. This chunk never left; the round restarts the pool.
                back(chunk)
                return True
        return False

    def _restart(self, in_flight: dict[Future, list[tuple[int, Any]]], suspects: deque) -> list[Outcome]:
        """After a worker died: stop the pool (the next submit starts a new one), keep the
        results that came back, and make suspects of the items that did not."""
        self.close(kill=True)
        outcomes: list[Outcome] = []
        for future, chunk in in_flight.items():
            if future.done() and not future.cancelled() and not isinstance(future.exception(), BrokenProcessPool):
                chunk_outcomes, _seconds = future.result()  # or its own error (a setup that failed)
                outcomes.extend(chunk_outcomes)
            else:
                suspects.extend(chunk)
        in_flight.clear()
        return outcomes


@dataclass
class _PoolRun:
    """Where one ``map_unordered`` stands: items not yet sent, chunks in flight, and the
    items a dead worker held."""

    numbered: Iterator[tuple[int, Any]]
    total: int | None
    in_flight: dict[Future, list[tuple[int, Any]]] = field(default_factory=dict)
    suspects: deque[tuple[int, Any]] = field(default_factory=deque)  # items held by a worker that died
    unsent: deque[list[tuple[int, Any]]] = field(default_factory=deque)  # chunks a broken pool refused
    exhausted: bool = False
    sent: int = 0


def _first_done(in_flight: dict[Future, Any]) -> set[Future]:
    """The chunks done, once one is. A Ctrl-C meanwhile is raised here, outside
    ``concurrent.futures``, within WAKE_SECONDS even when its signal did not interrupt the
    wait (``augkit.core.interrupts``). Submitting is not deferred: starting a worker may
    wait seconds on the forkserver's import, which a Ctrl-C must cut short."""
    with deferred() as ctrl_c:
        while True:
            done, _ = wait(in_flight, timeout=WAKE_SECONDS, return_when=FIRST_COMPLETED)
            if done or ctrl_c:
                return done
