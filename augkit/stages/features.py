"""Feature cache: a frozen backbone's pooled features for every image (and K augmented
views of it), computed once, stored as ``.npy`` shards, loaded with :func:`load_features`.

Stages: discovery (parent) -> plan shards (parent) -> decode, recipe view, centre crop
and resize to uint8 (:mod:`augkit.stages.preprocess`; one :class:`FeatureTask` call per
image, run by the engine: in this process or in worker processes, see
:func:`default_workers`) -> batches (parent's main thread) -> ONNX Runtime, which also normalises (:mod:`augkit.stages.inference`: streams, threads of the parent,
overlapped with the preparation of the next batches) -> shard files -> joined reports.

What a user can rely on:
- Row ``r`` of the features is (image, view) of row ``r`` of ``manifest.csv`` and label
  ``labels[r]`` (an index into ``meta.json``'s ``classes``; -1 when unlabelled). Rows are
  ordered by the image's key, then view. View ``v`` of an image is seeded with
  ``derive_seed(seed, key, v)``; with ``plain_first`` view 0 is the image un-augmented.
- A shard is a fixed list of images (so of rows). Its ``.npy`` is written whole or not at
  all, then its ``.json`` (rows and failures), which marks it done. A rerun skips done
  shards: an interrupted run finishes with the same result as an uninterrupted one.
- ``meta.json`` records backbone, weights sha256, preprocessing, the cut tensor, recipe
  and its hash, seed, views and dtype. A rerun into a cache made with other ones is
  refused unless ``overwrite`` (which removes only the cache's own files).
- Memory does not grow with the dataset: features go to disk shard by shard.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import hashlib
import io
import itertools
import json
import os
import queue
import sys
import time
from collections import Counter
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from augkit.core.errors import AugkitError, UsageError
from augkit.core.files import (TEXT_ERRORS, CsvWriter, csv_text, file_stamp, folder_lock, is_empty_folder,
                          remove_temporaries, write_atomic, write_text_atomic)
from augkit.stages.preprocess import crop_to_input, normalize, to_input  # noqa: F401 - features' names for them
from augkit.stages.inference import GIL_SWITCH_S, InferenceStreams, batch_size_for, inference_plan, make_session
from augkit.core.progress import progress_bar
from augkit.core.runs import FINGERPRINT, UnreadableRecord, describe, differences, read_record, \
    refuse_unless_overwrite, write_record
from augkit.core.seeds import SEEDING, run_seed

META = "meta.json"
MANIFEST = "manifest.csv"
LABELS = "labels.npy"
FAILURES = "failures.csv"
SHARD_ROWS = 4096  # rows per shard (~10 MB of float16 MobileNet v2 features)
DTYPES = ("float16", "float32")
# Settings that change the features a cache holds: a rerun with other ones is another run.
_COMPARED = ("weights_sha256", "preprocessing", "feature_node", FINGERPRINT, "seed", "seeding", "views", "plain_first",
             "dtype")
_NAMES = {"weights_sha256": "backbone weights", "feature_node": "feature tensor"}


@dataclass(frozen=True)
class FeatureOptions:
    views: int = 1
    plain_first: bool = False  # view 0 is the image without the recipe
    seed: int | None = None  # None: the recipe's seed: (see augkit.core.seeds.run_seed)
    dtype: str = "float16"
    batch_size: int | None = None  # default: batch_size_for(threads), see there
    threads: int | None = None  # ONNX Runtime intra-op threads (default: one per core)
    shard_images: int | None = None  # images per shard (default: SHARD_ROWS rows)
    max_pixels: int | None = None


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


# --- the worker side --------------------------------------------------------------------------


class FeatureTask:
    """Per image: decode once, then prepare each view. Returns uint8 (views, S, S, 3)
    (the cut model normalises them), or a failure dict with ``reason`` and ``message``."""

    def __init__(self, recipe, prep, options: FeatureOptions):
        self.recipe = recipe
        self.prep = prep
        self.options = options

    def __call__(self, item: tuple[str, str]):
        import numpy as np

        from augkit.input.decoding import DecodeError, decode_image
        from augkit.core.seeds import derive_seed

        path, key = item
        opts = self.options
        try:
            image = decode_image(path, max_pixels=opts.max_pixels)
        except DecodeError as exc:
            return {"reason": exc.reason, "message": str(exc)}
        views = []
        augment = self.recipe.for_image(image) if self.recipe is not None else None
        for v in range(opts.views):
            view = image
            if augment is not None and not (v == 0 and opts.plain_first):
                try:
                    view = augment(derive_seed(opts.seed, key, v))
                except Exception as exc:  # noqa: BLE001 - one transform failure is one row
                    return {"reason": "transform_error", "message": f"{key}: view {v}: {type(exc).__name__}: {exc}"}
            views.append(crop_to_input(view, self.prep))
        return views[0][None] if len(views) == 1 else np.stack(views)


# --- shards ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # sample indices [start, stop)
    stop: int
    plan: str  # hash of what the shard holds: its images (and their files' stamps), labels and views
    sources: tuple[tuple[str, int | None, int | None], ...] = ()  # (key, size, mtime_ns) per image
    max_pixels: int | None = None  # the decoding limit its failures were judged by

    @property
    def npy(self) -> str:
        return f"features-{self.index:05d}.npy"

    @property
    def json(self) -> str:
        return f"features-{self.index:05d}.json"


def plan_shards(samples, options: FeatureOptions) -> list[Shard]:
    per = options.shard_images or max(1, SHARD_ROWS // options.views)
    shards = []
    for index, start in enumerate(range(0, len(samples), per)):
        stop = min(start + per, len(samples))
        sources = tuple((s.key, *(file_stamp(s.path) or (None, None))) for s in samples[start:stop])
        text = json.dumps([[s.key, s.label] for s in samples[start:stop]] + [options.views, options.plain_first]
                          + [sources])
        shards.append(Shard(index, start, stop, hashlib.sha256(text.encode()).hexdigest(), sources,
                            options.max_pixels))
    return shards


def _shard_record(cache: Path, shard_json: str) -> dict[str, Any] | None:
    try:
        record = json.loads((cache / shard_json).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _shard_done(cache: Path, shard: Shard) -> bool:
    """Written whole for this very plan; a shard whose images failed to decode under another
    --max-pixels is done again (its files changing changes the plan itself)."""
    import numpy as np

    record = _shard_record(cache, shard.json)
    try:
        rows = np.load(cache / shard.npy, mmap_mode="r").shape[0]
    except Exception:  # noqa: BLE001 - missing, cut short or unreadable: compute it again
        return False
    if record is None or record.get("plan") != shard.plan or rows != len(record.get("rows", ())):
        return False
    return record.get("max_pixels") == shard.max_pixels or not record.get("failures")


def _stale_sources(cache: Path, samples) -> list[str]:
    """Images whose features the cache holds but whose file is gone or changed since (or
    not recorded: a cache from before augkit recorded its sources)."""
    now = {s.key: file_stamp(s.path) for s in samples}
    stale = []
    for shard_json in sorted(p.name for p in cache.glob("features-*.json")):
        record = _shard_record(cache, shard_json) or {}
        recorded = {key: (size, mtime) for key, size, mtime in record.get("sources", ())}
        for key in dict.fromkeys(row[0] for row in record.get("rows", ())):
            stamp = recorded.get(key, "unrecorded")
            if stamp != (now.get(key) or (None, None)) or key not in now:
                stale.append(key)
    return stale


# --- the run in the parent -------------------------------------------------------------------


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


def _is_ours(name: str) -> bool:
    return name in (META, MANIFEST, LABELS, FAILURES) or (name.startswith("features-") and name.endswith((".npy", ".json")))


def prepare_cache(cache: Path, settings: dict[str, Any], overwrite: bool, samples=()) -> None:
    """Refuse to mix runs (other settings, or features of source files changed or removed
    since); with ``overwrite``, remove the earlier cache's files (only those). A folder that
    holds anything but a cache is refused, ``overwrite`` or not."""

    if cache.exists() and not cache.is_dir():
        raise UsageError(f"{cache}: exists and is not a folder; choose another CACHE")
    meta = cache / META
    try:
        previous = read_record(meta)
    except UnreadableRecord:
        previous = {}  # differs in everything: replaced with --overwrite (the cache's files are known by name)
    if previous is not None:
        differs = differences(previous, settings, _COMPARED)
        what = describe(previous, settings, differs, _NAMES)
        stale = [] if differs else _stale_sources(cache, samples)
        if stale:
            what = (f"features of {len(stale)} images whose files changed or are gone since, e.g. {stale[0]}; "
                    f"source {previous.get('source', '?')}")
        if refuse_unless_overwrite(cache, what, overwrite, holds="features", word="CACHE", pronoun="them"):
            for path in cache.iterdir():
                if path.is_file() and _is_ours(path.name):
                    path.unlink()
    else:
        _refuse_foreign(cache)
    cache.mkdir(parents=True, exist_ok=True)
    remove_temporaries(cache, _is_ours)
    # Incomplete until the reports are joined again: a run stopped half-way is never read
    # as a finished cache, even when it was resuming (or extending) a finished one.
    write_record(meta, {"complete": False, **settings})


def _refuse_foreign(cache: Path) -> None:
    if cache.is_dir() and not (cache / META).exists() and not is_empty_folder(cache):
        first = sorted(p.name for p in cache.iterdir())[0]
        raise UsageError(f"{cache}: holds files augkit did not write (e.g. {first}) and no {META}; "
                         f"a CACHE must be a new or empty folder, or one `augkit cache-features` made: "
                         f"choose another CACHE")


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
    from augkit.engines.local import default_workers as cores
    from augkit.engines import get_engine
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
    runner = get_engine(engine, workers=workers, preload=(__name__,), **(engine_options or {}))  # a forkserver starts now
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
        _refuse_foreign(cache)  # before anything is created in a folder of the user's
        cache.mkdir(parents=True, exist_ok=True)
        held.enter_context(folder_lock(cache, "CACHE"))  # one run at a time writes a cache
        prepare_cache(cache, settings, overwrite, samples)
        shards = plan_shards(samples, options)
        for stale in cache.glob("features-*.*"):  # shards of an earlier plan beyond this one
            index = stale.name[len("features-"):].split(".")[0]
            if index.isdigit() and int(index) >= len(shards):
                stale.unlink()
        todo = [s for s in shards if not _shard_done(cache, s)]
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
                from augkit.stages.ray_features import compute_on_ray

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
        remove_temporaries(cache, _is_ours)
        _join(cache, shards, dataset, settings, summary)
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
        remove_temporaries(cache, _is_ours)
        raise
    finally:
        sys.setswitchinterval(switch)
        bar.close()
    return {"rows": inference.rows, "rows_first": inference.rows_first, "t_first": inference.t_first,
            "t_last": inference.t_last, "busy_s": inference.busy_s}


def _join(cache: Path, shards: list[Shard], dataset, settings: dict[str, Any], summary: FeatureSummary) -> None:
    """labels.npy, manifest.csv, failures.csv and the final meta.json, from the shards."""
    import numpy as np

    from augkit._version import __version__

    class_index = dataset.class_to_index
    failures, files, labels = [], [], []
    dim, rows = None, 0

    def manifest(f) -> None:  # shard by shard: nothing holds every row at once
        nonlocal dim, rows
        text = io.TextIOWrapper(f, encoding="utf-8", errors=TEXT_ERRORS, newline="")
        writer = CsvWriter(text)
        writer.writerow(["path", "label", "view"])
        for shard in shards:
            record = json.loads((cache / shard.json).read_text(encoding="utf-8"))
            writer.writerows(record["rows"])
            failures.extend(record["failures"])
            labels.append(np.array([class_index.get(label, -1) for _, label, _ in record["rows"]], np.int64))
            array = np.load(cache / shard.npy, mmap_mode="r")
            dim = array.shape[1] if array.shape[0] else dim
            rows += int(array.shape[0])
            files.append({"file": shard.npy, "rows": int(array.shape[0])})
        text.flush()
        text.detach()

    write_atomic(cache / MANIFEST, manifest)
    joined = np.concatenate(labels) if labels else np.empty(0, np.int64)
    write_atomic(cache / LABELS, lambda f: np.save(f, joined))
    write_text_atomic(cache / FAILURES, csv_text(["path", "reason", "message"], failures))
    counts = dict(sorted(Counter(reason for _, reason, _ in failures).items()))
    summary.rows, summary.feature_dim = rows, dim
    summary.failed_images, summary.failures = len(failures), counts
    meta = {
        "complete": True,
        **settings,
        "augkit_version": __version__,
        "source": str(Path(dataset.root).resolve()),
        "classes": dataset.classes,
        "images": len(dataset.samples),
        "rows": rows,
        "feature_dim": dim,
        "failed_images": len(failures),
        "failures": counts,
        "shards": files,
    }
    write_text_atomic(cache / META, json.dumps(meta, indent=2) + "\n")


# --- reading a cache -------------------------------------------------------------------------


class ShardedRows:
    """The rows of several memory-mapped shards as one read-only (rows, features) array:
    nothing is read until rows are indexed, so a cache larger than memory loads at once.
    Indexing (an int, a slice, an index or boolean array, with an optional column index)
    returns an ordinary ndarray; ``np.asarray(rows)`` reads everything."""

    def __init__(self, parts: list):
        import numpy as np

        self._parts = parts
        self._starts = np.cumsum([0] + [len(p) for p in parts])
        self.dtype = parts[0].dtype
        self.shape = (int(self._starts[-1]), *parts[0].shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        import numpy as np

        rows, columns = (index[0], index[1:]) if isinstance(index, tuple) else (index, ())
        if isinstance(rows, (int, np.integer)):
            k = int(rows) + (len(self) if rows < 0 else 0)
            if not 0 <= k < len(self):
                raise IndexError(f"row {rows} out of range for {len(self)} rows")
            j = int(np.searchsorted(self._starts, k, side="right")) - 1
            return np.asarray(self._parts[j][(k - self._starts[j], *columns)])
        wanted = np.arange(len(self))[rows]  # slices, index and boolean arrays, as NumPy reads them
        shard = np.searchsorted(self._starts, wanted, side="right") - 1
        out = np.empty((len(wanted), *self.shape[1:]), self.dtype)
        for j in np.unique(shard):
            at = shard == j
            out[at] = self._parts[j][wanted[at] - self._starts[j]]
        return out[(slice(None), *columns)] if columns else out

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        whole = np.concatenate(self._parts) if self._parts else np.empty(self.shape, self.dtype)
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"ShardedRows(shape={self.shape}, dtype={self.dtype}, shards={len(self._parts)})"


@dataclass
class FeatureCache:
    """What :func:`load_features` returns; unpacks and indexes as ``features, labels,
    classes, manifest``."""

    features: Any  # (rows, feature_dim): a memory-mapped array, or ShardedRows over several
    labels: Any  # (rows,) int64, -1 for unlabelled
    classes: list[str]
    manifest: list[dict[str, Any]]  # per row: path (key in SRC), label, view
    meta: dict[str, Any]

    def __iter__(self):
        return iter((self.features, self.labels, self.classes, self.manifest))

    def __getitem__(self, index: int):
        return (self.features, self.labels, self.classes, self.manifest)[index]

    def __len__(self) -> int:
        return 4


def load_features(cache: str | os.PathLike, *, mmap: bool = True) -> FeatureCache:
    """Features, labels, class names and manifest of a cache written by ``cache-features``."""
    import numpy as np

    cache = Path(cache)
    try:
        meta = json.loads((cache / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{cache}: no {META}; not a feature cache (make one with `augkit cache-features`)") from None
    except (OSError, ValueError) as exc:
        raise AugkitError(f"{cache / META}: unreadable ({exc})") from None
    if not meta.get("complete"):
        raise AugkitError(f"{cache}: the cache is incomplete; rerun the same `augkit cache-features` command to finish it")
    mode = "r" if mmap else None
    arrays = [np.load(cache / s["file"], mmap_mode=mode) for s in meta["shards"]]
    non_empty = [a for a in arrays if a.shape[0]] or arrays[:1]
    if len(non_empty) == 1:
        features = non_empty[0]
    else:
        features = ShardedRows(non_empty) if mmap else np.concatenate(non_empty)
    labels = np.load(cache / LABELS)
    with open(cache / MANIFEST, newline="", encoding="utf-8", errors=TEXT_ERRORS) as f:
        manifest = [{"path": r["path"], "label": r["label"] or None, "view": int(r["view"])} for r in csv.DictReader(f)]
    if len(manifest) != features.shape[0] or len(labels) != features.shape[0]:
        raise AugkitError(f"{cache}: {features.shape[0]} feature rows but {len(manifest)} manifest rows; "
                          f"rerun `augkit cache-features` with --overwrite to rebuild it")
    return FeatureCache(features, labels, list(meta.get("classes", [])), manifest, meta)
