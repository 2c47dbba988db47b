#!/usr/bin/env python
"""Benchmark: augkit's ``PCAColor`` in each mode against albumentations 2.0.8 ``FancyPCA``.

What it does, in one run, in one process, on one thread (OpenCV, OpenMP and BLAS at 1):

1. Builds N (default 200) RGB uint8 images of 500x375 in memory from the 20 photos of
   ``sample_data/`` (seeded random crops of 60-100 % of each side, random mirror, resized
   with INTER_AREA), and a ``stats.json`` of ``sample_data`` with ``augkit stats`` for the
   ``dataset`` mode.
2. Builds each transform with ``p=1`` and sigma/alpha 0.1, and checks that PCAColor's output
   equals the formula written in NumPy for the alpha it drew (the tests do this in depth).
3. Measures, alternating, ``--repeats`` rounds (default 5): in each round every
   configuration transforms the images through its albumentations call
   (``t(image=img)["image"]``, the same entry point for all), FancyPCA on the first
   ``--fancy-images`` images (default 30, it is ~500x slower). Throughput is images/s per
   round; the claim is the median over rounds of the ratio to FancyPCA *in the same round*,
   so a neighbour's load affects both sides of a ratio alike. The goal: >= 50x in every mode.
   Configurations:
   - ``FancyPCA``: ``A.FancyPCA(alpha=0.1, p=1)``, the reference.
   - ``numpy-image``: the AlexNet formula with the image's own PCA written plainly in NumPy
     (float64 copy, np.cov, eigh, add, rint, clip): what a direct implementation costs.
   - ``PCAColor-imagenet`` / ``-dataset`` / ``-image``: augkit, ``sigma=0.1``.
4. Prints the size of the change each makes (mean |output - input| per channel value, in
   0-255 levels, and the RMS per-channel offset ``255 * sigma * sqrt(sum(eigvals^2) / 3)``
   where it applies), then the table, ratios and goal check; ``--json`` saves the figures.
   The exit code is 0 whatever the figures: this is a measurement.

Usage:  python benchmarks/pca_bench.py [--images 200] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy loads its BLAS
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
GOAL = 50.0
SIGMA = 0.1
SIZE = (500, 375)  # width, height


def build_images(n: int, seed: int = 0) -> list[np.ndarray]:
    from augkit.input.decoding import decode_image
    from augkit.input.discovery import discover

    photos = [decode_image(s.path) for s in discover(SAMPLES).samples]
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = photo[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        images.append(np.ascontiguousarray(cv2.resize(np.ascontiguousarray(crop), SIZE, interpolation=cv2.INTER_AREA)))
    return images


def numpy_image_pca(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The formula, plainly: float64 copy, covariance, eigh, offset, round, clip."""
    x = image.astype(np.float64) / 255.0
    eigvals, eigvecs = np.linalg.eigh(np.cov(x.reshape(-1, 3).T, bias=True))
    offset = eigvecs[:, ::-1] @ (alpha * eigvals[::-1])
    return (np.clip(np.rint((x + offset) * 255.0), 0, 255)).astype(np.uint8)


class NumpyImagePCA:
    def __init__(self, sigma: float):
        self.sigma, self.rng = sigma, np.random.default_rng(0)

    def __call__(self, image):
        return {"image": numpy_image_pca(image, self.rng.normal(0, self.sigma, 3))}


def check_formula(transforms: dict, images: list[np.ndarray]) -> None:
    """PCAColor's output must equal the formula for the alpha it drew."""
    from augkit.recipes.pca_color import image_pca

    for name, t in transforms.items():
        if not name.startswith("PCAColor"):
            continue
        for image in images[:5]:
            alpha = t.get_params_dependent_on_data({}, {"image": image})["alpha"]
            eigvals, eigvecs = t._eig if t._eig is not None else image_pca(image)
            expected = np.clip(np.rint(image + eigvecs @ (alpha * eigvals) * 255.0), 0, 255).astype(np.uint8)
            if not np.array_equal(t.apply(image, alpha=alpha), expected):
                sys.exit(f"{name}: output differs from the formula")


def change_sizes(transforms: dict, images: list[np.ndarray], eigvals_by_mode: dict) -> dict:
    out = {}
    for name, t in transforms.items():
        diffs = [np.abs(t(image=img)["image"].astype(np.int16) - img).mean() for img in images[:30]]
        out[name] = {"mean_abs_change": float(np.mean(diffs))}
        if name in eigvals_by_mode:
            rms = [255 * SIGMA * np.sqrt(np.sum(np.square(v)) / 3) for v in eigvals_by_mode[name]]
            out[name]["rms_offset"] = float(np.median(rms))
    return out


def time_round(t, images: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for image in images:
        t(image=image)["image"]
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--fancy-images", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    from augkit.core._albu import albumentations
    from augkit.recipes.pca_color import IMAGENET_EIGVALS, PCAColor, image_pca
    from augkit.core.files import write_json_atomic
    from augkit.stages.stats import compute_stats

    A = albumentations()
    images = build_images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        stats = compute_stats(SAMPLES, workers=0)
        write_json_atomic(stats_path, stats)
        transforms = {
            "FancyPCA": A.FancyPCA(alpha=SIGMA, p=1.0),
            "numpy-image": NumpyImagePCA(SIGMA),
            "PCAColor-imagenet": PCAColor(sigma=SIGMA, source="imagenet", p=1.0),
            "PCAColor-dataset": PCAColor(sigma=SIGMA, source="dataset", stats=str(stats_path), p=1.0),
            "PCAColor-image": PCAColor(sigma=SIGMA, source="image", p=1.0),
        }
    for t in transforms.values():
        if hasattr(t, "set_random_seed"):
            t.set_random_seed(0)
    check_formula(transforms, images)
    sizes = change_sizes(transforms, images, {
        "PCAColor-imagenet": [IMAGENET_EIGVALS],
        "PCAColor-dataset": [np.array(stats["pca"]["eigenvalues"])],
        "PCAColor-image": [image_pca(img)[0] for img in images],
    })

    fancy_images = images[: args.fancy_images]
    rates: dict[str, list[float]] = {name: [] for name in transforms}
    for name, t in transforms.items():  # warm-up: first calls, caches
        time_round(t, images[:3])
    for _ in range(args.repeats):
        for name, t in transforms.items():
            slow = name in ("FancyPCA", "numpy-image")
            rates[name].append(time_round(t, fancy_images if slow else images))
    ratios = {name: [r / f for r, f in zip(rates[name], rates["FancyPCA"])] for name in transforms}

    print(f"PCAColor vs albumentations FancyPCA, {len(images)} RGB uint8 images of {SIZE[0]}x{SIZE[1]} "
          f"(FancyPCA and numpy-image on {len(fancy_images)}), one thread, {args.repeats} alternating rounds, sigma {SIGMA}")
    print(f"{'config':<20}{'images/s (median)':>19}{'min-max':>20}{'x FancyPCA':>12}{'mean |change|':>15}{'RMS offset':>12}")
    for name in transforms:
        r = rates[name]
        rms = sizes[name].get("rms_offset")
        print(f"{name:<20}{statistics.median(r):>19.1f}{f'{min(r):.1f}-{max(r):.1f}':>20}"
              f"{statistics.median(ratios[name]):>11.1f}x{sizes[name]['mean_abs_change']:>15.2f}"
              f"{'' if rms is None else f'{rms:.2f}':>12}")
    worst = min(statistics.median(ratios[n]) for n in transforms if n.startswith("PCAColor"))
    print(f"goal >= {GOAL:.0f}x FancyPCA in every mode: {'met' if worst >= GOAL else 'NOT met'} (lowest {worst:.1f}x)")
    print("mean |change| and RMS offset are per channel value, in 0-255 levels (RMS offset of the image mode: median over images)")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                        "cores": os.cpu_count(), "albumentations": metadata.version("albumentations"),
                        "opencv": cv2.__version__, "numpy": np.__version__},
            "images": len(images), "fancy_images": len(fancy_images), "repeats": args.repeats,
            "rates": rates, "ratios": ratios, "sizes": sizes,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
