"""ONNX Runtime for the feature cache: sessions, and the streams that run them on the
batches the assembler fills, writing each shard (:func:`~augkit.stages.features.cache.write_shard`)
once all its batches are done.

:class:`InferenceStreams` runs N sessions of one intra-op thread each rather than one
session with N threads (see there why). Both engines run the same code: the local engine
in the parent, Ray in actors (one stream each), so both write the same bytes.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from augkit.core.errors import AugkitError
from augkit.core.interrupts import WAKE_SECONDS
from augkit.stages.features.cache import write_shard
from augkit.stages.providers import CPU, check_started, is_accelerated

if TYPE_CHECKING:
    from augkit.stages.features.cache import Shard


def make_session(model, threads: int, providers: tuple[str, ...] = (CPU,)):
    """An ONNX Runtime session for a :class:`~augkit.stages.backbones.FeatureModel`, on
    ``providers`` (:func:`augkit.stages.providers.resolve_providers`)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.model_bytes, so, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise AugkitError(f"ONNX Runtime cannot load the cut backbone ({' '.join(str(exc).split())[:300]})") from None
    check_started(session, providers)
    return session


GIL_SWITCH_S = 0.0002  # see augkit.stages.features.assemble.FeatureSink
MAX_STREAMS = 4  # each holds a batch's activations (~12 MB per 224x224 MobileNet v2 image)


def inference_plan(threads: int) -> tuple[int, int]:
    """(streams, intra-op threads per stream) for ``threads`` ONNX Runtime threads."""
    streams = max(1, min(threads, MAX_STREAMS))
    return streams, max(1, threads // streams)


ACCELERATOR_BATCH = 32  # not measured: no accelerator where this was written; --batch-size sets it


def batch_size_for(threads: int, providers: tuple[str, ...] = (CPU,)) -> int:
    """Two images per intra-op thread of a stream. Small batches keep a stream's activations
    in cache: MobileNet v2 end to end on 2 cores was fastest at 2 images per batch, and a
    ResNet-50-shaped model ran alike at 2, 4 and 8 (benchmarks/RESULTS.md, the 2026-11-22
    cache-features section). More intra-op threads need more images to share out. A
    device (GPU) gets :data:`ACCELERATOR_BATCH`: its cost is per call more than per image."""
    return ACCELERATOR_BATCH if is_accelerated(providers) else 2 * inference_plan(threads)[1]


class InferenceStreams:
    """Runs the backbone on the batches the main thread fills, one batch per stream at a
    time (a thread and a session each), and writes a shard once all its batches are done.

    Why streams rather than one session with N intra-op threads: the workers share the
    cores with inference, and an intra-op thread that loses its core for a time slice
    stalls the others at the next operator's barrier. Streams never wait for each other,
    so the cores stay busy. A batch's result does not depend on which stream ran it.
    Buffers go back to ``free`` after use, which bounds memory.
    """

    def __init__(self, sessions: list, model, cache: Path, dtype: str, expected_dim: int | None, free: queue.Queue):
        self.model, self.cache = model, cache
        self.dtype, self.expected_dim = dtype, expected_dim
        self.free = free
        self.work: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.dim: int | None = model.feature_dim
        self.lock = threading.Lock()
        self.shards: dict[int, dict[str, Any]] = {}  # shard index -> parts, counts, rows
        self.t_first = self.t_last = None  # wall clock: comparable between processes (Ray's actors)
        self.rows_first = self.rows = 0
        self.busy_s = 0.0
        self.backbone_runs = {id(session): BackboneRunner(session, model, expected_dim) for session in sessions}
        self.threads = [threading.Thread(target=self._loop, args=(session,), name=f"augkit-inference-{i}", daemon=True)
                        for i, session in enumerate(sessions)]
        for thread in self.threads:
            thread.start()

    def _state(self, shard: Shard) -> dict[str, Any]:
        return self.shards.setdefault(shard.index, {"shard": shard, "parts": {}, "submitted": 0, "done": 0,
                                                    "closed": False, "rows": None, "failures": None})

    def submit(self, buffer, shard: Shard, n: int) -> None:
        with self.lock:
            state = self._state(shard)
            seq = state["submitted"]
            state["submitted"] += 1
        self.work.put((buffer, shard, n, seq))

    def close_shard(self, shard: Shard, rows: list, failures: list) -> None:
        """No more batches for ``shard``: it is written when the last one is done."""
        with self.lock:
            state = self._state(shard)
            state.update(closed=True, rows=rows, failures=failures)
            ready = state["done"] == state["submitted"] and self.shards.pop(shard.index)
        if ready:
            self._write(ready)

    def totals(self) -> dict[str, Any]:
        """Rows run, seconds inside ONNX Runtime, and when the first and last batches were done."""
        return {"rows": self.rows, "rows_first": self.rows_first, "t_first": self.t_first, "t_last": self.t_last,
                "busy_s": self.busy_s}

    def finish(self, timeout: float | None = None) -> None:
        """Let the streams run what is queued, then end (``timeout``: seconds at most)."""
        for _ in self.threads:
            self.work.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            # In short joins: a Ctrl-C whose signal did not wake the join (augkit.core.interrupts)
            # is seen within WAKE_SECONDS, not after the last batch.
            while thread.is_alive() and (deadline is None or time.monotonic() < deadline):
                thread.join(WAKE_SECONDS)

    def _loop(self, session) -> None:
        while True:
            message = self.work.get()
            if message is None:
                return
            buffer, shard, n, seq = message
            try:
                if self.error is None:
                    self._batch(session, buffer, shard, n, seq)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.error = exc
            finally:
                self.free.put(buffer)

    def _batch(self, session, buffer, shard: Shard, n: int, seq: int) -> None:
        started = time.perf_counter()
        out = self._run(session, buffer[:n]).astype(self.dtype, copy=False)
        finished, now = time.perf_counter(), time.time()
        with self.lock:
            self.busy_s += finished - started
            self.rows += n
            if self.t_first is None:
                self.t_first, self.rows_first = now, n
            self.t_last = now
            state = self.shards[shard.index]
            state["parts"][seq] = out
            state["done"] += 1
            ready = state["closed"] and state["done"] == state["submitted"] and self.shards.pop(shard.index)
        if ready:
            self._write(ready)

    def _write(self, state: dict[str, Any]) -> None:
        parts = state["parts"]
        write_shard(self.cache, state["shard"], [parts.pop(i) for i in range(len(parts))], state["rows"],
                    state["failures"], self.dtype, self.dim)

    def _run(self, session, batch):
        out = self.backbone_runs[id(session)].run(batch)
        self.dim = self.dim or out.shape[1]
        return out


class BackboneRunner:
    """Runs one ONNX Runtime session on uint8 batches: (n, S, S, 3) -> (n, feature_dim)."""

    def __init__(self, session, model, expected_dim: int | None):
        self.session, self.model, self.expected_dim = session, model, expected_dim
        self.per_sample = False

    def run(self, batch):
        import numpy as np

        session, feed = self.session, self.model.input_name
        if not self.per_sample:
            try:
                out = session.run([self.model.output_name], {feed: batch})[0]
            except Exception as exc:  # noqa: BLE001
                if len(batch) == 1 or self.model.fixed_batch is None:
                    raise AugkitError(f"the backbone failed on a batch of {len(batch)} "
                                      f"({' '.join(str(exc).split())[:300]})") from None
                self.per_sample = True  # the file was made for batch 1 and keeps it inside
        if self.per_sample:
            out = np.concatenate([session.run([self.model.output_name], {feed: batch[i:i + 1]})[0]
                                  for i in range(len(batch))])
        out = out.reshape(len(batch), -1)
        if self.expected_dim and out.shape[1] != self.expected_dim:
            raise AugkitError(f"the feature tensor {self.model.output_name!r} has {out.shape[1]} values per image, the "
                              f"backbone entry says {self.expected_dim}; name the tensor with --feature-node NAME")
        return out
