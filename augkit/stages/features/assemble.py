"""The one assembler of the feature cache: per-image outcomes -> a shard's rows, failures
and uint8 batches -> ONNX Runtime -> the shard's files.

It is the *sink* of :meth:`engine.feed <augkit.engines.contract>`: the local engine makes
one in the parent (its streams share the machine with the workers), Ray makes one in each
of its actors (one stream each). Both batch alike, ``batch_size`` rows that never span a
shard, so a resumed run, or a run on the other engine, writes the same bytes.
"""

from __future__ import annotations

import queue
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augkit.engines.contract import Outcome, failure_of
from augkit.stages.features.cache import Shard
from augkit.stages.features.inference import GIL_SWITCH_S, InferenceStreams, inference_plan, make_session
from augkit.stages.providers import CPU


@dataclass(frozen=True)
class FeatureSinks:
    """What a sink needs, wherever it is made (picklable): ``FeatureSinks(...)(cpus)`` is one."""

    model: Any  # the cut backbone, a FeatureModel
    cache: str
    dtype: str
    batch_size: int
    threads: int  # ONNX Runtime threads, unless the engine says how many cores the sink has
    expected_dim: int | None
    input_size: int
    providers: tuple[str, ...] = (CPU,)  # ONNX Runtime's, best first (augkit.stages.providers)

    def __call__(self, cpus: int | None) -> FeatureSink:
        return FeatureSink(self, cpus or self.threads)


class FeatureSink:
    """Fills batches from a shard's outcomes, in item order, and hands them to the inference
    streams; a shard's rows and failures go with its last batch."""

    def __init__(self, spec: FeatureSinks, threads: int):
        import numpy as np

        streams, intra = inference_plan(threads)
        sessions = [make_session(spec.model, intra, spec.providers) for _ in range(streams)]
        self.free: queue.Queue = queue.Queue()  # buffers: one per stream running, one being filled, one waiting
        for _ in range(streams + 2):
            self.free.put(np.empty((spec.batch_size, spec.input_size, spec.input_size, 3), np.uint8))
        self.inference = InferenceStreams(sessions, spec.model, Path(spec.cache), spec.dtype, spec.expected_dim,
                                          self.free)
        self.batch_size = spec.batch_size
        self.rows: list[list[Any]] = []
        self.failures: list[list[str]] = []
        self.buffer, self.filled = None, 0
        # An inference stream leaving ONNX Runtime needs the GIL back, and the thread filling
        # batches holds it for up to the switch interval (5 ms by default: half a batch's
        # run). A short interval while the sink lives: see benchmarks/RESULTS.md.
        self.switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self.switch, GIL_SWITCH_S))

    def add(self, shard: Shard, pairs: list[tuple[tuple[str, str, str | None], Outcome]]) -> int:
        """Outcomes of ``shard``'s items ((path, key, label), in order); returns the rows added."""
        added = 0
        for (_path, key, label), outcome in pairs:
            value = outcome.value
            if outcome.error is not None:
                self.failures.append([key, *failure_of(outcome, key).values()])
            elif isinstance(value, dict):  # the task's own failure row
                self.failures.append([key, value["reason"], value["message"]])
            else:
                for v in range(len(value)):
                    self._put(shard, value[v])
                    self.rows.append([key, label or "", v])
                added += len(value)
        self._raise()
        return added

    def end(self, shard: Shard) -> None:
        """The shard's last item is in: its last batch, however short (batches never span
        shards, so a resumed run batches alike), then its files once the batches are done."""
        if self.buffer is not None:
            self.inference.submit(self.buffer, shard, self.filled)
            self.buffer = None
        self.inference.close_shard(shard, self.rows, self.failures)
        self.rows, self.failures = [], []
        self._raise()

    def close(self) -> dict[str, Any]:
        """Wait for the last shards to be written; returns the inference's totals."""
        try:
            self.inference.finish()
            self._raise()
        finally:
            sys.setswitchinterval(self.switch)
        return self.inference.totals()

    def abort(self) -> None:
        self.inference.error = self.inference.error or KeyboardInterrupt()  # the streams drop what is queued
        self.inference.finish(timeout=30)
        sys.setswitchinterval(self.switch)

    def _put(self, shard: Shard, row) -> None:
        if self.buffer is None:
            self.buffer, self.filled = self._take_buffer(), 0
        self.buffer[self.filled] = row
        self.filled += 1
        if self.filled == self.batch_size:
            self.inference.submit(self.buffer, shard, self.filled)
            self.buffer = None

    def _take_buffer(self):
        while True:
            self._raise()
            try:
                return self.free.get(timeout=0.2)
            except queue.Empty:
                continue

    def _raise(self) -> None:
        if self.inference.error is not None:
            raise self.inference.error
