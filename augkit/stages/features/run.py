"""``cache_features``: the feature cache of a dataset, computed (or finished) in one call.

discovery (parent) -> plan shards (parent) -> :class:`~augkit.stages.features.task.FeatureTask`
per image on the engine's workers (decode, recipe views, uint8 input) -> the assembler's
batches -> ONNX Runtime streams, overlapped with the preparation of the next batches ->
shard files -> joined reports (:mod:`.cache`). The engine decides where the assembler
and inference run (``engine.feed``: in this process, or in Ray's actors); this module
never asks which engine it has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.core.files import check_paths, folder_lock, remove_temporaries
from augkit.core.progress import progress_bar
from augkit.core.runs import FINGERPRINT
from augkit.core.seeds import SEEDING, run_seed
from augkit.stages.features.cache import (DTYPES, Shard, drop_beyond, is_ours, join, plan_shards, prepare_cache,
                                          refuse_foreign, shard_done)
from augkit.stages.features.assemble import FeatureSinks
from augkit.stages.features.inference import batch_size_for
from augkit.stages.features.task import FeatureOptions, FeatureTask
from augkit.stages.decode_size import decode_setting, features_hint
from augkit.stages.providers import CPU


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


# Preparation's cost per image, in MobileNet v2 inferences (its ~9 CPU ms on this kind of
# core): decoding and cropping a 0.19-megapixel JPEG ~12 % of the image's time, a typical
# recipe ~40 % (benchmarks/RESULTS.md, "Figures behind code comments"); a larger JPEG's
# entropy decoding grows with its size even when decoded at 1/8 (27 ms at 12 MP: the
# "Large photos" section).
PREPARE_BASE, PREPARE_PER_MEGAPIXEL, PREPARE_RECIPE = 0.09, 0.25, 0.53
SAMPLED_HEADERS = 16


def default_workers(recipe: bool, megapixels: float | None = None) -> int:
    """Worker processes that keep the backbone fed, from what preparing an image costs
    against inferring it: decoding (more for larger images, ``megapixels`` the median of
    the dataset, from :func:`median_megapixels`; None: ImageNet-size) and the recipe. Less
    than half a core of preparation runs in this process (``0``: no worker start-up, no
    copying between processes, measurably faster on 2 cores); more gets that many worker
    processes (on 12-megapixel photos, 2 workers give 1.3x the rows/s of none)."""
    import math

    from augkit.engines.local import default_workers as cores

    prepare = PREPARE_BASE + PREPARE_PER_MEGAPIXEL * (0.19 if megapixels is None else megapixels)
    prepare += PREPARE_RECIPE if recipe else 0.0
    available = cores()
    need = available * prepare / (prepare + 1.0)
    return 0 if need < 0.5 else min(available, math.ceil(need))


def median_megapixels(samples) -> float | None:
    """The median size, in megapixels, of up to :data:`SAMPLED_HEADERS` of ``samples``
    spread over the list, from their headers (:func:`~augkit.input.decoding.header_size`);
    None when none can be read."""
    import statistics

    from augkit.input.decoding import header_size

    spread = samples[::max(1, len(samples) // SAMPLED_HEADERS)][:SAMPLED_HEADERS]
    sizes = [h * w / 1e6 for h, w in filter(None, (header_size(s.path) for s in spread))]
    return statistics.median(sizes) if sizes else None


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
        **decode_setting(features_hint(recipe, backbone.preprocessing, options.views, options.plain_first,
                                       options.reduced_decode)),
    }


def cache_features(src, cache, *, backbone=None, weights=None, recipe=None, options: FeatureOptions = FeatureOptions(),
                   workers: int | None = None, overwrite: bool = False, split: str | None = None,
                   progress: bool = False, engine: str = "local", cache_dir=None, mirror: str | None = None,
                   engine_options: dict[str, Any] | None = None) -> FeatureSummary:
    """Compute (or finish computing) the feature cache of ``src`` in ``cache``.

    ``backbone`` is a :class:`~augkit.stages.backbones.Backbone`, or a name / YAML / ONNX path for
    :func:`~augkit.stages.backbones.resolve_backbone`. ``engine`` names the engine
    (:func:`augkit.engines.get_engine`; ``engine_options`` are its own). Returns the
    :class:`FeatureSummary`."""
    from augkit.engines import get_engine
    from augkit.engines.local import default_workers as cores
    from augkit.input.discovery import discover
    from augkit.recipes import load_recipe

    started, wall = time.perf_counter(), time.time()
    _check(options, recipe)
    cache = Path(cache)
    dataset = discover(src, split=split)
    check_paths(dataset.source_folders(), cache)
    if workers is None:
        workers = default_workers(recipe is not None, median_megapixels(dataset.samples))
    # The engine first: its workers' imports overlap the recipe's and the backbone's.
    runner = get_engine(engine, workers=workers, preload=(FeatureTask.__module__,), **(engine_options or {}))
    with runner, contextlib.ExitStack() as held:
        recipe = load_recipe(recipe) if recipe is not None else None
        if recipe is not None:
            recipe.require_image_output("drop {name}: the backbone applies its own normalisation")
        options = dataclasses.replace(options, seed=run_seed(options.seed, recipe))  # as the CLI: the recipe's seed:
        backbone, path, sha, model = _backbone(backbone, weights, cache_dir, mirror, progress)
        settings = _settings(backbone, sha, model, recipe, options)
        settings["weights_file"] = str(Path(path).resolve())  # where train-head finds the backbone again (not compared)
        refuse_foreign(cache)  # before anything is created in a folder of the user's
        cache.mkdir(parents=True, exist_ok=True)
        held.enter_context(folder_lock(cache, "CACHE"))  # one run at a time writes a cache
        prepare_cache(cache, settings, overwrite, dataset.samples)
        shards = plan_shards(dataset.samples, options)
        drop_beyond(cache, shards)
        todo = [s for s in shards if not shard_done(cache, s)]
        threads = options.threads or cores()
        providers = options.providers or (CPU,)
        options = dataclasses.replace(options, batch_size=options.batch_size or batch_size_for(threads, providers))
        summary = FeatureSummary(images=len(dataset.samples), shards=len(shards), computed_shards=len(todo),
                                 dtype=options.dtype, backbone=backbone.name, weights=str(path), cache=str(cache),
                                 workers=workers, threads=threads, batch_size=options.batch_size)
        if not settings["weights_are_the_registrys"]:
            summary.notes.append(f"note: {path} is not the {backbone.name} weights the registry names (sha256 "
                                 f"{sha[:12]}..., registry {backbone.sha256[:12]}...); the cache records the file's hash")
        if todo:
            sinks = FeatureSinks(model, str(cache), options.dtype, options.batch_size, threads, backbone.feature_dim,
                                 backbone.preprocessing.input_size, providers)
            task = FeatureTask(recipe, backbone.preprocessing, options)
            _timed(summary, _compute(runner, task, sinks, dataset.samples, todo, options.views, progress), wall)
        remove_temporaries(cache, is_ours)
        for name, value in join(cache, shards, dataset, settings).items():
            setattr(summary, name, value)
    summary.seconds = time.perf_counter() - started
    return summary


def _check(options: FeatureOptions, recipe) -> None:
    """Usage errors, before anything is read or started."""
    from augkit.input.decoding import resolve_max_pixels

    if options.dtype not in DTYPES:
        raise UsageError(f"--dtype {options.dtype}: use one of {', '.join(DTYPES)}")
    if options.views < 1 or (options.batch_size is not None and options.batch_size < 1):
        raise UsageError("--views and --batch-size must be at least 1")
    if recipe is None and (options.views > 1 or options.plain_first):
        raise UsageError("--views > 1 and --plain-first need --recipe (without one every view is the same image)")
    resolve_max_pixels(options.max_pixels)  # a bad AUGKIT_MAX_IMAGE_PIXELS: one usage error, not a row per image


def _backbone(backbone, weights, cache_dir, mirror: str | None, progress: bool):
    """(backbone entry, weights file, its sha256, the model cut at the features)."""
    from augkit.stages.backbones import Backbone, feature_model, resolve_backbone, weights_file

    if not isinstance(backbone, Backbone):
        backbone = resolve_backbone(backbone, weights=weights)
    path, sha = weights_file(backbone, cache_dir=cache_dir, mirror=mirror, progress=progress)
    return backbone, path, sha, feature_model(path, backbone, pixels=True)


def _compute(runner, task: FeatureTask, sinks: FeatureSinks, samples, todo: list[Shard], views: int,
             progress: bool) -> list[dict[str, Any]]:
    """Feed the todo shards' images through the engine's workers into its sinks (batches,
    inference, shard files); returns the sinks' totals."""
    groups = [(shard, [(s.path, s.key, s.label) for s in samples[shard.start:shard.stop]]) for shard in todo]
    bar = progress_bar(sum(len(items) for _, items in groups) * views, unit="row", desc="features", enabled=progress)
    try:
        return runner.feed(task, groups, sinks, bar.update)
    except BaseException:
        remove_temporaries(Path(sinks.cache), is_ours)
        raise
    finally:
        bar.close()


def _timed(summary: FeatureSummary, totals: list[dict[str, Any]], started: float) -> None:
    """The summary's rows computed and timings, from the sinks' totals (wall clock: the
    sinks may be Ray actors in other processes)."""
    summary.computed_rows = sum(t["rows"] for t in totals)
    summary.inference_s = sum(t["busy_s"] for t in totals)
    done = [t for t in totals if t["t_first"] is not None]
    if done:
        first = min(done, key=lambda t: t["t_first"])
        last = max(t["t_last"] for t in done)
        summary.first_batch_s = first["t_first"] - started
        if last > first["t_first"]:
            summary.steady_rows_per_s = (summary.computed_rows - first["rows_first"]) / (last - first["t_first"])
