"""The feature cache's format, in one place: what a cache folder holds, how it is planned,
written, resumed, joined and read.

A cache holds ``features-NNNNN.npy`` (rows x features) and ``features-NNNNN.json`` per
shard, then ``labels.npy``, ``manifest.csv``, ``failures.csv`` and ``meta.json``:
- A shard is a fixed list of images (:func:`plan_shards`); its plan hashes the images'
  keys, labels and file stamps, the views and ``plain_first``. Its ``.npy`` is written
  whole or not at all, then its ``.json`` (plan, rows, failures, sources, max_pixels),
  which marks it done (:func:`write_shard`, :func:`shard_done`): a rerun skips done shards.
- ``meta.json`` says ``complete: false`` from the start of a run until :func:`join` has
  written the reports from the shards; :func:`load_features` reads only complete caches.
- :func:`prepare_cache` refuses to mix runs (other settings, or sources changed since).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from augkit.core.errors import AugkitError, UsageError
from augkit.core.files import (TEXT_ERRORS, CsvWriter, csv_text, file_stamp, is_empty_folder, remove_temporaries,
                               write_atomic, write_text_atomic)
from augkit.core.runs import FINGERPRINT, UnreadableRecord, describe, differences, read_record, \
    refuse_unless_overwrite, write_record

if TYPE_CHECKING:
    from augkit.stages.features.task import FeatureOptions

META = "meta.json"
MANIFEST = "manifest.csv"
LABELS = "labels.npy"
FAILURES = "failures.csv"
SHARD_ROWS = 4096  # rows per shard (~10 MB of float16 MobileNet v2 features)
DTYPES = ("float16", "float32")
# Settings that change the features a cache holds: a rerun with other ones is another run.
_COMPARED = ("weights_sha256", "preprocessing", "feature_node", FINGERPRINT, "seed", "seeding", "views", "plain_first",
             "dtype", "decode")
_NAMES = {"weights_sha256": "backbone weights", "feature_node": "feature tensor"}



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


def shard_done(cache: Path, shard: Shard) -> bool:
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


# --- a run's start and end ------------------------------------------------------------------


def is_ours(name: str) -> bool:
    return name in (META, MANIFEST, LABELS, FAILURES) or (name.startswith("features-") and name.endswith((".npy", ".json")))


def prepare_cache(cache: Path, settings: dict[str, Any], overwrite: bool, samples=()) -> None:
    """Refuse to mix runs (other settings, or features of source files changed or removed
    since); with ``overwrite``, remove the earlier cache's files (only those). A folder that
    holds anything but a cache is refused, ``overwrite`` or not."""
    from augkit.stages.decode_size import NOT_RECORDED  # imports the recipes: not for reading a cache

    if cache.exists() and not cache.is_dir():
        raise UsageError(f"{cache}: exists and is not a folder; choose another CACHE")
    meta = cache / META
    try:
        previous = read_record(meta)
    except UnreadableRecord:
        previous = {}  # differs in everything: replaced with --overwrite (the cache's files are known by name)
    if previous is not None:
        differs = differences(previous, settings, _COMPARED)
        what = describe(previous, settings, differs, _NAMES, NOT_RECORDED)
        stale = [] if differs else _stale_sources(cache, samples)
        if stale:
            what = (f"features of {len(stale)} images whose files changed or are gone since, e.g. {stale[0]}; "
                    f"source {previous.get('source', '?')}")
        if refuse_unless_overwrite(cache, what, overwrite, holds="features", word="CACHE", pronoun="them"):
            for path in cache.iterdir():
                if path.is_file() and is_ours(path.name):
                    path.unlink()
    else:
        refuse_foreign(cache)
    cache.mkdir(parents=True, exist_ok=True)
    remove_temporaries(cache, is_ours)
    # Incomplete until the reports are joined again: a run stopped half-way is never read
    # as a finished cache, even when it was resuming (or extending) a finished one.
    write_record(meta, {"complete": False, **settings})


def refuse_foreign(cache: Path) -> None:
    if cache.is_dir() and not (cache / META).exists() and not is_empty_folder(cache):
        first = sorted(p.name for p in cache.iterdir())[0]
        raise UsageError(f"{cache}: holds files augkit did not write (e.g. {first}) and no {META}; "
                         f"a CACHE must be a new or empty folder, or one `augkit cache-features` made: "
                         f"choose another CACHE")


def drop_beyond(cache: Path, shards: list[Shard]) -> None:
    """Remove the shard files of an earlier plan with more shards than this one."""
    for stale in cache.glob("features-*.*"):
        index = stale.name[len("features-"):].split(".")[0]
        if index.isdigit() and int(index) >= len(shards):
            stale.unlink()


def write_shard(cache: Path, shard: Shard, parts: list, rows: list, failures: list, dtype: str, dim: int | None) -> None:
    """A shard's .npy (its batches' features, in order), then its .json, which marks it done."""
    import numpy as np

    n = sum(len(p) for p in parts)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (n, dim or 0)}

    def write(f) -> None:  # the .npy format, part after part: no concatenated copy in memory
        np.lib.format.write_array_header_1_0(f, header)
        for part in parts:
            f.write(np.ascontiguousarray(part).data)

    write_atomic(cache / shard.npy, write)
    record = {"plan": shard.plan, "rows": rows, "failures": failures, "sources": shard.sources,
              "max_pixels": shard.max_pixels}
    write_text_atomic(cache / shard.json, json.dumps(record) + "\n")


def join(cache: Path, shards: list[Shard], dataset, settings: dict[str, Any]) -> dict[str, Any]:
    """labels.npy, manifest.csv, failures.csv and the final meta.json, from the shards; returns
    what the summary reports: rows, feature_dim, failed_images, failures (counts by reason)."""
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
    return {"rows": rows, "feature_dim": dim, "failed_images": len(failures), "failures": counts}


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


def not_a_folder(cache: Path, role: str = "") -> UsageError | None:
    """Why ``cache`` cannot be a feature cache to read, when it is not even a folder (None
    when it is one); ``role`` names the argument ("CACHE", "--val")."""
    named = f"{role} {cache}" if role else str(cache)
    if not cache.exists():
        return UsageError(f"{named}: does not exist; make the feature cache with `augkit cache-features SRC -o {cache}`")
    if not cache.is_dir():
        return UsageError(f"{named}: is a file, not a feature cache (the folder `augkit cache-features` writes)")
    return None


def load_features(cache: str | os.PathLike, *, mmap: bool = True) -> FeatureCache:
    """Features, labels, class names and manifest of a cache written by ``cache-features``."""
    import numpy as np

    cache = Path(cache)
    problem = not_a_folder(cache)
    if problem is not None:
        raise problem
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
