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
- The files a task writes must be on storage every node sees (a shared filesystem).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from augkit.core.errors import UsageError
from augkit.engines.contract import Outcome, WorkerSetupError, call, in_order, limit_threads, set_up

INSTALL_HINT = 'the Ray engine needs Ray: pip install "augkit[ray]"'


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
                    chunk = in_flight.pop(ref)
                    try:
                        yield from ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        if isinstance(exc.cause, WorkerSetupError):
                            raise exc.cause from None
                        raise
                    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError):
                        for index, _item in chunk:
                            yield Outcome(index, error="the Ray worker died on this chunk", crashed=True)
        except BaseException:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise

    def map(self, task: Any, items: Iterable[Any]) -> Iterator[Outcome]:
        return in_order(self.map_unordered(task, items))

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
