"""A set of 12-megapixel JPEGs built from real photo textures, for the large-photo benchmarks.

Phone and camera photos are 8-48 megapixels; what a JPEG of them costs to decode depends
on its size and on how much detail its entropy-coded data carries (the Huffman decoder,
which no DCT scale skips, reads every coefficient). A flat or merely enlarged picture
would understate it, so each image is:

- a canvas of 12 megapixels (4000x3000, or 4240x2832 for 3:2), tiled row by row with
  crops of real photos (``--photos``: default /work/photos/hymenoptera_data, else the
  repository's sample_data/), each enlarged 1.5-3x (bicubic), as a scene fills a camera's
  frame at more pixels than a web photo;
- plus Gaussian noise (sigma 1.5-3.5 grey levels), the fine grain a sensor leaves after
  its noise reduction, which the enlargement smoothed away;
- saved by Pillow (libjpeg-turbo) at quality 88-94, 4:2:0, as phones save; a quarter
  stored landscape with EXIF orientation 6 (a phone held upright: displayed portrait).

The result is ~2-4 MB per image (2 bits per pixel, as 12-megapixel phone JPEGs are),
sorted into class folders by the source photo of the first tile. Deterministic for the
same parameters; a stamp beside the set records them and a set with the same stamp is
reused (bump ``BUILDER_VERSION`` when changing the builder).
"""

from __future__ import annotations

import io
import json
import shutil
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
DEFAULT_PHOTOS = Path("/work/photos/hymenoptera_data")
BUILDER_VERSION = 1
SEED = 2026
CANVASES = ((3000, 4000), (2832, 4240))  # (H, W): 4:3 and 3:2, 12 megapixels


def source_photos(photos: Path | None = None) -> list[Path]:
    """The real photos the textures come from: ``photos``, else the default folder, else sample_data/."""
    for folder in (photos, DEFAULT_PHOTOS, ROOT / "sample_data"):
        if folder is not None and folder.is_dir():
            paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
            if paths:
                return paths
    raise SystemExit(f"no photos found under {photos or DEFAULT_PHOTOS} or sample_data/")


def build_photo_set(n: int, photos: Path | None = None) -> tuple[Path, dict]:
    """The set of ``n`` 12-megapixel JPEGs: reused when its stamp matches, else rebuilt."""
    sources = source_photos(photos)
    params = {"builder_version": BUILDER_VERSION, "images": n, "seed": SEED,
              "sources": [str(sources[0].parent.parent), len(sources), sum(p.stat().st_size for p in sources)]}
    dest, stamp = WORK / f"photos12-{n}", WORK / f"photos12-{n}.stamp.json"
    if stamp.exists() and dest.is_dir():
        saved = json.loads(stamp.read_text())
        if saved.get("params") == params:
            return dest, saved["stats"]
    shutil.rmtree(dest, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    sizes, rotated, shapes = [], 0, []
    for i in range(n):
        data, cls, orientation, shape = make_photo(sources, i)
        out = dest / cls / f"{cls}_{i:04d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        sizes.append(len(data))
        rotated += orientation != 1
        shapes.append(shape)
    stats = {"images": n, "shapes": sorted({f"{w}x{h}" for h, w in shapes}), "exif_rotated": rotated,
             "mean_mb": round(statistics.mean(sizes) / 1e6, 2), "min_mb": round(min(sizes) / 1e6, 2),
             "max_mb": round(max(sizes) / 1e6, 2),
             "bits_per_pixel": round(8 * statistics.mean(sizes) / statistics.mean(h * w for h, w in shapes), 2),
             "total_mb": round(sum(sizes) / 1e6, 1)}
    WORK.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"params": params, "stats": stats}, indent=2) + "\n")
    return dest, stats


def make_photo(sources: list[Path], index: int) -> tuple[bytes, str, int, tuple[int, int]]:
    """(JPEG bytes, class, EXIF orientation, stored (H, W)) of image ``index`` of the set."""
    import cv2
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([SEED, index])
    height, width = CANVASES[int(rng.random() < 0.3)]
    canvas = np.empty((height, width, 3), np.uint8)
    first = None
    y = 0
    while y < height:
        row = int(rng.integers(600, 1400))
        x = 0
        while x < width:
            pick = int(rng.integers(len(sources)))
            first = first if first is not None else sources[pick]
            tile = cv2.cvtColor(cv2.imread(str(sources[pick]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            scale = max(rng.uniform(1.5, 3.0), row / tile.shape[0])
            tile = cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            h, w = min(row, height - y, tile.shape[0]), min(tile.shape[1], width - x)
            canvas[y:y + h, x:x + w] = tile[:h, :w]
            x += w
        y += row
    sigma = rng.uniform(1.5, 3.5)
    noise = rng.standard_normal(canvas.shape, dtype=np.float32) * sigma
    canvas = np.clip(canvas + noise, 0, 255).astype(np.uint8)
    orientation = 6 if rng.random() < 0.25 else 1
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "JPEG", quality=int(rng.integers(88, 95)), subsampling="4:2:0",
                                 exif=exif.tobytes())
    return buf.getvalue(), first.parent.name, orientation, (height, width)


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--photos", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    folder, built = build_photo_set(args.images, args.photos)
    print(f"{folder}: {built} ({time.perf_counter() - started:.1f} s)")
