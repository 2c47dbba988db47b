"""The Ray engine: the local engine's contract, on a Ray cluster.

It takes the same task objects and items as :class:`augkit.engines.local.LocalEngine` and yields
the same :class:`~augkit.engines.contract.Outcome` rows, so a command switches engines by name
(``--engine ray``) and writes byte-identical outputs: tasks seed every sample from what
it is, never from where it runs.

- Address: ``address=`` (``--ray-address``), else ``RAY_ADDRESS``, else a local Ray started
  for the run (with ``workers`` CPUs) and shut down after it.
- Items travel in chunks as Ray tasks; the task object is put in the object store once,
  and each Ray worker process unpickles it and runs its ``setup()`` once, before its first
  chunk (it keeps the task of the run it last served, so two runs sharing a worker at
  once set up again as they alternate: slower, never wrong).
  At most ``workers * prefetch`` chunks are in flight, so the driver's memory stays flat.
- A worker that dies is retried by Ray; a chunk that still fails becomes crashed rows.
- ``feed`` makes its sinks in actors (up to one per two of the engine's CPUs and of the
  cluster's, at least one), each taking whole groups in turn; a chunk's outcomes go from
  the task that made them to the actor, never through the driver. Each actor holds a CPU,
  except on a cluster of one CPU (``-w 1`` on a local Ray): there it would hold the CPU
  its tasks wait for, so it runs beside them, as the local engine's sink does.
- The files a task writes must be on storage every node sees (a shared filesystem).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from augkit.core.errors import AugkitError, UsageError
from augkit.engines.contract import Outcome, call, in_order, limit_threads, set_up

INSTALL_HINT = 'the Ray engine needs Ray: pip install "augkit[ray]"'
FEED_CHUNK = 32  # items per task in feed(): each chunk is also an actor call, which costs more than a task


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


_ready: dict[str, Any] = {}  # in a Ray worker process: run token -> its task, set up


def _ready_task(token: str, task_ref: list) -> Any:
    """This process's copy of the run's task, set up on its first chunk. The reference
    comes inside a list, so Ray passes it unresolved: the task is unpickled only here."""
    task = _ready.get(token)
    if task is None:
        import ray

        limit_threads()
        task = ray.get(task_ref[0])
        _ready.clear()  # one run's task at a time: a task may hold a model
        set_up(task)
        _ready[token] = task
    return task


def _run_chunk(token: str, task_ref: list, chunk: list[tuple[int, Any]]) -> list[Outcome]:
    task = _ready_task(token, task_ref)
    return [call(task, index, item) for index, item in chunk]


def _get(ray, ref) -> Any:
    """``ray.get``, with augkit's own errors raised in a worker or actor (a setup that
    failed, a backbone that does not fit) raised here as themselves."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, AugkitError):
            raise exc.cause from None
        raise


def _outcomes(ray, ref, chunk: list[tuple[int, Any]]) -> list[Outcome]:
    """A chunk's outcomes, or crashed rows if its worker died (after Ray's retries)."""
    try:
        return _get(ray, ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError):
        return [Outcome(index, error="the Ray worker died on this chunk", crashed=True) for index, _item in chunk]


class _SinkActor:
    """A sink of :meth:`RayEngine.feed`, in an actor of one CPU."""

    def __init__(self, make_sink: Callable[[int | None], Any]):
        limit_threads()
        self.sink = make_sink(1)

    def add(self, tag: Any, chunk: list[tuple[int, Any]], refs: list) -> Any:
        import ray

        outcomes = _outcomes(ray, refs[0], chunk)  # inside a list: resolved here, crashes included
        return self.sink.add(tag, [(item, outcome) for (_, item), outcome in zip(chunk, outcomes)])

    def end(self, tag: Any) -> None:
        self.sink.end(tag)

    def close(self) -> Any:
        return self.sink.close()


class RayEngine:
    name = "ray"

    def __init__(self, workers: int | None = None, chunk_size: int = 4, prefetch: int = 4, address: str | None = None,
                 preload: tuple[str, ...] = ()):
        # preload: nothing to do, Ray's worker processes import a task's module with its first chunk
        ray = _import_ray()
        self._ray = ray
        address = address or os.environ.get("RAY_ADDRESS") or None
        self._started_here = False
        if not ray.is_initialized():
            env = {"env_vars": {"NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}}
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=workers or None, include_dashboard=False, log_to_driver=False, runtime_env=env)
                self._started_here = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or cpus
        self.chunk_size = max(1, chunk_size)
        self.prefetch = max(1, prefetch)
        self._remote = ray.remote(max_retries=2)(_run_chunk)
        self._task: Any = None  # the task last run, its reference in the object store, its token
        self._task_ref: list = []
        self._token = ""

    def _shipped(self, task: Any) -> tuple[str, list]:
        """(token, [reference]) of ``task``, put in the object store once for all calls with it."""
        if task is not self._task:
            self._task, self._task_ref, self._token = task, [self._ray.put(task)], uuid.uuid4().hex
        return self._token, self._task_ref

    def map_unordered(self, task: Any, items: Iterable[Any]) -> Iterator[Outcome]:
        ray = self._ray
        token, task_ref = self._shipped(task)
        numbered = enumerate(items)
        in_flight: dict[Any, list[tuple[int, Any]]] = {}
        exhausted = False
        try:
            while True:
                while not exhausted and len(in_flight) < self.workers * self.prefetch:
                    chunk = [pair for _, pair in zip(range(self.chunk_size), numbered)]
                    exhausted = len(chunk) < self.chunk_size
                    if chunk:
                        in_flight[self._remote.remote(token, task_ref, chunk)] = chunk
                if not in_flight:
                    return
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    yield from _outcomes(ray, ref, in_flight.pop(ref))
        except BaseException:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise

    def map(self, task: Any, items: Iterable[Any]) -> Iterator[Outcome]:
        return in_order(self.map_unordered(task, items))

    def feed(self, task: Any, groups: Sequence[tuple[Any, Sequence[Any]]], make_sink: Callable[[int | None], Any],
             progress: Callable[[Any], Any] | None = None) -> list[Any]:
        """Run ``task`` over every group's items in Ray tasks, and hand each group's outcomes
        to one of the sinks made in actors (see :mod:`augkit.engines.contract`); an actor runs
        its calls in order, so it takes one group at a time. Returns the sinks' ``close()``."""
        ray = self._ray
        token, task_ref = self._shipped(task)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        count = max(1, min(len(groups), self.workers // 2, cpus // 2))
        actor = ray.remote(num_cpus=1 if cpus > count else 0)(_SinkActor)  # a CPU left for the tasks
        sinks = [actor.remote(make_sink) for _ in range(count)]
        in_flight: list[Any] = []  # the sinks' pending calls: bounds what waits in the object store

        def drain(keep: int) -> None:
            nonlocal in_flight
            while len(in_flight) > keep:
                done, in_flight = ray.wait(in_flight, num_returns=1)
                result = _get(ray, done[0])
                if progress is not None and result is not None:  # None: an end() call
                    progress(result)

        try:
            for n, (tag, items) in enumerate(groups):
                sink = sinks[n % len(sinks)]
                for start in range(0, len(items), FEED_CHUNK):
                    chunk = list(enumerate(items[start:start + FEED_CHUNK], start))
                    in_flight.append(sink.add.remote(tag, chunk, [self._remote.remote(token, task_ref, chunk)]))
                    drain(self.workers * self.prefetch)
                in_flight.append(sink.end.remote(tag))
            drain(0)
            return [_get(ray, sink.close.remote()) for sink in sinks]
        finally:
            for sink in sinks:
                ray.kill(sink)

    def warm_up(self, task: Any) -> None:
        """Nothing to start: Ray's workers are the cluster's."""

    def close(self, kill: bool = False) -> None:
        self._task, self._task_ref = None, []
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
            self._started_here = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, exc_type, *_: Any) -> None:
        self.close(kill=exc_type is not None)
