"""The engine contract: what every engine promises its callers, whatever runs the work.

A *task* is a small picklable callable, ``task(item) -> value``, with an optional
``setup()``: run once in each process that runs the task (a worker process of the local
pool, a Ray worker process), before its first item, never once per item or chunk. A
setup that fails stops the run with :class:`WorkerSetupError`; an item that fails is an
:class:`Outcome` with an error, never the end of the run. Engines yield outcomes; callers
turn a failed one into their own row with :func:`failure_of`.

Every engine offers:
- ``map(task, items)`` / ``map_unordered(task, items)``: the outcomes, in item order or as
  they come;
- ``feed(task, groups, make_sink, progress=None)``: for work that is a task per item and
  then a stage with state per group of items (the feature cache: prepare each image, then
  batch, infer and write each shard). ``groups`` is a sequence of ``(tag, items)``, none
  empty. ``make_sink(cpus)`` is a picklable factory of a *sink*; ``cpus`` is how many
  cores the sink may use (None: the sink decides). A sink takes ``add(tag, pairs)``, pairs
  of (item, outcome) of one group in item order, returning a count for ``progress``;
  ``end(tag)`` once a group is complete; ``close()`` at the end, whose result ``feed``
  returns in a list; ``abort()`` when the run stops early. The local engine makes one sink
  in the calling process; Ray makes sinks in actors, each taking whole groups, so the
  items' outcomes go to them without passing through the driver;
- ``warm_up(task)``, ``close()``, and use as a context manager.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from augkit.core.errors import AugkitError


@dataclass
class Outcome:
    """What happened to one item: its value, or the error that stopped it."""

    index: int
    value: Any = None
    error: str | None = None  # one line; None when the task returned normally
    crashed: bool = False  # the worker process died while holding this item


class WorkerSetupError(AugkitError):
    """A task's ``setup()`` failed in a worker: no item can run, so the run stops."""


def set_up(task: Any) -> None:
    """Run ``task.setup()`` if it has one; its failure is a :class:`WorkerSetupError`."""
    setup = getattr(task, "setup", None)
    if setup is None:
        return
    try:
        setup()
    except Exception as exc:  # noqa: BLE001 - stops the run with its reason
        raise WorkerSetupError(f"{type(exc).__name__}: {exc}") from None


def call(task: Callable[[Any], Any], index: int, item: Any) -> Outcome:
    """``task(item)`` as an outcome: an exception becomes its one-line error, with where."""
    try:
        return Outcome(index, task(item))
    except Exception as exc:  # noqa: BLE001 - a failure is a row, never the end of the run
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Outcome(index, error=f"{type(exc).__name__}: {exc} ({os.path.basename(where.filename)}:{where.lineno})")


def failure_of(outcome: Outcome, key: str, died: str | None = None) -> dict[str, str]:
    """The ``reason`` and ``message`` of a failed outcome (``outcome.error`` set) for the
    input ``key``: its worker died (``worker_crashed``; ``died`` says so in the caller's
    words, where an item is more than one input), or the task raised (``task_error``)."""
    if outcome.crashed:
        return {"reason": "worker_crashed", "message": f"{key}: {died or outcome.error}"}
    return {"reason": "task_error", "message": f"{key}: {outcome.error}"}


def in_order(outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
    """Re-order outcomes that arrive in any order into the order of their items."""
    waiting: dict[int, Outcome] = {}
    next_index = 0
    for outcome in outcomes:
        waiting[outcome.index] = outcome
        while next_index in waiting:
            yield waiting.pop(next_index)
            next_index += 1


def limit_threads() -> None:
    """One compute thread per process: N workers then use N cores, not N x cores."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"
    import cv2

    cv2.setNumThreads(1)
