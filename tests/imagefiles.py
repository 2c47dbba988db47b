"""Image files as users have them, good and bad, built in code (no binary fixtures).

Used by the modules that run whole datasets (augment, and later stats and batches);
test_decoding.py covers each case in depth.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import make_structured_rgb


def encoded(image: Image.Image | np.ndarray, fmt: str, **kw) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header (with a valid CRC) claims width x height: a decompression bomb."""
    data = bytearray(encoded(np.zeros((1, 1, 3), np.uint8), "PNG"))
    ihdr = data[12:29]
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def good_images(seed: int = 0) -> dict[str, bytes]:
    """File name -> bytes of images that decode: every kind the decoder must handle."""
    rgb = make_structured_rgb(60, 80, seed)
    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (10, 120, 250)]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    tiff = io.BytesIO()
    frames[0].save(tiff, "TIFF", save_all=True, append_images=frames[1:])
    return {
        "photo.jpg": encoded(rgb, "JPEG", quality=90),
        "lossless.png": encoded(rgb, "PNG"),
        "bitmap.bmp": encoded(rgb, "BMP"),
        "web.webp": encoded(rgb, "WEBP", quality=90),
        "gray.png": encoded(rgb[..., 0], "PNG"),
        "alpha.png": encoded(rgba, "PNG"),
        "deep16.png": encoded(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG"),
        "cmyk.jpg": encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=90),
        "animated.gif": gif.getvalue(),
        "pages.tiff": tiff.getvalue(),
        "exif rotated.jpg": encoded(rgb, "JPEG", exif=_orientation_exif(6)),
        "caf\u00e9 \u732b.jpg": encoded(rgb, "JPEG"),
    }


def bad_images() -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, the failure reason augkit must report)."""
    jpeg = encoded(make_structured_rgb(60, 80, 3), "JPEG", quality=90)
    return {
        "empty.jpg": (b"", "empty"),
        "page.jpg": (b"<html><body>404 not found</body></html>\n", "not_an_image"),
        "cut.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "bomb.png": (png_claiming_size(30000, 30000), "too_large"),
    }


def _orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def class_folders(root: Path, classes=("cat", "dog", "owl"), per_class: int = 4, size=(60, 80)) -> Path:
    """A small labelled dataset of structured JPEGs: root/<class>/<class>_<i>.jpg."""
    files = {}
    for c, name in enumerate(classes):
        for i in range(per_class):
            image = make_structured_rgb(*size, seed=100 * c + i)
            files[f"{name}/{name}_{i}.jpg"] = encoded(image, "JPEG", quality=90)
    return write_tree(root, files)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file below root (for byte-identity checks)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
