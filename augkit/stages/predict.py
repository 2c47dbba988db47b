"""``predict``: a classifier ``augkit train-head`` wrote, run over a folder, a manifest or
one image, into a CSV of each image's top classes and probabilities.

It runs as ``cache-features`` does, on the same machinery: :class:`FeatureTask` per image
on the engine's workers (decode, the backbone's crop rule, uint8 RGB), the feature
cache's assembler and ONNX Runtime streams (:mod:`augkit.stages.features.assemble`) with
the classifier's ``model.onnx`` in place of the cut backbone, so its "features" are the
class probabilities. The shards land in a work folder beside the CSV (on a shared
filesystem for Ray's actors, as a cache does) and are joined, in the source's order, into
the CSV, whole or not at all; the work folder goes.

With labels in the source (class folders, a manifest's label column) it measures accuracy,
per-class precision and recall and the confusion matrix (:mod:`augkit.stages.head.metrics`),
over the model's classes and any label the model does not know (always wrong).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.core.files import TEXT_ERRORS, CsvWriter, check_output_file, write_atomic
from augkit.core.progress import progress_bar
from augkit.stages.classifier import read_model
from augkit.stages.features.cache import Shard
from augkit.stages.features.task import FeatureOptions
from augkit.stages.head import metrics
from augkit.stages.providers import CPU

GROUP_IMAGES = 1024  # images per shard of the work folder
_WORK = ".augkit-work-"  # the work folder: .<csv name>.augkit-work-<pid>-<random>


@dataclass
class PredictSummary:
    images: int = 0
    predicted: int = 0
    failed_images: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    csv: str = ""
    plot: str | None = None
    classes: list[str] = field(default_factory=list)
    top_k: int = 0
    labelled: int = 0  # predicted images with a label
    metrics: dict[str, Any] | None = None  # accuracy, per_class, confusion (with labels)
    unknown_labels: list[str] = field(default_factory=list)  # labels the model has no class for
    workers: int = 0
    threads: int = 0
    batch_size: int = 0
    seconds: float = 0.0
    images_per_s: float | None = None  # end to end, start-up included
    steady_images_per_s: float | None = None  # from the first batch done to the last (as cache-features reports)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(model, src, out, *, top_k: int = 3, split: str | None = None, workers: int | None = None,
            threads: int | None = None, batch_size: int | None = None, providers: tuple[str, ...] = (CPU,),
            max_pixels: int | None = None, plot=None, overwrite: bool = False, progress: bool = False,
            engine: str = "local", engine_options: dict[str, Any] | None = None,
            reduced_decode: bool = True) -> PredictSummary:
    """Classify every image of ``src`` with ``model`` (a HEAD folder or its model.onnx) into
    the CSV ``out``; with labels, also the metrics (and their picture at ``plot``).
    ``reduced_decode=False`` decodes every JPEG whole (:mod:`augkit.stages.decode_size`)."""
    from augkit.engines.local import default_workers as cores
    from augkit.stages.features.inference import batch_size_for
    from augkit.stages.features.run import default_workers, median_megapixels

    started = time.perf_counter()
    classifier = read_model(model)
    dataset = _source(src, split)
    out, plot = Path(out), Path(plot) if plot is not None else None
    _check_outputs(out, plot, overwrite, dataset)
    threads = threads or cores()
    if workers is None:
        workers = default_workers(False, median_megapixels(dataset.samples))
    summary = PredictSummary(images=len(dataset.samples), csv=str(out), classes=list(classifier.classes),
                             top_k=max(1, min(top_k, len(classifier.classes))), workers=workers, threads=threads,
                             batch_size=batch_size or batch_size_for(threads, providers))
    shards = [Shard(i, start, min(start + GROUP_IMAGES, len(dataset.samples)), "", (), max_pixels)
              for i, start in enumerate(range(0, len(dataset.samples), GROUP_IMAGES))]
    _sweep_work_folders(out)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}{_WORK}{os.getpid()}-", dir=out.parent))
    try:
        options = FeatureOptions(max_pixels=max_pixels, reduced_decode=reduced_decode)
        totals = _run(classifier, dataset.samples, shards, work, summary, tuple(providers), options, progress,
                      engine, engine_options)
        _join(work, shards, dataset.samples, classifier.classes, out, summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if summary.metrics is not None and plot is not None:
        _plot(plot, summary)
    summary.seconds = time.perf_counter() - started
    summary.images_per_s = summary.images / summary.seconds if summary.seconds else None
    _steady(summary, totals)
    return summary


def _run(classifier, samples, shards: list[Shard], work: Path, summary: PredictSummary, providers,
         options: FeatureOptions, progress: bool, engine: str, engine_options) -> list[dict[str, Any]]:
    """The images through the engine's workers (decode, crop) into the feature cache's
    sinks (batches, the classifier in ONNX Runtime, shard files in ``work``); returns the
    sinks' totals."""
    from augkit.engines import get_engine
    from augkit.stages.features.assemble import FeatureSinks
    from augkit.stages.features.task import FeatureTask

    if not samples:
        return []
    task = FeatureTask(None, classifier.preprocessing, options)
    sinks = FeatureSinks(classifier, str(work), "float32", summary.batch_size, summary.threads,
                         len(classifier.classes), classifier.preprocessing.input_size, providers)
    groups = [(s, [(x.path, x.key, x.label) for x in samples[s.start:s.stop]]) for s in shards]
    with get_engine(engine, workers=summary.workers, preload=(FeatureTask.__module__,),
                    **(engine_options or {})) as runner:
        with progress_bar(len(samples), unit="image", desc="predict", enabled=progress) as bar:
            return runner.feed(task, groups, sinks, bar.update)


def _steady(summary: PredictSummary, totals: list[dict[str, Any]]) -> None:
    """Images/s from the first batch done to the last (wall clock: Ray's sinks are other processes)."""
    done = [t for t in totals if t["t_first"] is not None]
    if done:
        first = min(done, key=lambda t: t["t_first"])
        last = max(t["t_last"] for t in done)
        if last > first["t_first"]:
            rows = sum(t["rows"] for t in totals)
            summary.steady_images_per_s = (rows - first["rows_first"]) / (last - first["t_first"])


def _plot(plot: Path, summary: PredictSummary) -> None:
    import numpy as np

    matrix = np.array(summary.metrics["confusion"]["matrix"], np.int64)
    title = f"accuracy {summary.metrics['accuracy']:.3f} ({summary.labelled} images)"
    picture = metrics.picture(matrix, summary.metrics["confusion"]["classes"], title, by="predict")
    write_atomic(plot, lambda f: f.write(picture))
    summary.plot = str(plot)


def _source(src, split: str | None):
    """The samples of a folder or manifest (:func:`discover`), or of one image file."""
    from augkit.input.discovery import Dataset, Sample, discover
    from augkit.input.suffixes import IMAGE_SUFFIXES

    path = Path(src)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        if split is not None:
            raise UsageError(f"--split {split} selects rows of a split manifest, but {src} is one image")
        return Dataset(path.parent, [Sample(str(path), path.name, None)], "image")
    return discover(src, split=split, for_training=False, held_out=True)


def _header(k: int) -> list[str]:
    return ["path", "label", "status", *[f"{w}_{i}" for i in range(1, k + 1) for w in ("class", "prob")], "reason",
            "message"]


def _is_ours(path: Path) -> bool:
    """A CSV ``predict`` wrote: it starts with predict's header."""
    try:
        with open(path, encoding="utf-8", errors=TEXT_ERRORS) as f:
            first = f.readline()
    except OSError:
        return False
    return first.startswith(",".join(_header(1)[:4]))


def _our_picture(path: Path) -> bool:
    """A confusion picture ``predict`` drew ("": one marked before marks named the command)."""
    from augkit.input.encoding import written_by

    return written_by(path) in ("predict", "")


def _check_outputs(out: Path, plot: Path | None, overwrite: bool, dataset) -> None:
    """A CSV or picture of the user's is never replaced, unless ``overwrite``: only what an
    earlier ``predict`` wrote; nor, overwrite or not, one of the source's images
    (:func:`augkit.core.files.check_output_file`)."""
    if out.suffix.lower() != ".csv":
        raise UsageError(f"-o {out}: predictions are a CSV; give a file name ending in .csv")
    if not out.is_dir() and not out.parent.is_dir():
        raise UsageError(f"-o {out}: the folder {out.parent} does not exist; create it first")
    check_output_file(out, option="-o", what="a CSV augkit predict wrote", ours=_is_ours, overwrite=overwrite,
                      inside_source=dataset.holds, source=str(dataset.root))
    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise UsageError(f"--plot {plot}: the picture is a PNG; give a file name ending in .png")
        check_output_file(plot, option="--plot", what="a picture augkit predict drew", ours=_our_picture,
                          overwrite=overwrite, inside_source=dataset.holds, source=str(dataset.root))


def _sweep_work_folders(out: Path) -> None:
    """Work folders of earlier runs into the same CSV whose process is gone (killed)."""
    from augkit.core.processes import gone

    for folder in out.parent.glob(f".{out.name}{_WORK}*"):
        pid = folder.name[len(f".{out.name}{_WORK}"):].split("-")[0]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and gone(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _join(work: Path, shards: list[Shard], samples, classes, out: Path, summary: PredictSummary) -> None:
    """The CSV from the work folder's shards, in the source's order, and the counts and
    metrics on the way (nothing holds every row at once)."""
    import numpy as np

    k = summary.top_k
    index = {name: i for i, name in enumerate(classes)}
    pairs: list[tuple[str, int]] = []  # (label, predicted class) of labelled images

    def write(f) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", errors=TEXT_ERRORS, newline="")
        writer = CsvWriter(text)
        writer.writerow(_header(k))
        for shard in shards:
            record = json.loads((work / shard.json).read_text(encoding="utf-8"))
            probs = np.load(work / shard.npy)
            done = {row[0]: r for r, row in enumerate(record["rows"])}
            failed = {key: (reason, message) for key, reason, message in record["failures"]}
            for sample in samples[shard.start:shard.stop]:
                if sample.key in failed:
                    summary.failures[failed[sample.key][0]] = summary.failures.get(failed[sample.key][0], 0) + 1
                    writer.writerow([sample.key, sample.label or "", "failed", *[""] * (2 * k), *failed[sample.key]])
                    continue
                p = probs[done[sample.key]]
                order = np.argsort(-p, kind="stable")[:k]
                writer.writerow([sample.key, sample.label or "", "ok",
                                 *[v for i in order for v in (classes[i], f"{p[i]:.6f}")], "", ""])
                if sample.label is not None:
                    pairs.append((sample.label, int(order[0])))
        text.flush()
        text.detach()

    write_atomic(out, write)
    summary.failed_images = sum(summary.failures.values())
    summary.predicted = summary.images - summary.failed_images
    summary.labelled = len(pairs)
    summary.failures = dict(sorted(summary.failures.items()))
    if pairs:
        summary.unknown_labels = sorted({label for label, _ in pairs if label not in index})
        names = list(classes) + summary.unknown_labels
        position = {name: i for i, name in enumerate(names)}
        matrix = metrics.confusion([position[label] for label, _ in pairs], [p for _, p in pairs], len(names))
        summary.metrics = metrics.report(matrix, names)
