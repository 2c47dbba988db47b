#!/usr/bin/env python
"""Benchmark: how faithful, and how costly, is each way to make a backbone's 224x224 input?

The ONNX-zoo backbones were evaluated with torchvision's "shorter side to 256 (Pillow,
antialiased bilinear), centre 224". This script decodes every photo once (augkit's
decoder), then makes the 224x224 uint8 input with each candidate rule and with that
reference, on the same pixels, in one run:

- ``reference``: ``PIL.Image.resize`` of the whole image (shorter side 256, the longer
  ``int(256 * long / short)``, as torchvision), then the centre crop as torchvision's
  ``CenterCrop`` takes it;
- ``crop+cv2 (before)``: the rule augkit used before (centre square of side
  ``round(short * 224 / 256)``, then OpenCV bilinear, or INTER_AREA when shrinking 2x+);
- ``cv2 area 256+crop``, ``cv2 linear 256+crop``: OpenCV on the whole image, then crop;
- ``blur+warp``: a Gaussian blur of the region (sigma^2 = (f^2 - 1) / 4 for a shrink
  factor f) and OpenCV's bilinear warp onto the reference's grid: an approximation of
  Pillow's widened filter, the fastest one tried that meets the 1-level bar;
- ``pillow box (one call)``: Pillow resizing only the reference's region (``box=``),
  straight to 224 in one call;
- ``augkit``: :func:`augkit.stages.preprocess.crop_to_input` as it is now (Pillow on the
  region, one call per axis, the width first).

Three sets, each from every photo: the photos as they are (the crop shrinks them); the
photos at 40 % (shorter side < 256: the crop is enlarged); and ``flow``'s ``size=``
(the whole photo stretched to 224x224, and the photos at 40 % to 320x320: flow's rule
before, INTER_AREA when shrinking, against augkit's
:func:`~augkit.stages.preprocess.resize` now, the reference being Pillow's resize of the
whole photo).

Per candidate it prints the median (over images) of the mean absolute difference per
pixel and channel against the reference, its 95th percentile and maximum, the largest
difference of any pixel, and the median time per image (one thread, the fastest of
``--repeats`` passes). It also prints how far augkit's decoder is from Pillow's own
decoding of the same JPEG (the reference pipeline decodes with Pillow), and the whole
pipeline against the whole reference.

Usage:  python benchmarks/resize_fidelity.py [PHOTOS] [--limit N] [--repeats 3]
        (PHOTOS: a folder searched for *.jpg; default /work/photos/hymenoptera_data)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from augkit.input.decoding import decode_image
from augkit.stages.backbones import resolve_backbone
from augkit.stages.preprocess import crop_to_input, resize

SIZE, SHORTER = 224, 256


def reference(rgb: np.ndarray) -> np.ndarray:
    """torchvision: Resize(256) with Pillow's bilinear (antialiased), CenterCrop(224)."""
    h, w = rgb.shape[:2]
    nh, nw = (SHORTER, int(SHORTER * w / h)) if h <= w else (int(SHORTER * h / w), SHORTER)
    img = Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - SIZE) / 2.0)), int(round((nw - SIZE) / 2.0))
    return np.asarray(img.crop((left, top, left + SIZE, top + SIZE)))


def _grid(rgb):
    h, w = rgb.shape[:2]
    nh, nw = (SHORTER, int(SHORTER * w / h)) if h <= w else (int(SHORTER * h / w), SHORTER)
    return nh, nw, int(round((nh - SIZE) / 2.0)), int(round((nw - SIZE) / 2.0))


def cv2_then_crop(interpolation):
    def rule(rgb):
        nh, nw, top, left = _grid(rgb)
        return cv2.resize(rgb, (nw, nh), interpolation=interpolation)[top:top + SIZE, left:left + SIZE]
    return rule


def crop_then_cv2_before(rgb):
    h, w = rgb.shape[:2]
    side = max(1, round(min(h, w) * SIZE / SHORTER))
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top:top + side, left:left + side]
    return cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_AREA if side >= 2 * SIZE else cv2.INTER_LINEAR)


def pillow_box(rgb):
    h, w = rgb.shape[:2]
    nh, nw, top, left = _grid(rgb)
    sx, sy = w / nw, h / nh
    box = (left * sx, top * sy, (left + SIZE) * sx, (top + SIZE) * sy)
    return np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.BILINEAR, box=box))


def blur_warp(rgb):
    h, w = rgb.shape[:2]
    nh, nw, top, left = _grid(rgb)
    sx, sy = w / nw, h / nh
    x0, y0 = max(0, int(left * sx) - 3), max(0, int(top * sy) - 3)
    region = rgb[y0:min(h, int((top + SIZE) * sy) + 4), x0:min(w, int((left + SIZE) * sx) + 4)]
    if max(sx, sy) > 1:
        sigma_x, sigma_y = (np.sqrt(max(f * f - 1, 0) / 4) for f in (sx, sy))
        region = cv2.GaussianBlur(region, (0, 0), sigmaX=max(sigma_x, 1e-3), sigmaY=max(sigma_y, 1e-3),
                                  borderType=cv2.BORDER_REPLICATE)
    inverse = np.array([[sx, 0, left * sx - x0 + 0.5 * sx - 0.5], [0, sy, top * sy - y0 + 0.5 * sy - 0.5]])
    return cv2.warpAffine(region, inverse, (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def compare(title, images, refs, candidates, repeats):
    print(f"\n{title}")
    print(f"{'rule':30} {'median mean|d|':>15} {'p95 mean|d|':>12} {'max mean|d|':>12} {'max |d|':>8} {'ms/image':>9}")
    for name, rule in candidates.items():
        means, worst, best_times = [], 0, [float("inf")] * len(images)
        for _ in range(repeats):
            for i, rgb in enumerate(images):
                start = time.perf_counter()
                rule(rgb)
                best_times[i] = min(best_times[i], time.perf_counter() - start)
        for rgb, ref in zip(images, refs):
            out = rule(rgb)
            assert out.shape == ref.shape, (name, out.shape)
            d = np.abs(out.astype(np.int16) - ref.astype(np.int16))
            means.append(float(d.mean()))
            worst = max(worst, int(d.max()))
        print(f"{name:30} {statistics.median(means):15.3f} {np.percentile(means, 95):12.3f} {max(means):12.3f} "
              f"{worst:8d} {1000 * statistics.median(best_times):9.3f}")


def stretch_before(rgb, size=SIZE):
    shrink = size * size < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def stretch_reference(rgb, size=SIZE):
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="?", default="/work/photos/hymenoptera_data")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timing passes; the fastest per image counts")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    paths = sorted(Path(args.photos).rglob("*.jpg"))[: args.limit or None]
    prep = resolve_backbone("mobilenet_v2").preprocessing
    images = [decode_image(p) for p in paths]
    refs = [reference(rgb) for rgb in images]
    candidates = {
        "reference (Pillow 256, crop)": reference,
        "crop+cv2 (before)": crop_then_cv2_before,
        "cv2 area 256+crop": cv2_then_crop(cv2.INTER_AREA),
        "cv2 linear 256+crop": cv2_then_crop(cv2.INTER_LINEAR),
        "blur+warp": blur_warp,
        "pillow box (one call)": pillow_box,
        "augkit crop_to_input (now)": lambda rgb: crop_to_input(rgb, prep),
    }
    shapes = [rgb.shape[:2] for rgb in images]
    print(f"{len(paths)} photos from {args.photos}: median {int(statistics.median(s[1] for s in shapes))}x"
          f"{int(statistics.median(s[0] for s in shapes))} (WxH), {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, Pillow {Image.__version__}, OpenCV {cv2.__version__}, one thread")
    compare("photos -> shorter side 256, centre 224 (the crop shrinks)", images, refs, candidates, args.repeats)
    small = [np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] * 2 // 5, rgb.shape[0] * 2 // 5), Image.BILINEAR))
             for rgb in images]
    compare("photos at 40 % -> shorter side 256, centre 224 (the crop is enlarged)", small,
            [reference(rgb) for rgb in small], candidates, args.repeats)
    compare("flow size=(224, 224): the whole photo stretched", images, [stretch_reference(rgb) for rgb in images],
            {"reference (Pillow)": stretch_reference, "cv2 area/linear (before)": stretch_before,
             "augkit resize (now)": lambda rgb: resize(rgb, (SIZE, SIZE))}, args.repeats)
    compare("flow size=(320, 320) from the photos at 40 %: enlarged", small,
            [stretch_reference(rgb, 320) for rgb in small],
            {"reference (Pillow)": lambda rgb: stretch_reference(rgb, 320),
             "cv2 area/linear (before)": lambda rgb: stretch_before(rgb, 320),
             "augkit resize (now)": lambda rgb: resize(rgb, (320, 320))}, args.repeats)
    # The reference pipeline decodes with Pillow; augkit decodes with its own decoder.
    decoded, whole = [], []
    for path, rgb in zip(paths, images):
        with Image.open(path) as img:
            pil = np.asarray(img.convert("RGB"))
        decoded.append(float(np.abs(pil.astype(np.int16) - rgb).mean()) if pil.shape == rgb.shape else float("nan"))
        whole.append(float(np.abs(reference(pil).astype(np.int16) - crop_to_input(rgb, prep)).mean()))
    print(f"decoders (augkit vs Pillow), median mean|d|: {statistics.median(decoded):.3f}; "
          f"whole pipeline (augkit decode + crop_to_input vs Pillow decode + reference): {statistics.median(whole):.3f}")


if __name__ == "__main__":
    sys.exit(main())
