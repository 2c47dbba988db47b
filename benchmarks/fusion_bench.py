#!/usr/bin/env python
"""One warp for the geometric chain (a recipe's ``fuse_geometry: true``) against the
unfused pipeline: time per image and how far the pixels move, in one process, one thread.

For every recipe, on the same decoded photos (``--photos``, default
/work/photos/hymenoptera_data; those with a shorter side of at least 300 px), alternating
``--repeats`` times: ``recipe.for_image(image)`` then ``--copies`` copies, as augment
does, unfused and fused. It checks on every copy that both drew the same values (the
applied parameters of every transform, as a preview captions them) and reports the
median milliseconds per image of each (best repeat), the ratio, and the mean absolute
difference per output in grey levels (median / p95 / max over the outputs).

Recipes: ``standard`` (recipes/standard.yaml: the run after the leading shrink is
RandomCrop, HorizontalFlip, Affine), ``rotate first`` (Rotate the whole image, flip, crop,
resize: four resamplings unfused), ``shift-scale-rotate`` (SmallestMaxSize, then
ShiftScaleRotate of the whole image before a centre crop) and ``gentle``
(recipes/gentle.yaml: Resize, then an Affine with a reflected border: one run of two).

    python benchmarks/fusion_bench.py [--photos DIR] [--limit 150] [--repeats 5] [--copies 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parent.parent

RECIPES = {
    "standard": ROOT / "recipes" / "standard.yaml",
    "rotate first": [{"Rotate": {"limit": 20, "p": 0.7}}, {"HorizontalFlip": {"p": 0.5}},
                     {"RandomCrop": {"height": 280, "width": 280}}, {"Resize": {"height": 224, "width": 224}},
                     {"RGBShift": {"p": 0.3}}],
    "shift-scale-rotate": [{"SmallestMaxSize": {"max_size": 256}}, {"ShiftScaleRotate": {"p": 0.8}},
                           {"CenterCrop": {"height": 224, "width": 224}}, {"HorizontalFlip": {"p": 0.5}}],
    "gentle": ROOT / "recipes" / "gentle.yaml",
}


def _load(spec, fuse: bool):
    import yaml

    from augkit.recipes import load_recipe

    data = yaml.safe_load(Path(spec).read_text()) if isinstance(spec, Path) else {"transforms": spec}
    return load_recipe({**data, "fuse_geometry": fuse})


def _same(a, b) -> bool:
    import numpy as np

    if [n for n, _ in a] != [n for n, _ in b]:
        return False
    return all(pa.keys() == pb.keys() and all(
        np.array_equal(pa[k], pb[k]) if isinstance(pa[k], np.ndarray) else pa[k] == pb[k] for k in pa)
        for (_, pa), (_, pb) in zip(a, b))


def measure(name: str, spec, images: list, copies: int, repeats: int) -> dict:
    import numpy as np

    plain, fused = _load(spec, False), _load(spec, True)
    times: dict[str, list[float]] = {"unfused": [], "fused": []}
    for _ in range(repeats):
        for label, recipe in (("unfused", plain), ("fused", fused)):
            started = time.perf_counter()
            for i, image in enumerate(images):
                augment = recipe.for_image(image)
                for k in range(copies):
                    augment(copies * i + k)
            times[label].append(1000 * (time.perf_counter() - started) / len(images))
    differences, identical = [], True
    for i, image in enumerate(images):
        for k in range(copies):
            a, applied_a = plain.trace(image, seed=copies * i + k)
            b, applied_b = fused.trace(image, seed=copies * i + k)
            identical &= _same(applied_a, applied_b) and a.shape == b.shape
            differences.append(float(np.abs(a.astype(np.int16) - b).mean()))
    ordered = sorted(differences)
    return {"name": name, "unfused_ms": min(times["unfused"]), "fused_ms": min(times["fused"]),
            "same_draws": identical, "diff_median": statistics.median(ordered),
            "diff_p95": ordered[int(0.95 * (len(ordered) - 1))], "diff_max": ordered[-1]}


def main(argv: list[str] | None = None) -> int:
    import cv2

    from augkit.input.decoding import decode_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("/work/photos/hymenoptera_data"))
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    paths = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    images = [im for im in (decode_image(p) for p in paths) if min(im.shape[:2]) >= 300][: args.limit]
    print(f"{len(images)} photos from {args.photos} (shorter side >= 300), {args.copies} copies each, "
          f"best of {args.repeats} passes, one thread")
    print(f"{'recipe':<22}{'unfused ms':>11}{'fused ms':>10}{'speed-up':>10}  {'same draws':>10}  "
          f"{'mean |diff| median / p95 / max':>32}")
    for name, spec in RECIPES.items():
        r = measure(name, spec, images, args.copies, args.repeats)
        print(f"{name:<22}{r['unfused_ms']:>11.3f}{r['fused_ms']:>10.3f}{r['unfused_ms'] / r['fused_ms']:>9.2f}x  "
              f"{'yes' if r['same_draws'] else 'NO':>10}  "
              f"{r['diff_median']:>12.3f} / {r['diff_p95']:.3f} / {r['diff_max']:.3f}")
    print("(ms per image: for_image + the copies; differences in grey levels per output)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
