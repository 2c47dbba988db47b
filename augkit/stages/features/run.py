"""``cache_features``: the feature cache of a dataset, computed (or finished) in one call.

discovery (parent) -> plan shards (parent) -> :class:`~augkit.stages.features.task.FeatureTask`
per image on the engine's workers (decode, recipe views, uint8 input) -> batches (the
parent's main thread) -> ONNX Runtime streams (threads of the parent, overlapped with the
preparation of the next batches) -> shard files -> joined reports (:mod:`.cache`).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
import queue
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.core.files import folder_lock, remove_temporaries
from augkit.core.progress import progress_bar
from augkit.core.runs import FINGERPRINT
from augkit.core.seeds import SEEDING, run_seed
from augkit.stages.features.cache import (DTYPES, Shard, drop_beyond, is_ours, join, plan_shards, prepare_cache,
                                          refuse_foreign, shard_done)
from augkit.stages.features.inference import (GIL_SWITCH_S, InferenceStreams, batch_size_for, inference_plan,
                                              make_session)
from augkit.stages.features.task import FeatureOptions, FeatureTask


@dataclass
class FeatureSummary:
    images: int = 0
    rows: int = 0
    computed_rows: int = 0
    shards: int = 0
    computed_shards: int = 0
    failed_images: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    feature_dim: int | None = None
    dtype: str = ""
    backbone: str = ""
    weights: str = ""
    cache: str = ""
    workers: int = 0
    threads: int = 0
    batch_size: int = 0
    seconds: float = 0.0
    first_batch_s: float | None = None  # from the start of the call to the first batch done
    steady_rows_per_s: float | None = None  # rows/s from the first batch done to the last
    inference_s: float = 0.0  # time spent inside ONNX Runtime
    notes: list[str] = field(default_factory=list)  # for the user, one line each

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_workers(recipe: bool) -> int:
    """Worker processes that keep the backbone fed, from measured costs per 224x224 image
    on one core: MobileNet v2 inference ~5.4 ms, decoding and cropping a 500x375 JPEG
    ~0.8 ms (~12 % of the work), a typical recipe ~2-3 ms more (~40 %). Less than half a
    core of preparation runs in this process (``0``: no worker start-up, no copying between
    processes; ~5 % more throughput on 2 cores); more gets that many worker processes."""
    import math

    from augkit.engines.local import default_workers as cores

    need = cores() * (0.4 if recipe else 0.12)
    return 0 if need < 0.5 else math.ceil(need)



def _settings(backbone, weights_sha: str, model, recipe, options: FeatureOptions) -> dict[str, Any]:
    return {
        "backbone": backbone.name,
        "backbone_source": backbone.source,
        "weights_url": backbone.url if backbone.weights is None else None,
        "weights_sha256": weights_sha,
        # A --weights file other than the registry's (fine-tuned, another export): the
        # features are that file's, and the cache says so.
        "weights_are_the_registrys": backbone.sha256 is None or weights_sha == backbone.sha256,
        "preprocessing": backbone.preprocessing.as_dict(),
        "feature_node": model.output_name,
        "recipe": None if recipe is None else recipe.source,
        FINGERPRINT: None if recipe is None else recipe.fingerprint,
        "seed": options.seed,
        "seeding": SEEDING,
        "views": options.views,
        "plain_first": options.plain_first,
        "dtype": options.dtype,
    }


def cache_features(src, cache, *, backbone=None, weights=None, recipe=None, options: FeatureOptions = FeatureOptions(),
                   workers: int | None = None, overwrite: bool = False, split: str | None = None,
                   progress: bool = False, engine: str = "local", cache_dir=None, mirror: str | None = None,
                   engine_options: dict[str, Any] | None = None) -> FeatureSummary:
    """Compute (or finish computing) the feature cache of ``src`` in ``cache``.

    ``backbone`` is a :class:`~augkit.stages.backbones.Backbone`, or a name / YAML / ONNX path for
    :func:`~augkit.stages.backbones.resolve_backbone`. Returns the :class:`FeatureSummary`."""
    from augkit.stages.augment_out import check_paths, source_folders
    from augkit.stages.backbones import Backbone, feature_model, resolve_backbone, weights_file
    from augkit.input.decoding import resolve_max_pixels
    from augkit.input.discovery import discover
    from augkit.engines import get_engine
    from augkit.engines.local import default_workers as cores
    from augkit.recipes import load_recipe

    started = time.perf_counter()
    if options.dtype not in DTYPES:
        raise UsageError(f"--dtype {options.dtype}: use one of {', '.join(DTYPES)}")
    if options.views < 1 or (options.batch_size is not None and options.batch_size < 1):
        raise UsageError("--views and --batch-size must be at least 1")
    if recipe is None and (options.views > 1 or options.plain_first):
        raise UsageError("--views > 1 and --plain-first need --recipe (without one every view is the same image)")
    resolve_max_pixels(options.max_pixels)  # a bad AUGKIT_MAX_IMAGE_PIXELS: one usage error, not a row per image
    cache = Path(cache)
    dataset = discover(src, split=split)
    check_paths(source_folders(dataset), cache)
    if workers is None:
        workers = default_workers(recipe is not None)
    runner = get_engine(engine, workers=workers, preload=(FeatureTask.__module__,), **(engine_options or {}))  # a forkserver starts now
    with runner, contextlib.ExitStack() as held:
        recipe = load_recipe(recipe) if recipe is not None else None
        if recipe is not None:
            recipe.require_image_output("drop {name}: the backbone applies its own normalisation")
        options = dataclasses.replace(options, seed=run_seed(options.seed, recipe))  # as the CLI: the recipe's seed:
        if not isinstance(backbone, Backbone):
            backbone = resolve_backbone(backbone, weights=weights)
        path, sha = weights_file(backbone, cache_dir=cache_dir, mirror=mirror, progress=progress)
        model = feature_model(path, backbone, pixels=True)
        settings = _settings(backbone, sha, model, recipe, options)
        samples = dataset.samples
        refuse_foreign(cache)  # before anything is created in a folder of the user's
        cache.mkdir(parents=True, exist_ok=True)
        held.enter_context(folder_lock(cache, "CACHE"))  # one run at a time writes a cache
        prepare_cache(cache, settings, overwrite, samples)
        shards = plan_shards(samples, options)
        drop_beyond(cache, shards)
        todo = [s for s in shards if not shard_done(cache, s)]
        threads = options.threads or cores()
        options = dataclasses.replace(options, batch_size=options.batch_size or batch_size_for(threads))
        summary = FeatureSummary(images=len(samples), shards=len(shards), computed_shards=len(todo),
                                 dtype=options.dtype, backbone=backbone.name, weights=str(path), cache=str(cache),
                                 workers=workers, threads=threads, batch_size=options.batch_size)
        if not settings["weights_are_the_registrys"]:
            summary.notes.append(f"note: {path} is not the {backbone.name} weights the registry names (sha256 "
                                 f"{sha[:12]}..., registry {backbone.sha256[:12]}...); the cache records the file's hash")
        if todo:
            task = FeatureTask(recipe, backbone.preprocessing, options)
            if engine == "ray":
                from augkit.stages.features.ray import compute_on_ray

                timing = compute_on_ray(runner, task, model, backbone, cache, samples, todo, options, progress)
            else:
                runner.warm_up(task)  # workers start while ONNX Runtime builds its sessions
                streams, intra = inference_plan(threads)
                sessions = [make_session(model, intra) for _ in range(streams)]
                timing = _compute(runner, task, sessions, model, backbone, cache, samples, todo, options, progress)
            summary.computed_rows = timing["rows"]
            summary.inference_s = timing["busy_s"]
            if timing["t_first"] is not None:
                summary.first_batch_s = timing["t_first"] - started
                if timing["t_last"] > timing["t_first"]:
                    summary.steady_rows_per_s = (timing["rows"] - timing["rows_first"]) / (timing["t_last"] - timing["t_first"])
        remove_temporaries(cache, is_ours)
        joined = join(cache, shards, dataset, settings)
        summary.rows, summary.feature_dim = joined["rows"], joined["feature_dim"]
        summary.failed_images, summary.failures = joined["failed_images"], joined["failures"]
    summary.seconds = time.perf_counter() - started
    return summary


def _compute(runner, task, sessions: list, model, backbone, cache: Path, samples, todo: list[Shard],
             options: FeatureOptions, progress: bool) -> dict[str, Any]:
    """Feed the todo shards' images through the workers and the inference streams."""
    import numpy as np

    from augkit.engines.contract import failure_of

    size = backbone.preprocessing.input_size
    batch = options.batch_size
    free: queue.Queue = queue.Queue()
    for _ in range(len(sessions) + 2):  # one per stream running, one being filled, one waiting
        free.put(np.empty((batch, size, size, 3), np.uint8))
    starts = list(itertools.accumulate((s.stop - s.start for s in todo), initial=0))[:-1]

    def locate(k: int) -> tuple[Shard, int]:  # item number -> (its shard, sample index)
        j = bisect.bisect_right(starts, k) - 1
        return todo[j], todo[j].start + k - starts[j]

    total = sum(s.stop - s.start for s in todo) * options.views
    bar = progress_bar(total, unit="row", desc="features", enabled=progress)
    inference = InferenceStreams(sessions, model, cache, options.dtype, backbone.feature_dim, free, bar)

    def take_buffer():
        while True:
            if inference.error is not None:
                raise inference.error
            try:
                return free.get(timeout=0.2)
            except queue.Empty:
                continue

    rows: list[list[Any]] = []
    failures: list[list[str]] = []
    buffer, filled = None, 0
    # An inference stream leaving ONNX Runtime needs the GIL back, and the thread preparing
    # images holds it for up to the switch interval (5 ms by default: half a batch's run).
    # A short interval for the run's duration gave ~8 % more rows/s on 2 cores.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, GIL_SWITCH_S))
    try:
        items = ((samples[i].path, samples[i].key) for shard in todo for i in range(shard.start, shard.stop))
        for outcome in runner.map(task, items):
            shard, i = locate(outcome.index)
            sample = samples[i]
            value = outcome.value
            if outcome.error is not None:
                failures.append([sample.key, *failure_of(outcome, sample.key).values()])
            elif isinstance(value, dict):
                failures.append([sample.key, value["reason"], value["message"]])
            else:
                for v in range(len(value)):
                    if buffer is None:
                        buffer, filled = take_buffer(), 0
                    buffer[filled] = value[v]
                    filled += 1
                    rows.append([sample.key, sample.label or "", v])
                    if filled == batch:
                        inference.submit(buffer, shard, filled)
                        buffer = None
            if i == shard.stop - 1:  # batches never span shards: a resumed run batches alike
                if buffer is not None:
                    inference.submit(buffer, shard, filled)
                    buffer = None
                inference.close_shard(shard, rows, failures)
                rows, failures = [], []
            if inference.error is not None:
                raise inference.error
        inference.finish()
        if inference.error is not None:
            raise inference.error
    except BaseException:
        inference.error = inference.error or KeyboardInterrupt()  # the streams drop what is queued
        inference.finish(timeout=30)
        remove_temporaries(cache, is_ours)
        raise
    finally:
        sys.setswitchinterval(switch)
        bar.close()
    return {"rows": inference.rows, "rows_first": inference.rows_first, "t_first": inference.t_first,
            "t_last": inference.t_last, "busy_s": inference.busy_s}
