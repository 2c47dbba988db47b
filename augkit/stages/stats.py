"""Dataset statistics in one streaming pass: counts, sizes, bad files, mean/std and RGB PCA.

Stages: discovery (parent) -> decode and reduce each image to exact integer sums
(:class:`StatsTask`, engine workers) -> add the sums up (parent, :class:`Totals`) ->
``stats.json``. Memory is constant whatever the dataset's size: an image contributes its
pixel count, 3 channel sums, 6 sums of products, 3x256 histogram bins and its size, all
integers, so the result does not depend on worker count or order and is *exact*: mean,
std and covariance are computed once at the end, in float64, from the integer totals.

Conventions (what a training script expects):
- channels in RGB order; values on the 0-1 scale (pixel / 255);
- ``std`` is the population standard deviation over all pixels of all images (not the
  average of per-image standard deviations);
- ``pca``: eigenvalues (descending) and eigenvectors of the 3x3 covariance of all pixel
  values on the 0-1 scale, i.e. variances along the principal axes, as ``PCAColor``
  reads them; ``eigenvectors[i]`` belongs to ``eigenvalues[i]``, signed so that its
  largest component is positive.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from augkit.core.errors import UsageError
from augkit.core.files import check_output_file
from augkit.core.progress import progress_bar
from augkit.core.rgb_pca import Moments, covariance, pixel_moments, principal_components
from augkit.core.words import plural

CHANNELS = ("R", "G", "B")
SIZE_PAIRS_KEPT = 10_000  # distinct (width, height) pairs kept; beyond, sizes are binned coarser
SIZE_PAIRS_LISTED = 1_000  # most common pairs written to stats.json
WRITTEN_BY = "augkit stats"  # stats.json's first key, "written_by": a rerun may replace the file
# What every stats.json held before it carried WRITTEN_BY: such a file is augkit's too.
_KEYS_BEFORE_THE_MARK = frozenset({"source", "images", "classes", "analyzed", "ok", "failed", "failures", "mean", "std"})
_LARGEST_STATS_FILE = 64 << 20  # a larger file is not one stats wrote (it is not read to find out)
IN_PROCESS_BELOW = 1000  # with workers unset, fewer images are read in this process: below
# it, a pool's start costs more than the decodes it would share (benchmarks/RESULTS.md,
# "Figures behind code comments")


# --- the per-image reductions --------------------------------------------------------------


def histograms(planes: list[np.ndarray]) -> np.ndarray:
    """(3, 256) int64 counts per channel value."""
    out = np.empty((3, 256), np.int64)
    for c, plane in enumerate(planes):
        if plane.size < 1 << 24:  # calcHist counts in float32: exact below 2**24
            out[c] = cv2.calcHist([plane], [0], None, [256], [0, 256]).ravel()
        else:
            out[c] = np.bincount(plane.ravel(), minlength=256)
    return out


# --- the per-image task (workers) ---------------------------------------------------------


@dataclass(frozen=True)
class ImageStats:
    width: int
    height: int
    moments: Moments
    histograms: np.ndarray  # (3, 256) int64


class StatsTask:
    """Per image path: decode, then reduce to an :class:`ImageStats`, or a failure dict
    ``{"reason", "message"}`` (a bad file is data, not an exception)."""

    def __init__(self, max_pixels: int | None = None):
        self.max_pixels = max_pixels

    def __call__(self, path: str) -> ImageStats | dict[str, str]:
        from augkit.input.decoding import DecodeError, decode_image

        try:
            image = decode_image(path, max_pixels=self.max_pixels)
        except DecodeError as exc:
            return {"reason": exc.reason, "message": str(exc)}
        planes = cv2.split(image)
        return ImageStats(image.shape[1], image.shape[0], pixel_moments(image, planes), histograms(planes))


# --- adding up (parent) -------------------------------------------------------------------


@dataclass
class Totals:
    """Everything the images contribute, in memory bounded by the number of distinct sizes."""

    images: int = 0
    moments: Moments = Moments(0, (0, 0, 0), ((0, 0, 0),) * 3)
    histograms: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), np.int64))
    widths: Counter = field(default_factory=Counter)
    heights: Counter = field(default_factory=Counter)
    pairs: Counter = field(default_factory=Counter)  # (width, height) rounded down to size_step -> images
    size_step: int = 1  # doubles while there are too many distinct pairs (then it is the
    # smallest step at which all of them fit, whatever the order the images came in)
    orientation: Counter = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)

    def add(self, s: ImageStats) -> None:
        self.images += 1
        self.moments = self.moments + s.moments
        self.histograms += s.histograms
        self.widths[s.width] += 1
        self.heights[s.height] += 1
        self.orientation["landscape" if s.width > s.height else "portrait" if s.height > s.width else "square"] += 1
        step = self.size_step
        self.pairs[(s.width // step * step, s.height // step * step)] += 1
        while len(self.pairs) > SIZE_PAIRS_KEPT:
            step = self.size_step = self.size_step * 2
            binned: Counter = Counter()
            for (w, h), n in self.pairs.items():
                binned[(w // step * step, h // step * step)] += n
            self.pairs = binned


def _quantiles(counts: Counter) -> dict[str, float] | None:
    """min, 5th percentile, median, 95th percentile, max and mean of a histogram (exact)."""
    if not counts:
        return None
    values = sorted(counts)
    total = sum(counts.values())

    def at(q: float) -> float:  # nearest rank
        rank, seen = max(1, int(np.ceil(q * total))), 0
        for v in values:
            seen += counts[v]
            if seen >= rank:
                return v
        return values[-1]

    mean = sum(v * c for v, c in counts.items()) / total
    return {"min": values[0], "p5": at(0.05), "median": at(0.5), "p95": at(0.95), "max": values[-1], "mean": round(mean, 2)}


def summarize(totals: Totals) -> dict[str, Any]:
    """The pixel and size part of stats.json."""
    m = totals.moments
    out: dict[str, Any] = {"pixels": m.n}
    if m.n:
        cov = covariance(m)
        eigvals, eigvecs = principal_components(cov)
        out["mean"] = [s / (m.n * 255) for s in m.sums]
        out["std"] = [float(np.sqrt(max(cov[i, i], 0.0))) for i in range(3)]
        out["covariance"] = cov.tolist()
        out["pca"] = {"eigenvalues": eigvals.tolist(), "eigenvectors": eigvecs.T.tolist(),
                      "explained_variance_ratio": (eigvals / eigvals.sum() if eigvals.sum() else eigvals).tolist()}
    else:
        out.update(mean=None, std=None, covariance=None, pca=None)
    out["histograms"] = {c: totals.histograms[i].tolist() for i, c in enumerate(CHANNELS)}
    pairs = sorted(totals.pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    out["sizes"] = {
        "width": _quantiles(totals.widths),
        "height": _quantiles(totals.heights),
        "orientation": {k: totals.orientation[k] for k in ("landscape", "portrait", "square")},
        "distinct": len(pairs),  # with size_step 1, the number of distinct sizes
        "size_step": totals.size_step,  # counts are of sizes rounded down to a multiple of this
        "counts": [[w, h, n] for (w, h), n in pairs[:SIZE_PAIRS_LISTED]],
        "counts_complete": len(pairs) <= SIZE_PAIRS_LISTED,
    }
    return out


# --- the run ------------------------------------------------------------------------------


def choose_sample(samples: list, n: int | None, seed: int) -> list:
    """A deterministic subset of ``n`` samples: ordered by a hash of (seed, key), so the
    same seed picks the same images, and adding images to the dataset rarely changes
    which of the old ones are picked. Returned in key order."""
    if n is None or n >= len(samples):
        return list(samples)
    from augkit.core.seeds import derive_seed

    picked = sorted(samples, key=lambda s: derive_seed(seed, "stats-sample", s.key))[:n]
    return sorted(picked, key=lambda s: s.key)


def compute_stats(src, *, split: str | None = None, sample: int | None = None, seed: int = 0,
                  workers: int | None = None, max_pixels: int | None = None, progress: bool = False,
                  engine: str = "local", engine_options: dict[str, Any] | None = None,
                  check: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Stream over the dataset once; returns the stats.json content. Raises UsageError.
    ``check(dataset)`` runs before the pass (the CLI refuses its outputs there: :func:`check_outputs`)."""
    from augkit.input.discovery import discover
    from augkit.engines import get_engine
    from augkit.engines.contract import failure_of

    from augkit.input.decoding import resolve_max_pixels

    if sample is not None and sample < 1:
        raise UsageError(f"--sample {sample}: give a number of images >= 1, or leave it out for all")
    resolve_max_pixels(max_pixels)  # a bad AUGKIT_MAX_IMAGE_PIXELS: one usage error, not a row per image
    dataset = discover(src, split=split, for_training=False)
    if check is not None:
        check(dataset)
    chosen = choose_sample(dataset.samples, sample, seed)
    if workers is None and len(chosen) < IN_PROCESS_BELOW:
        workers = 0  # starting a pool costs more than these decodes (Ray: 0 is its default)
    totals = Totals()
    bar = progress_bar(len(chosen), unit="img", desc="stats", enabled=progress)
    with get_engine(engine, workers=workers, preload=(__name__,), **(engine_options or {})) as runner:
        try:
            for outcome in runner.map_unordered(StatsTask(max_pixels), [s.path for s in chosen]):
                key = chosen[outcome.index].key
                value = outcome.value
                if outcome.error is not None:
                    value = failure_of(outcome, key)
                if isinstance(value, ImageStats):
                    totals.add(value)
                else:
                    totals.failures.append({"path": key, **value})
                bar.update(1)
        finally:
            bar.close()
    classes = Counter(s.label for s in dataset.samples if s.label is not None)
    failures = sorted(totals.failures, key=lambda f: f["path"])
    return {
        "written_by": WRITTEN_BY,
        "source": os.fspath(src),
        "split": split,
        "images": len(dataset.samples),
        "classes": dict(sorted(classes.items())),
        "unlabelled": sum(s.label is None for s in dataset.samples),
        "skipped_files": dict(sorted(dataset.skipped.items())),
        "sample": None if len(chosen) == len(dataset.samples) else {"images": len(chosen), "seed": seed},
        "analyzed": len(chosen),
        "ok": totals.images,
        "failed": len(failures),
        "failures_by_reason": dict(sorted(Counter(f["reason"] for f in failures).items())),
        "failures": failures,
        **summarize(totals),
    }


def is_stats_file(path) -> bool:
    """A stats.json ``augkit stats`` wrote: marked, or holding the keys it held before the mark."""
    try:
        if os.path.getsize(path) > _LARGEST_STATS_FILE:
            return False
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("written_by") == WRITTEN_BY or _KEYS_BEFORE_THE_MARK <= data.keys())


def _our_plot(path) -> bool:
    from augkit.input.encoding import written_by

    return written_by(path) == "stats"


def check_outputs(output, plot, overwrite: bool, source: str) -> Callable[[Any], None]:
    """``compute_stats``'s ``check``: refuse, before the pass, a stats.json or a plot that
    would replace a file augkit stats did not write (unless ``overwrite``), or any image of
    the dataset (:func:`augkit.core.files.check_output_file`)."""
    if Path(output).suffix.lower() != ".json":
        raise UsageError(f"-o {output}: the statistics are JSON; give a file name ending in .json")
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the plot is a PNG; give a file name ending in .png")

    def check(dataset) -> None:
        check_output_file(output, option="-o", what="a stats.json augkit stats wrote", ours=is_stats_file,
                          overwrite=overwrite, inside_source=dataset.holds, source=source)
        if plot is not None:
            check_output_file(plot, option="--plot", what="a plot augkit stats drew", ours=_our_plot,
                              overwrite=overwrite, inside_source=dataset.holds, source=source)

    return check


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """A short human summary of a stats dict."""
    fmt = lambda xs: "(" + ", ".join(f"{x:.4f}" for x in xs) + ")"  # noqa: E731
    classes = stats["classes"]
    unreadable = (f" ({stats['failed']} unreadable{' in the sample' if stats['sample'] else ''}, listed below)"
                  if stats["failed"] else "")
    labels = plural(len(classes), 'class', 'classes') if classes or not stats["unlabelled"] else "no labels"
    lines = [f"{plural(stats['images'], 'image')}{unreadable}, {labels}"
             + (f" ({min(classes.values())}-{max(classes.values())} per class)" if classes else "")
             + (f", {stats['unlabelled']} unlabelled" if classes and stats["unlabelled"] else "")
             + (f"; analyzed a sample of {stats['analyzed']} (seed {stats['sample']['seed']})" if stats["sample"] else "")]
    sizes = stats["sizes"]
    if sizes["width"]:
        w, h = sizes["width"], sizes["height"]
        lines.append(f"sizes: median {w['median']}x{h['median']}, width {w['min']}-{w['max']}, height {h['min']}-{h['max']}, "
                     f"{sizes['distinct']} distinct")
    if stats["mean"] is not None:
        lines.append(f"mean {fmt(stats['mean'])}  std {fmt(stats['std'])}  (RGB, 0-1)")
        pca = stats["pca"]
        lines.append(f"PCA eigenvalues {fmt(pca['eigenvalues'])}, first component "
                     f"{100 * pca['explained_variance_ratio'][0]:.1f}% of the variance")
    if stats["failed"]:
        reasons = ", ".join(f"{n} {r}" for r, n in stats["failures_by_reason"].items())
        lines.append(f"{stats['failed']} bad files ({reasons})")
    return lines


IMBALANCE_RATIO = 3  # largest class over smallest past which `augkit stats` warns


def imbalance_warning(stats: dict[str, Any]) -> str | None:
    """One line when the largest class holds more than IMBALANCE_RATIO times the images of
    the smallest, with the fixes: ``augment --balance`` (to the largest class's count) or
    ``balance=True`` on the fly. None for a balanced enough dataset."""
    classes = stats["classes"]
    if len(classes) < 2:
        return None
    largest, smallest = max(classes, key=lambda c: (classes[c], c)), min(classes, key=lambda c: (classes[c], c))
    ratio = classes[largest] / classes[smallest]
    if ratio <= IMBALANCE_RATIO:
        return None
    split = f" --split {stats['split']}" if stats.get("split") else ""
    return (f"warning: classes are imbalanced: {largest} has {plural(classes[largest], 'image')}, {smallest} "
            f"{classes[smallest]} ({ratio:.1f}x); balance them with `augkit augment RECIPE {stats['source']} OUT"
            f"{split} --balance {classes[largest]}`, or on the fly with flow(..., balance=True) (stream --balance)")


# --- the plot -----------------------------------------------------------------------------

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK, _GRID, _ACCENT = (40, 40, 40), (220, 220, 220), (70, 110, 200)
_CHANNEL_COLOURS = ((215, 50, 50), (40, 160, 60), (50, 90, 215))  # RGB


def _text(img, s, x, y, scale=0.45, colour=_INK, right=False):
    if right:
        x -= cv2.getTextSize(s, _FONT, scale, 1)[0][0]
    cv2.putText(img, s, (int(x), int(y)), _FONT, scale, colour, 1, cv2.LINE_AA)


def plot_stats(stats: dict[str, Any], size: tuple[int, int] = (1320, 460)) -> np.ndarray:
    """An RGB uint8 figure of a stats dict: class balance, image sizes, channel histograms."""
    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    title = f"{stats['source']}: {plural(stats['images'], 'image')}, {plural(len(stats['classes']), 'class', 'classes')}"
    if stats["mean"] is not None:
        title += "   mean " + " ".join(f"{v:.3f}" for v in stats["mean"]) + "   std " + " ".join(f"{v:.3f}" for v in stats["std"])
    _text(img, title, 16, 26, 0.55)
    panel_w = width // 3
    boxes = [(i * panel_w + 20, 70, panel_w - 45, height - 120) for i in range(3)]
    _plot_classes(img, stats, boxes[0])
    _plot_sizes(img, stats, boxes[1])
    _plot_histograms(img, stats, boxes[2])
    return img


def _frame(img, box, title):
    x, y, w, h = box
    _text(img, title, x, y - 14, 0.5)
    cv2.rectangle(img, (x, y), (x + w, y + h), _GRID, 1)


def _plot_classes(img, stats, box):
    x, y, w, h = box
    classes = stats["classes"] or ({"(unlabelled)": stats["unlabelled"]} if stats["unlabelled"] else {})
    shown = list(classes.items())[:30]
    _frame(img, box, "images per class" + (f" (first 30 of {len(classes)})" if len(classes) > 30 else ""))
    if not shown:
        return
    row = h / len(shown)
    scale = min(0.45, row / 30)
    names = [name if len(name) <= 16 else name[:15] + "~" for name, _ in shown]
    left = x + 8 + max(cv2.getTextSize(n, _FONT, scale, 1)[0][0] for n in names)
    top = max(n for _, n in shown) or 1
    for i, ((_, n), name) in enumerate(zip(shown, names)):
        y0 = y + i * row
        bar = int(round((x + w - 45 - left) * n / top))
        cv2.rectangle(img, (left, int(y0 + row * 0.15)), (left + bar, int(y0 + row * 0.85)), _ACCENT, -1)
        _text(img, name, left - 4, y0 + row * 0.5 + 4, scale, right=True)
        _text(img, str(n), left + bar + 4, y0 + row * 0.5 + 4, scale)


def _plot_sizes(img, stats, box):
    x, y, w, h = box
    sizes = stats["sizes"]
    _frame(img, box, "image sizes (width x height)")
    if not sizes["counts"]:
        return
    top = max(max(sizes["width"]["max"], sizes["height"]["max"]), 1) * 1.05
    px = lambda v: int(x + w * v / top)  # noqa: E731
    py = lambda v: int(y + h - h * v / top)  # noqa: E731
    cv2.line(img, (px(0), py(0)), (px(top), py(top)), _GRID, 1, cv2.LINE_AA)  # square images
    most = max(n for *_, n in sizes["counts"])
    for wd, ht, n in reversed(sizes["counts"]):
        radius = 2 + int(8 * np.sqrt(n / most))
        cv2.circle(img, (px(wd), py(ht)), radius, _ACCENT, -1, cv2.LINE_AA)
    for tick in _ticks(top):  # the axes in pixels, at round values
        _text(img, f"{tick:g}", px(tick), y + h + 16, 0.4, right=tick > 0)
        _text(img, f"{tick:g}", x - 4, py(tick) + 4, 0.4, right=True)
        cv2.line(img, (px(tick), y + h), (px(tick), y + h + 4), _INK, 1)
        cv2.line(img, (x - 3, py(tick)), (x, py(tick)), _INK, 1)
    _text(img, "width (px)", x + w, y + h + 32, 0.4, right=True)
    _text(img, "height (px)", x + 6, y + 16, 0.4)
    _text(img, f"median {sizes['width']['median']}x{sizes['height']['median']}", x + w - 6, y + h - 10, right=True)


def _plot_histograms(img, stats, box):
    x, y, w, h = box
    _frame(img, box, "channel histograms (0-255)")
    hist = np.array([stats["histograms"][c] for c in CHANNELS], np.float64)
    if not hist.sum():
        return
    top = np.percentile(hist, 99) * 1.15 or hist.max()  # a spike at 0 or 255 must not flatten the rest
    xs = x + np.arange(256) * w / 255
    for c in range(3):
        ys = y + h - h * np.minimum(hist[c] / top, 1.0)
        points = np.stack([xs, ys], axis=1).round().astype(np.int32)
        cv2.polylines(img, [points], False, _CHANNEL_COLOURS[c], 1, cv2.LINE_AA)
        if stats["mean"] is not None:
            mx = int(x + stats["mean"][c] * w)
            cv2.line(img, (mx, y + h), (mx, y + h + 8), _CHANNEL_COLOURS[c], 2)
    for value in (0, 64, 128, 192, 255):
        _text(img, str(value), x + value * w / 255, y + h + 22, 0.4, right=value == 255)
    share = top / hist.sum(axis=1).max() * 100  # the y axis: % of a channel's pixels per level
    for tick in _ticks(share):
        ty = int(y + h - h * tick / share)
        cv2.line(img, (x - 3, ty), (x, ty), _INK, 1)
        _text(img, f"{tick:g}%", x - 4, ty + 4, 0.4, right=True)


def _ticks(top: float, most: int = 5) -> list[float]:
    """Round axis values from 0 up to ``top`` (steps of 1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return [0.0]
    raw = top / most
    power = 10 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [float(round(k * step, 10)) for k in range(int(top // step) + 1)]
