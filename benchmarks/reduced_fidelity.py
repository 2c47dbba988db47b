#!/usr/bin/env python
"""How far a reduced decode (a JPEG decoded at 1/2, 1/4 or 1/8, then resized the rest of
the way) is from the exact path (decoded whole, then resized), and what it saves.

For every photo of each set and each first resize a command may do, in one process, one
thread:

- ``exact``: ``decode_image(path)`` then the resize;
- ``reduced``: ``decode_image(path, size_hint=...)`` (the scale ``augkit.input.reduced``
  picks) then the same resize;
- ``reference``: the whole image shrunk by an antialiased filter (OpenCV's INTER_AREA, or
  for the crop rule the rule itself, which is Pillow's antialiased bilinear): what a
  resize should give.

It prints, per set and resize, the scales used, the mean absolute difference per image in
grey levels (median, 95th percentile and maximum over the images that were reduced) of
reduced against exact, and of each against the reference, and the median milliseconds
per image (all of them) of decode + resize for both paths.

The resizes: the standard recipe's first step, ``SmallestMaxSize(256)`` with
albumentations' default INTER_LINEAR (which samples rather than averages when it shrinks
more than 2x: the exact path aliases) and with ``interpolation: area``; the feature
cache's crop rule (shorter side 256, centre 224, Pillow's antialiased bilinear); and
flow's ``size=(224, 224)`` without a recipe (the whole image stretched, the same filter).

Sets: ``--photos`` (default /work/photos/hymenoptera_data: 397 photos, median 500x375,
so their targets are halved, shorter side 128 / crop 112 of 128, to be reduced at all)
and the 12-megapixel set of ``photo_set.py`` (``--large N`` images, default 60).

    python benchmarks/reduced_fidelity.py [--photos DIR] [--large 60] [--limit N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def resizes(short: int, crop: int):
    """name -> (size hint, function image -> resized image), for a target shorter side ``short``."""
    import cv2

    from augkit.input.reduced import SizeHint
    from augkit.recipes import load_recipe
    from augkit.recipes.size_hint import size_hint
    from augkit.stages.preprocess import Preprocessing, crop_to_input, resize

    linear = load_recipe({"transforms": [{"SmallestMaxSize": {"max_size": short}}]})
    area = load_recipe({"transforms": [{"SmallestMaxSize": {"max_size": short, "interpolation": "area"}}]})
    prep = Preprocessing(crop, short, (0.0, 1.0), (0.0,) * 3, (1.0,) * 3, "RGB", "NHWC")

    def area_like(image, shape):
        return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)

    return {
        f"SmallestMaxSize({short}) linear": (size_hint(linear), lambda im: linear(im, seed=0), area_like),
        f"SmallestMaxSize({short}) area": (size_hint(area), lambda im: area(im, seed=0), area_like),
        f"crop rule {crop} of {short} (Pillow)": (SizeHint(shorter=short), lambda im: crop_to_input(im, prep), None),
        f"flow size=({crop}, {crop})": (SizeHint(height=crop, width=crop), lambda im: resize(im, (crop, crop)), None),
    }


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


def measure(paths: list[Path], short: int, crop: int, repeats: int) -> dict:
    from augkit.input.decoding import decode_image, decode_image_with_info

    results = {}
    for name, (hint, apply, reference) in resizes(short, crop).items():
        rows = {"reduced_vs_exact": [], "exact_vs_reference": [], "reduced_vs_reference": [], "scales": {},
                "exact_ms": [], "reduced_ms": []}
        for path in paths:
            exact_times, reduced_times = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                whole = decode_image(path)
                exact = apply(whole)
                t1 = time.perf_counter()
                small, info = decode_image_with_info(path, size_hint=hint)
                reduced = apply(small)
                t2 = time.perf_counter()
                exact_times.append(t1 - t0)
                reduced_times.append(t2 - t1)
            rows["exact_ms"].append(1000 * min(exact_times))
            rows["reduced_ms"].append(1000 * min(reduced_times))
            rows["scales"][info.scale] = rows["scales"].get(info.scale, 0) + 1
            assert exact.shape == reduced.shape, (path, exact.shape, reduced.shape)
            if info.scale == 1:
                continue  # the same pixels: the differences are of the images that were reduced
            rows["reduced_vs_exact"].append(_mad(reduced, exact))
            if reference is not None:
                ref = reference(whole, exact.shape)
                rows["exact_vs_reference"].append(_mad(exact, ref))
                rows["reduced_vs_reference"].append(_mad(reduced, ref))
        results[name] = rows
    return results


def _summary(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"{statistics.median(ordered):.2f} / {p95:.2f} / {ordered[-1]:.2f}"


def report(title: str, results: dict) -> None:
    print(f"\n{title}")
    print(f"{'resize':<34}{'scales':>18}  {'reduced vs exact':>20}  {'exact vs ref':>20}  {'reduced vs ref':>20}"
          f"  {'ms exact':>9}  {'ms reduced':>10}")
    for name, rows in results.items():
        scales = ", ".join(f"1/{s}: {n}" for s, n in sorted(rows["scales"].items()))
        print(f"{name:<34}{scales:>18}  {_summary(rows['reduced_vs_exact']):>20}  "
              f"{_summary(rows['exact_vs_reference']):>20}  {_summary(rows['reduced_vs_reference']):>20}  "
              f"{statistics.median(rows['exact_ms']):>9.2f}  {statistics.median(rows['reduced_ms']):>10.2f}")
    print("(grey levels, mean |difference| per image: median / p95 / max over the images reduced; ref: the whole "
          "image shrunk by INTER_AREA; ms: decode + resize, median over all the images of the best of the repeats)")


def main(argv: list[str] | None = None) -> int:
    import cv2

    from photo_set import DEFAULT_PHOTOS, build_photo_set

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--large", type=int, default=60, help="images of the 12-megapixel set (0: none)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many of --photos (0: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    saved = {}
    if args.photos.is_dir():
        paths = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[: args.limit or None]
        saved["photos"] = measure(paths, 128, 112, args.repeats)
        report(f"{len(paths)} real photos from {args.photos} (targets halved: shorter side 128)", saved["photos"])
    if args.large:
        folder, stats = build_photo_set(args.large)
        paths = sorted(folder.rglob("*.jpg"))
        saved["photos12"] = measure(paths, 256, 224, args.repeats)
        report(f"{len(paths)} 12-megapixel photos ({stats['mean_mb']} MB each on average)", saved["photos12"])
    if args.json:
        args.json.write_text(json.dumps(saved, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
