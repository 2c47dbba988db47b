"""``train_head``: a linear softmax head on a feature cache, chosen on validation images,
written to HEAD with its metrics, its confusion picture and the deployable ``model.onnx``.

cache(s), checked (:mod:`.data`) -> training and validation rows (held out by image, or
``--val CACHE``) -> the search over ``C`` (:mod:`.solver`) -> metrics (:mod:`.metrics`)
-> HEAD: ``head.json`` (the run's record, ``complete: false`` until the end), ``head.npz``
(weight, bias, classes), ``classes.txt``, ``metrics.json``, ``confusion.png`` and
``model.onnx`` (:mod:`.export`), each written whole. A rerun into a HEAD made with other
settings is refused unless ``overwrite``; a folder holding anything else is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.core.files import folder_lock, is_empty_folder, remove_temporaries, write_atomic, write_text_atomic
from augkit.core.progress import progress_bar
from augkit.core.runs import UnreadableRecord, describe, differences, read_record, refuse_unless_overwrite, \
    write_record
from augkit.stages.head import data, metrics, solver
from augkit.stages.head.export import backbone_file, classifier_model

RECORD = "head.json"
FILES = (RECORD, "head.npz", "classes.txt", "metrics.json", "confusion.png", "model.onnx")
DEFAULT_VAL_FRACTION = 0.2
# The settings that change what a HEAD holds: a rerun with other ones is another run.
_COMPARED = ("train_cache", "val_cache", "val_fraction", "C", "balanced", "held_out_seed", "max_iter", "tol",
             "weights_sha256")
# (Not "seed": the run guard ignores a seed where no recipe is recorded, and a head has none.)
_NAMES = {"held_out_seed": "seed", "train_cache": "CACHE", "val_cache": "--val"}
_NOT_SET = {"val_fraction": "the default"}  # with --val, or none given; an absent --val reads "none"


@dataclass(frozen=True)
class HeadOptions:
    C: tuple[float, ...] | None = None  # None: solver.DEFAULT_C with validation, else solver.NO_VALIDATION_C
    balanced: bool = False
    seed: int = 0
    val_fraction: float | None = None  # None: DEFAULT_VAL_FRACTION without --val
    max_iter: int = 1000
    tol: float = 1e-4
    memory: int | None = None  # bytes of float32 rows kept in memory; None: a quarter of what is available


@dataclass
class HeadSummary:
    head: str = ""
    classes: list[str] = field(default_factory=list)
    feature_dim: int = 0
    train_rows: int = 0
    train_images: int = 0
    val_rows: int = 0
    val_images: int = 0
    validation: str = ""  # how the validation images were chosen
    C: float = 0.0
    search: list[dict[str, Any]] = field(default_factory=list)
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    streamed: bool = False  # the rows did not fit the memory budget: read from the shards every pass
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Split:
    train: Any  # Rows
    val: Any  # Rows or None
    train_images: int
    val_images: int
    validation: str
    val_views: str | None


def train_head(cache, head, *, val=None, options: HeadOptions = HeadOptions(), weights=None, mirror: str | None = None,
               overwrite: bool = False, progress: bool = False) -> HeadSummary:
    """Train a head on the feature cache ``cache`` (validated on ``val``, another cache, or
    on held-out images) and write HEAD. Returns the :class:`HeadSummary`."""
    started = time.perf_counter()
    train_cache = data.open_cache(cache)
    val_cache = data.open_cache(val, "--val") if val is not None else None
    if val_cache is not None:
        data.check_same_features(train_cache, val_cache)
    values = _values(options, val_cache)
    head = Path(head)
    _refuse_foreign(head)
    backbone = backbone_file(train_cache.meta, train_cache.path, weights, mirror, progress)
    split = _split(train_cache, val_cache, options)
    notes = []
    if split.val is None and len(values) > 1:  # every class too small to spare an image
        if options.C:
            raise UsageError(f"{train_cache.path}: no class has enough images to hold some out for validation; give "
                             f"--val CACHE or one --C value")
        values = (solver.NO_VALIDATION_C,)
        notes.append(f"note: no class has enough images to hold some out (--val-fraction); trained with "
                     f"C={values[0]:g}, without a search")
    settings = _settings(train_cache, val_cache, options, values)
    head.mkdir(parents=True, exist_ok=True)
    with folder_lock(head, "HEAD"):
        _prepare(head, settings, overwrite)
        best, fits = solver.search(split.train, split.val, len(train_cache.classes), values, max_iter=options.max_iter,
                                   tol=options.tol, bar=_bar(progress, options.max_iter))
        summary = _summary(head, train_cache, split, best, fits)
        summary.notes[:0] = notes
        report = _metrics(train_cache, val_cache, split, best, fits, summary, options)
        _write(head, train_cache, best, report, backbone, settings)
    summary.seconds = time.perf_counter() - started
    return summary


def _values(options: HeadOptions, val_cache) -> tuple[float, ...]:
    judged = val_cache is not None or (options.val_fraction if options.val_fraction is not None
                                       else DEFAULT_VAL_FRACTION) > 0
    values = options.C or (solver.DEFAULT_C if judged else (solver.NO_VALIDATION_C,))
    if val_cache is not None and options.val_fraction is not None:
        raise UsageError("give --val CACHE or --val-fraction, not both")
    if any(not c > 0 for c in values):
        raise UsageError(f"--C {','.join(f'{c:g}' for c in values)}: every value must be above 0")
    if len(values) > 1 and not judged:
        raise UsageError("a search over several --C values needs validation images: give --val CACHE, a "
                         "--val-fraction above 0, or one --C value")
    return tuple(sorted(set(values)))


def _split(train_cache, val_cache, options: HeadOptions) -> _Split:
    """The training rows and the judged validation rows, with their labels and weights."""
    import numpy as np

    from augkit.engines.local import available_memory

    memory = options.memory if options.memory is not None else (available_memory() or 4 << 30) // 4
    k = len(train_cache.classes)
    if val_cache is None:
        fraction = options.val_fraction if options.val_fraction is not None else DEFAULT_VAL_FRACTION
        train, held = data.hold_out(train_cache, fraction, options.seed)
        val_source, val_rows = train_cache, data.judged_rows(train_cache, held)
        val_labels = train_cache.labels[val_rows]
        validation = f"{fraction:g} of each class's images held out (seed {options.seed})" if fraction else "none"
    else:
        train = np.flatnonzero(train_cache.labels >= 0)
        labelled = np.flatnonzero(val_cache.labels >= 0)
        if not len(labelled):
            raise UsageError(f"--val {val_cache.path}: holds no labelled images, so it cannot judge the classifier; "
                             f"make it from class folders or a manifest with labels (the val split of `augkit split`)")
        val_source, val_rows = val_cache, data.judged_rows(val_cache, labelled)
        to_train = np.array([train_cache.classes.index(c) for c in val_cache.classes], np.int64)
        val_labels = to_train[val_cache.labels[val_rows]]
        validation = f"--val {val_cache.path}"
    labels = train_cache.labels[train]
    present = np.unique(labels)
    if len(present) < 2:
        raise UsageError(f"{train_cache.path}: the training images hold {len(present)} labelled class(es); a "
                         f"classifier needs at least 2 (unlabelled images are not used)")
    weights = data.class_weights(labels, k, options.balanced)[labels]
    rows = data.Rows(train_cache, train, labels, weights, memory)
    val = data.Rows(val_source, val_rows, val_labels, np.ones(len(val_rows)), memory) if len(val_rows) else None
    views = None if val is None else ("augmented" if val_source.meta.get("recipe") and not
                                      val_source.meta.get("plain_first") else "plain")
    return _Split(rows, val, _images(train_cache, train), _images(val_source, val_rows), validation, views)


def _images(cache, rows) -> int:
    return len({cache.keys[r] for r in rows.tolist()})


def _settings(train_cache, val_cache, options: HeadOptions, values) -> dict[str, Any]:
    return {
        "complete": False,
        "train_cache": data.cache_identity(train_cache),
        "val_cache": data.cache_identity(val_cache) if val_cache is not None else None,
        "val_fraction": options.val_fraction,
        "C": list(values),
        "balanced": options.balanced,
        "held_out_seed": options.seed,
        "max_iter": options.max_iter,
        "tol": options.tol,
        "weights_sha256": train_cache.meta["weights_sha256"],
    }


def _refuse_foreign(head: Path) -> None:
    if head.exists() and not head.is_dir():
        raise UsageError(f"{head}: exists and is not a folder; choose another HEAD")
    if head.is_dir() and not (head / RECORD).exists() and not is_empty_folder(head):
        first = sorted(p.name for p in head.iterdir())[0]
        raise UsageError(f"{head}: holds files train-head did not write (e.g. {first}) and no {RECORD}; a HEAD must be "
                         f"a new or empty folder, or one `augkit train-head` made: choose another HEAD")


def _prepare(head: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse a HEAD made with other settings unless ``overwrite`` (then remove its files,
    only those); record this run as incomplete until its files are written."""
    try:
        previous = read_record(head / RECORD)
    except UnreadableRecord:
        previous = {}
    if previous is not None:
        differs = differences(previous, settings, _COMPARED)
        if refuse_unless_overwrite(head, describe(previous, settings, differs, _NAMES, _NOT_SET), overwrite, holds="a head", word="HEAD"):
            for name in FILES:
                (head / name).unlink(missing_ok=True)
    remove_temporaries(head, lambda name: name in FILES)
    write_record(head / RECORD, settings)


def _bar(progress: bool, max_iter: int):
    def bar(C: float):
        return progress_bar(max_iter, unit="iter", desc=f"head C={C:g}", enabled=progress)

    return bar


def _summary(head: Path, cache, split: _Split, best, fits) -> HeadSummary:
    summary = HeadSummary(head=str(head), classes=list(cache.classes), feature_dim=int(cache.meta["feature_dim"]),
                          train_rows=len(split.train), train_images=split.train_images,
                          val_rows=len(split.val) if split.val is not None else 0, val_images=split.val_images,
                          validation=split.validation, C=best.C, streamed=not split.train.kept)
    summary.search = [{"C": f.C, "iterations": f.iterations, "converged": f.converged, "objective": f.loss,
                       **{f"val_{k}": v for k, v in f.val.items()}} for f in fits]
    for f in fits:
        if not f.converged:
            summary.notes.append(f"note: C={f.C:g} stopped after {f.iterations} iterations before converging; raise "
                                 f"--max-iter")
    return summary


def _metrics(train_cache, val_cache, split: _Split, best, fits, summary: HeadSummary,
             options: HeadOptions) -> dict[str, Any]:
    """metrics.json: accuracy, per class precision/recall and confusion, on the validation
    rows (and the training rows), the search, and what the features were."""
    from augkit._version import __version__

    k = len(train_cache.classes)
    judged = {}
    for name, rows in (("train", split.train), ("val", split.val)):
        if rows is None:
            judged[name] = None
            continue
        p, y = solver.scores(rows, best.weight, best.bias)
        judged[name] = {"rows": len(rows), "images": split.train_images if name == "train" else split.val_images,
                        **metrics.report(metrics.confusion(y, p.argmax(axis=1), k), train_cache.classes)}
    summary.train_accuracy = judged["train"]["accuracy"]
    summary.val_accuracy = judged["val"]["accuracy"] if judged["val"] else None
    if judged["val"]:
        judged["val"].update(source=split.validation, views=split.val_views)
    return {"augkit_version": __version__, "classes": train_cache.classes, "feature_dim": summary.feature_dim,
            "C": best.C, "search": summary.search, "balanced": options.balanced, "seed": options.seed,
            "train": judged["train"], "val": judged["val"], "cache": _cache_meta(train_cache),
            "val_cache": _cache_meta(val_cache) if val_cache is not None else None}


def _cache_meta(cache) -> dict[str, Any]:
    keys = ("backbone", "weights_sha256", "feature_node", "preprocessing", "recipe", "recipe_fingerprint", "seed",
            "views", "plain_first", "dtype", "source", "images", "rows")
    return {"path": str(cache.path), **{k: cache.meta.get(k) for k in keys}}


def _write(head: Path, cache, best, report: dict[str, Any], backbone: Path, settings: dict[str, Any]) -> None:
    import numpy as np

    classes = list(cache.classes)
    shown = report["val"] or report["train"]
    matrix = np.array(shown["confusion"]["matrix"], np.int64)
    which = "validation" if report["val"] else "training"
    title = f"{which} accuracy {shown['accuracy']:.3f} ({shown['rows']} rows), C={best.C:g}"

    def npz(f) -> None:
        np.savez(f, weight=best.weight, bias=best.bias, classes=np.array(classes))

    info = {"backbone": cache.meta.get("backbone"), "weights_sha256": cache.meta["weights_sha256"], "C": best.C,
            "val_accuracy": report["val"]["accuracy"] if report["val"] else None}
    model = classifier_model(backbone, cache.meta, best.weight, best.bias, classes, info)
    write_atomic(head / "head.npz", npz)
    write_text_atomic(head / "classes.txt", "".join(f"{c}\n" for c in classes))
    write_text_atomic(head / "metrics.json", json.dumps(report, indent=2) + "\n")
    write_atomic(head / "confusion.png", lambda f: f.write(metrics.picture(matrix, classes, title, by="train-head")))
    write_atomic(head / "model.onnx", lambda f: f.write(model))
    write_record(head / RECORD, {**settings, "complete": True})

