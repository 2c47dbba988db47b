"""Writing RGB uint8 images out: one encoder call per format, and whole files or nothing.

The decoder's twin: :mod:`augkit.input.decoding` reads every image augkit takes in, this
module writes every image it puts out (``augkit augment``, the preview grid, the stats plot).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from augkit.core.files import write_bytes_atomic

_ENCODERS = {  # fmt -> (OpenCV extension, the parameter that gets quality)
    "jpg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "png": (".png", cv2.IMWRITE_PNG_COMPRESSION),
    "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
}
_PNG_COMPRESSION = 6  # zlib's default trade-off; fixed so output is reproducible


def encode_image(image: np.ndarray, fmt: str = "jpg", quality: int = 95) -> bytes:
    """Encode RGB uint8 (H, W, 3) as jpg/jpeg, png or webp. Same input, same bytes."""
    ext, param = _ENCODERS.get(fmt.lower().lstrip("."), (None, None))
    if ext is None:
        raise ValueError(f"cannot write format {fmt!r}; choose one of jpg, png, webp")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3), got {image.dtype} {image.shape}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    value = _PNG_COMPRESSION if ext == ".png" else int(quality)
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, bgr, [param, value])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {fmt}")
    return buf.tobytes()


def write_image_atomic(path, image: np.ndarray, fmt: str | None = None, quality: int = 95, *,
                       parents: bool = True) -> None:
    """Write so that ``path`` is either absent/old or complete, never half-written.

    Encoding happens first, so a bad format or array leaves nothing behind.
    No fsync: this guards against crashes of augkit and readers seeing partial
    files, not against power loss, which would cost a sync per image.
    """
    path = Path(path)
    if fmt is None:
        fmt = path.suffix.lstrip(".")
        if not fmt:
            raise ValueError(f"{path}: no suffix to infer the image format from; pass fmt")
    write_bytes_atomic(path, encode_image(image, fmt, quality), parents=parents)
