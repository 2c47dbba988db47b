"""The rows a head learns from and is judged on: feature caches checked before they are
trusted, the validation images held out, and the rows read chunk by chunk in float32.

- :func:`open_cache` refuses (exit 2) a cache it cannot trust: not a cache, incomplete (a
  run stopped half-way, or still running), mixed (shard files that are not the ones its
  ``meta.json`` lists, or rows that do not add up), or stale (made with another resize
  rule than the one augkit uses today, so a deployed model would not see what it learnt).
- :func:`hold_out` picks validation *images*, never rows: every view of an image goes to
  the same side. Per class, largest-remainder counts and a seeded order by
  ``derive_seed(seed, key)``, as ``augkit split`` does.
- :class:`Rows` gives the rows as float32 chunks with their labels and weights. When they
  fit the memory budget they are read once and kept; otherwise every pass reads them
  again from the memory-mapped shards, so a cache larger than memory trains all the same.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augkit.core.errors import AugkitError, UsageError
from augkit.core.runs import UnreadableRecord, read_record
from augkit.core.seeds import derive_seed
from augkit.stages.features.cache import META, load_features, not_a_folder
from augkit.stages.preprocess import RESAMPLE
from augkit.stages.split import exact_fraction, quotas

CHUNK_ROWS = 4096  # rows per chunk: ~20 MB of float32 1280-value features
# What a head needs from a cache's meta.json; a cache without them predates train-head.
_NEEDED = ("weights_sha256", "preprocessing", "feature_node", "classes", "feature_dim", "shards", "dtype")
# Settings two caches must share for their features to be the same function of an image.
SAME_FEATURES = ("weights_sha256", "preprocessing", "feature_node")


@dataclass
class Cache:
    path: Path
    meta: dict[str, Any]
    parts: list  # the shards' memory-mapped arrays, in row order
    labels: Any  # (rows,) int64, -1 unlabelled
    classes: list[str]
    keys: list[str]  # per row: the image's key
    views: Any  # (rows,) int64

    @property
    def rows(self) -> int:
        return len(self.labels)

    @property
    def files(self) -> list[Path]:
        return [self.path / shard["file"] for shard in self.meta["shards"]]


def open_cache(path, role: str = "CACHE") -> Cache:
    """The cache at ``path``, checked: UsageError (exit 2) naming what is wrong and the fix."""
    import numpy as np

    path = Path(path)
    meta = _meta(path, role)
    listed = [s["file"] for s in meta["shards"]]
    extra = sorted({p.name for p in path.glob("features-*.npy")} - set(listed))
    if extra:
        raise UsageError(f"{path}: mixed: {extra[0]} is not one of the shards its {META} lists; rebuild the cache "
                         f"with `augkit cache-features ... --overwrite`")
    parts = []
    for shard in meta["shards"]:
        try:
            array = np.load(path / shard["file"], mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path / shard['file']}: unreadable ({exc}); rebuild the cache with --overwrite") from None
        if array.shape[0] != shard["rows"] or (array.shape[0] and array.shape[1] != meta["feature_dim"]):
            raise UsageError(f"{path / shard['file']}: mixed: holds {array.shape} rows x values, {META} says "
                             f"{shard['rows']} x {meta['feature_dim']}; rebuild the cache with --overwrite")
        parts.append(array)
    try:
        loaded = load_features(path)
    except AugkitError as exc:
        raise UsageError(str(exc)) from None
    keys = [row["path"] for row in loaded.manifest]
    views = np.array([row["view"] for row in loaded.manifest], np.int64)
    if not keys:
        raise UsageError(f"{path}: the cache holds no features (every image failed?); see {path / 'failures.csv'}")
    return Cache(path, meta, parts, np.asarray(loaded.labels, np.int64), list(loaded.classes), keys, views)


def _meta(path: Path, role: str) -> dict[str, Any]:
    problem = not_a_folder(path, role)
    if problem is not None:
        raise problem
    try:
        meta = read_record(path / META)
    except UnreadableRecord as exc:
        raise UsageError(f"{path / META}: unreadable ({exc}); rebuild the cache with `augkit cache-features ... "
                         f"--overwrite`") from None
    if meta is None:
        raise UsageError(f"{role} {path}: no {META}; not a feature cache (make one with `augkit cache-features`)")
    if not meta.get("complete"):
        raise UsageError(f"{path}: incomplete (a cache-features run stopped half-way, or is running); rerun the same "
                         f"`augkit cache-features` command to finish it")
    missing = [k for k in _NEEDED if meta.get(k) is None]
    resample = (meta.get("preprocessing") or {}).get("resample")
    if missing or resample != RESAMPLE:
        what = f"no {missing[0]}" if missing else f"resize rule {resample!r}, augkit now uses {RESAMPLE!r}"
        raise UsageError(f"{path}: stale: made by an older augkit ({what}), so a deployed model would not see what "
                         f"the head learns; rerun `augkit cache-features ... --overwrite`")
    return meta


def check_same_features(train: Cache, val: Cache) -> None:
    """A validation cache must hold the same function of an image as the training cache,
    and other images."""
    for key in SAME_FEATURES:
        if train.meta.get(key) != val.meta.get(key):
            raise UsageError(f"--val {val.path}: mixed: made with another {key.replace('_', ' ')} than {train.path}; "
                             f"make both with the same backbone and preprocessing")
    if Path(str(train.meta.get("source"))) == Path(str(val.meta.get("source"))):
        shared = set(train.keys) & set(val.keys)
        if shared:
            raise UsageError(f"--val {val.path}: holds {len(shared)} images of the training cache (e.g. "
                             f"{sorted(shared)[0]}); validate on other images (augkit split, then --split val)")
    unknown = sorted(set(val.classes) - set(train.classes))
    if unknown:
        raise UsageError(f"--val {val.path}: class {unknown[0]!r} has no training images in {train.path}; the head "
                         f"cannot predict it")


def judged_rows(cache: Cache, rows):
    """Of ``rows`` (indices), those validation judges: the plain view when the cache has
    one (``--plain-first``, or no recipe), else every view."""
    import numpy as np

    rows = np.asarray(rows, np.int64)
    if cache.meta.get("recipe") is None:
        return rows
    if cache.meta.get("plain_first"):
        return rows[cache.views[rows] == 0]
    return rows


def hold_out(cache: Cache, fraction: float, seed: int):
    """(train rows, validation rows) of the labelled rows, validation a ``fraction`` of
    each class's images (all their views)."""
    import numpy as np

    share = exact_fraction(fraction, "--val-fraction")
    image_rows: dict[str, list[int]] = defaultdict(list)
    image_label: dict[str, int] = {}
    for r, (key, label) in enumerate(zip(cache.keys, cache.labels.tolist())):
        if label >= 0:
            image_rows[key].append(r)
            image_label[key] = label
    by_class: dict[int, list[str]] = defaultdict(list)
    for key, label in image_label.items():
        by_class[label].append(key)
    val_keys: set[str] = set()
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda k: (derive_seed(seed, k), k))
        val_keys.update(members[:quotas(len(members), {"train": 1 - share, "val": share})["val"]])
    train = [r for key, rows in image_rows.items() if key not in val_keys for r in rows]
    val = [r for key, rows in image_rows.items() if key in val_keys for r in rows]
    return np.array(sorted(train), np.int64), np.array(sorted(val), np.int64)


def class_weights(labels, classes: int, balanced: bool):
    """Per class: 1, or with ``balanced`` n / (classes present x count), as scikit-learn's
    ``class_weight="balanced"`` (classes without rows get 0: they have no rows to weigh)."""
    import numpy as np

    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    if not balanced:
        return np.ones(classes)
    present = int((counts > 0).sum())
    return np.divide(len(labels), present * counts, out=np.zeros(classes), where=counts > 0)


class Rows:
    """Rows ``index`` (sorted) of a cache as float32 chunks ``(X, y, w)``: features, class
    index, sample weight. Kept in memory after the first pass when ``rows x values x 4``
    bytes fit ``memory`` (that pass reads each shard whole, not mapped, so the memory holds
    the float32 rows and one shard); read again from the memory-mapped shards on every
    pass otherwise."""

    def __init__(self, cache: Cache, index, labels, weights, memory: int, chunk: int = CHUNK_ROWS):
        import numpy as np

        self.dim = int(cache.meta["feature_dim"])
        self.n = len(index)
        self.labels = np.asarray(labels, np.int64)
        self.weights = np.asarray(weights, np.float64)
        self.total_weight = float(self.weights.sum())
        self.kept = self.n * self.dim * 4 <= memory
        self._cache = cache
        self._plan = _chunks(cache, np.asarray(index, np.int64), chunk)
        self._held: list | None = None

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if self._held is not None:
            yield from self._held
            return
        import numpy as np

        held = [] if self.kept else None
        at = 0
        shard, whole = None, None
        for j, local, n in self._plan:
            if self.kept and shard != j:
                shard, whole = j, np.load(self._cache.files[j])
            x = _read(whole if self.kept else self._cache.parts[j], local, n)
            item = (x, self.labels[at:at + n], self.weights[at:at + n])
            at += n
            if held is not None:
                held.append(item)
            yield item
        if held is not None:
            self._held = held


def _chunks(cache: Cache, index, chunk: int) -> list[tuple[int, Any, int]]:
    """(shard, its rows, row count) per chunk: never across shards, at most ``chunk``
    rows. The rows are a list of slices where they run in a few long stretches (every row
    of an image's shard, or all but the held-out images'), else an index array."""
    import numpy as np

    starts = np.cumsum([0] + [len(p) for p in cache.parts])
    plan = []
    shard_of = np.searchsorted(starts, index, side="right") - 1
    for j in np.unique(shard_of):
        local = index[shard_of == j] - starts[j]
        for i in range(0, len(local), chunk):
            rows = local[i:i + chunk]
            breaks = np.flatnonzero(np.diff(rows) != 1) + 1
            if len(breaks) <= len(rows) // 64:
                edges = [0, *breaks.tolist(), len(rows)]
                rows = [slice(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(edges, edges[1:])]
            plan.append((int(j), rows, len(local[i:i + chunk])))
    return plan


def _read(part, rows, n: int):
    """float32 rows of a shard's array, converted in one pass where they are slices."""
    import numpy as np

    if not isinstance(rows, list):
        return part[rows].astype(np.float32)
    out = np.empty((n, part.shape[1]), np.float32)
    at = 0
    for piece in rows:
        stop = at + piece.stop - piece.start
        out[at:stop] = part[piece]
        at = stop
    return out


def cache_identity(cache: Cache) -> str:
    """What a head's record names a cache by: the sha256 of its meta.json's content (a cache
    rebuilt since is another cache; the same cache moved or copied is the same)."""
    import hashlib

    text = json.dumps(cache.meta, sort_keys=True).encode("utf-8", "surrogateescape")
    return hashlib.sha256(text).hexdigest()
