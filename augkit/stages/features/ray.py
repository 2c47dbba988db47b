"""``cache-features --engine ray``: the feature cache computed on a Ray cluster.

Two stages, so each can scale on its own kind of node:
- *prepare* (CPU): Ray tasks run the same :class:`~augkit.stages.features.FeatureTask` as the
  local engine (decode, recipe view, centre crop) on chunks of images;
- *infer*: actors that each load the cut backbone once (ONNX Runtime, one thread) take a
  shard's prepared chunks in order, batch them exactly as the local run does (batches of
  ``batch_size`` rows that never span shards), and write the shard's ``.npy`` and
  ``.json`` to the cache themselves. The driver only schedules, then joins the reports.

Shards are the same as the local run's (:func:`~augkit.stages.features.plan_shards`), written by
the same function, so a cache is resumable by either engine and the result is the same.
Every node must see the source images and the cache at the same paths.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from augkit.stages.features.cache import Shard, write_shard
from augkit.stages.features.inference import BackboneRunner, make_session
from augkit.stages.features.task import FeatureOptions

CHUNK_IMAGES = 32  # images per prepare task: big enough to amortise a task, small for balance


def _prepare(task, items: list[tuple[str, str]]) -> list[Any]:
    from augkit.engines.contract import limit_threads

    limit_threads()
    out = []
    for path, key in items:
        try:
            out.append(task((path, key)))
        except Exception as exc:  # noqa: BLE001 - one image is one failure row
            out.append({"reason": "task_error", "message": f"{key}: {type(exc).__name__}: {exc}"})
    return out


class ShardWriter:
    """A Ray actor: the backbone, loaded once, and the shard it is filling."""

    def __init__(self, model, expected_dim: int | None, cache: str, options: FeatureOptions):
        from augkit.engines.contract import limit_threads

        limit_threads()
        self.runner = BackboneRunner(make_session(model, 1), model, expected_dim)
        self.dim = model.feature_dim
        self.cache, self.options = Path(cache), options
        self.written_rows = 0
        self.busy_s = 0.0  # inside ONNX Runtime, for the summary's inference_s
        self._reset()

    def _reset(self) -> None:
        self.parts, self.rows, self.failures, self.pending = [], [], [], []

    def _flush(self) -> None:
        import numpy as np

        if self.pending:
            started = time.perf_counter()
            out = self.runner.run(np.stack(self.pending)).astype(self.options.dtype, copy=False)
            self.busy_s += time.perf_counter() - started
            self.dim = self.dim or out.shape[1]
            self.parts.append(out)
            self.pending = []

    def add(self, samples: list[tuple[str, str | None]], prepared: list[Any]) -> int:
        """The next chunk of the current shard: (key, label) and FeatureTask results."""
        for (key, label), value in zip(samples, prepared):
            if isinstance(value, dict):
                self.failures.append([key, value["reason"], value["message"]])
                continue
            for v in range(len(value)):
                self.pending.append(value[v])
                self.rows.append([key, label or "", v])
                if len(self.pending) == self.options.batch_size:
                    self._flush()
        return len(samples)

    def finish(self, shard: Shard) -> int:
        """Write the shard; returns 0 (images added) for the driver's progress count."""
        self._flush()
        write_shard(self.cache, shard, self.parts, self.rows, self.failures, self.options.dtype, self.dim)
        self.written_rows += len(self.rows)
        self._reset()
        return 0

    def totals(self) -> tuple[int, float]:
        """(rows written, seconds inside ONNX Runtime) since the actor started."""
        return self.written_rows, self.busy_s


def compute_on_ray(engine, task, model, backbone, cache: Path, samples, todo: list[Shard], options: FeatureOptions,
                   progress: bool) -> dict[str, Any]:
    """Compute the ``todo`` shards on the cluster ``engine`` is connected to."""
    from augkit.core.progress import progress_bar

    ray = engine._ray  # noqa: SLF001 - the engine owns the connection
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n_actors = max(1, min(len(todo), cpus // 2))
    Writer = ray.remote(num_cpus=1)(ShardWriter)  # noqa: N806 - a class
    prepare = ray.remote(num_cpus=1, max_retries=2)(_prepare)
    writers = [Writer.remote(model, backbone.feature_dim, str(cache), options) for _ in range(n_actors)]
    task_ref = ray.put(task)
    bar = progress_bar(sum(s.stop - s.start for s in todo), unit="img", desc="features", enabled=progress)
    in_flight: list[Any] = []  # the writers' pending calls: bounds what waits in the object store
    limit = 4 * max(1, cpus)

    def drain(keep: int) -> None:
        nonlocal in_flight
        while len(in_flight) > keep:
            done, in_flight = ray.wait(in_flight, num_returns=1)
            bar.update(ray.get(done[0]))  # images for add(), 0 for finish()

    try:
        for n, shard in enumerate(todo):
            writer = writers[n % n_actors]  # an actor runs its calls in order: one shard at a time
            for start in range(shard.start, shard.stop, CHUNK_IMAGES):
                chunk = samples[start:min(start + CHUNK_IMAGES, shard.stop)]
                prepared = prepare.remote(task_ref, [(s.path, s.key) for s in chunk])
                in_flight.append(writer.add.remote([(s.key, s.label) for s in chunk], prepared))
                drain(limit)
            in_flight.append(writer.finish.remote(shard))
        drain(0)
        totals = ray.get([w.totals.remote() for w in writers])
    finally:
        bar.close()
        for writer in writers:
            ray.kill(writer)
    return {"rows": sum(rows for rows, _ in totals), "rows_first": 0, "t_first": None, "t_last": None,
            "busy_s": sum(busy for _, busy in totals)}
