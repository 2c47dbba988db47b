#!/usr/bin/env python3
"""Generate ``sample_data/``: a tiny real-photo image-classification dataset.

What it makes
-------------
Four class folders -- ``astronaut/``, ``cat/``, ``coffee/``, ``rocket/`` --
with five JPEG images each (``cat_01.jpg`` ... ``cat_05.jpg``), plus
``sample_data/README.md`` describing every file.  Each image is a different
crop of one photo, rescaled so its sides are roughly 200-400 px; some crops
are landscape, some portrait, and some are mirrored left-right, so no two
images in a class are the same.  The whole set is well under 1.5 MB.

Where the photos come from
--------------------------
The four source photos ship inside the scikit-image package
(``skimage/data/``).  Their credits and licences, as stated in the docstrings
of ``skimage/data/_fetchers.py`` (scikit-image 0.26.0), are listed in
``SOURCES`` below and copied into the generated README.  scikit-image is used
only to *locate* those files; augkit itself never imports it.

Determinism
-----------
Crop boxes, sizes and flips are fixed in ``PLAN`` (no randomness at all).
Images are resized with Pillow's LANCZOS filter and written with fixed JPEG
settings (quality 90, 4:2:0 chroma subsampling, baseline, no optimisation,
no EXIF/ICC metadata), so rerunning the script produces byte-identical files
with the same Pillow / libjpeg build.  The script warns if a source photo's
SHA-256 differs from the one recorded here (i.e. scikit-image changed it).

Usage
-----
    python tools/make_sample_data.py                 # writes ./sample_data
    python tools/make_sample_data.py --out /tmp/sd   # somewhere else
    python tools/make_sample_data.py --skimage-data /path/to/skimage/data
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent

# Class name -> source photo file name and the credit / licence text quoted
# from scikit-image's skimage/data/_fetchers.py docstrings.
SOURCES = {
    "astronaut": {
        "file": "astronaut.png",
        "sha256": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        "subject": "Astronaut Eileen Collins (official NASA portrait)",
        "source": "NASA Great Images database, <https://flic.kr/p/r9qvLn>",
        "licence": "\"No known copyright restrictions, released into the public domain.\"",
    },
    "cat": {
        "file": "chelsea.png",
        "sha256": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
        "subject": "Chelsea the cat",
        "source": "Stefan van der Walt (photographer); no URL given by scikit-image",
        "licence": "\"No copyright restrictions.  CC0 by the photographer (Stefan van der Walt).\"",
    },
    "coffee": {
        "file": "coffee.png",
        "sha256": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
        "subject": "Coffee cup (\"courtesy of Pikolo Espresso Bar\")",
        "source": "Rachel Michetti (photographer); no URL given by scikit-image",
        "licence": "\"No copyright restrictions.  CC0 by the photographer (Rachel Michetti).\"",
    },
    "rocket": {
        "file": "rocket.jpg",
        "sha256": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
        "subject": "Launch photo of DSCOVR on Falcon 9 by SpaceX",
        "source": "SpaceX Photos on Flickr, "
        "<https://www.flickr.com/photos/spacexphotos/16511594820/in/photostream/>",
        "licence": "\"The image was captured by SpaceX and released in the public domain\" "
        "(<http://arstechnica.com/tech-policy/2015/03/elon-musk-puts-spacex-photos-into-the-public-domain/>)",
    },
}

# Class name -> five (crop box (left, top, right, bottom) in source pixels,
# length of the output's longer side in px, mirror left-right?).
# The output keeps the crop's aspect ratio.
PLAN = {
    "astronaut": [  # source 512 x 512
        ((0, 0, 512, 512), 320, False),      # whole photo, square
        ((100, 0, 400, 240), 360, False),    # head and shoulders, landscape
        ((20, 60, 320, 460), 380, True),     # suit and helmet, portrait
        ((140, 10, 320, 190), 240, True),    # face close-up, square
        ((160, 0, 512, 512), 400, False),    # astronaut + shuttle model, portrait
    ],
    "cat": [  # source 451 x 300
        ((0, 0, 451, 300), 360, False),      # whole photo, landscape
        ((110, 30, 370, 230), 300, True),    # eyes and nose, landscape
        ((120, 0, 340, 300), 340, False),    # face, portrait
        ((180, 80, 330, 230), 256, True),    # eye/nose close-up, square
        ((0, 20, 300, 300), 280, True),      # left part, near-square
    ],
    "coffee": [  # source 600 x 400
        ((0, 0, 600, 400), 400, False),      # whole photo, landscape
        ((150, 0, 450, 300), 300, True),     # cup, square
        ((80, 40, 480, 380), 360, False),    # cup and saucer, landscape
        ((220, 0, 440, 400), 380, True),     # cup and spoon, portrait
        ((300, 100, 500, 300), 240, False),  # spoon and saucer close-up, square
    ],
    "rocket": [  # source 640 x 427
        ((0, 0, 640, 427), 384, False),      # whole photo, landscape
        ((220, 40, 420, 427), 400, False),   # rocket on pad, portrait
        ((150, 100, 550, 427), 320, True),   # pad and lights, landscape
        ((250, 90, 400, 390), 400, True),    # rocket, tall portrait
        ((100, 60, 600, 400), 300, True),    # towers and rocket, landscape
    ],
}

JPEG_OPTIONS = dict(quality=90, subsampling=2, optimize=False, progressive=False)


def skimage_data_dir() -> Path:
    """Directory holding scikit-image's bundled photos, found without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-image is not installed; pass --skimage-data DIR")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def output_size(box, long_side):
    w, h = box[2] - box[0], box[3] - box[1]
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def make_image(src: Image.Image, box, long_side, flip) -> Image.Image:
    im = src.crop(box).resize(output_size(box, long_side), Image.Resampling.LANCZOS)
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return im


def readme(rows) -> str:
    lines = [
        "# sample_data",
        "",
        "A tiny image-classification dataset of real photos, for the augkit quick",
        "start and tests: 4 classes (one folder per class) x 5 JPEG images.",
        "",
        "```",
        "sample_data/",
        *[f"  {c}/  {c}_01.jpg ... {c}_05.jpg" for c in PLAN],
        "```",
        "",
        "Each image is a different crop of a single photo, resized (aspect ratio kept)",
        "so its sides are roughly 200-400 px; some are landscape, some portrait, and",
        "some mirrored left-right. All are RGB JPEG, quality 90.",
        "",
        "## Files",
        "",
        "Crop box is `(left, top, right, bottom)` in pixels of the original photo.",
        "",
        "| File | Source photo | Crop box | Size (w x h) | Mirrored |",
        "|------|--------------|----------|--------------|----------|",
    ]
    for rel, src_file, box, size, flip in rows:
        lines.append(
            f"| `{rel}` | `{src_file}` | {box} | {size[0]} x {size[1]} | {'yes' if flip else 'no'} |"
        )
    lines += [
        "",
        "## Sources and licences",
        "",
        "The photos are the ones bundled with scikit-image (`skimage/data/`). Credits",
        "and licences are quoted from the docstrings in scikit-image's",
        "`skimage/data/_fetchers.py` (version 0.26.0).",
        "",
        "| Class | Original file | Subject | Source / credit | Licence (as stated by scikit-image) |",
        "|-------|---------------|---------|-----------------|-------------------------------------|",
    ]
    for cls, s in SOURCES.items():
        lines.append(
            f"| {cls} | `{s['file']}` | {s['subject']} | {s['source']} | {s['licence']} |"
        )
    lines += [
        "",
        "## How it was generated",
        "",
        "By `tools/make_sample_data.py` (this README included). The script is",
        "deterministic: fixed crop boxes, sizes and flips, Pillow LANCZOS resizing,",
        "fixed JPEG settings and no metadata, so rerunning it gives byte-identical",
        "files with the same Pillow/libjpeg build. To regenerate:",
        "",
        "```",
        "pip install scikit-image   # only needed to get the photos",
        "python tools/make_sample_data.py",
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "sample_data",
                    help="output directory (default: <repo>/sample_data)")
    ap.add_argument("--skimage-data", type=Path, default=None,
                    help="directory with scikit-image's photos (default: found automatically)")
    args = ap.parse_args(argv)

    data_dir = args.skimage_data or skimage_data_dir()
    rows = []
    total = 0
    for cls, plan in PLAN.items():
        src_path = data_dir / SOURCES[cls]["file"]
        digest = hashlib.sha256(src_path.read_bytes()).hexdigest()
        if digest != SOURCES[cls]["sha256"]:
            print(f"warning: {src_path} differs from the photo this script was written for",
                  file=sys.stderr)
        with Image.open(src_path) as f:
            src = f.convert("RGB")
        cls_dir = args.out / cls
        cls_dir.mkdir(parents=True, exist_ok=True)
        for i, (box, long_side, flip) in enumerate(plan, start=1):
            im = make_image(src, box, long_side, flip)
            path = cls_dir / f"{cls}_{i:02d}.jpg"
            im.save(path, "JPEG", **JPEG_OPTIONS)
            total += path.stat().st_size
            rows.append((f"{cls}/{path.name}", SOURCES[cls]["file"], box, im.size, flip))
    (args.out / "README.md").write_text(readme(rows), encoding="utf-8")
    print(f"wrote {len(rows)} images ({total / 1024:.0f} KiB) and README.md to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
