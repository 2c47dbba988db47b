"""Pixels from OpenCV or Pillow, and the one place any decoder's output becomes RGB uint8.

:mod:`augkit.input.decoding` decides which library decodes a file (the policy); this
module holds how each is asked for exact pixels (16-bit PNG samples, palette and
premultiplied modes, padding bytes taken for alpha) and how every sample type, channel
order and alpha becomes RGB uint8: scaled, never clipped; alpha composited on white.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from augkit.input.decode_error import DecodeError, truncated

# Modes OpenCV decodes correctly. Not palette images, whose transparency OpenCV's BMP
# reader does not honour; not JPEGs, which simplejpeg decodes (see decoding._strict_jpeg); not
# PNGs: OpenCV hands them to libpng, which prints its warnings and errors to stderr (an
# ICC profile it dislikes, a bad filter byte, data after the last row), naming no file,
# where Pillow raises or stays silent. Pillow decodes them (see png16_samples for 16 bits).
OPENCV_MODES = {
    "BMP": {"RGB", "L"},
    "WEBP": {"RGB", "RGBA"},
}
PNG_BIT_DEPTH, _PNG_COLOR_TYPE = 24, 25  # offsets in IHDR, which is always the first chunk
# 16-bit colour PNGs: Pillow's raw modes for each sample's high byte (how it loads them)
# and for its low byte (the same samples read as little-endian).
_PNG16_RAW_MODES = {2: ("RGB;16B", "RGB;16L"), 6: ("RGBA;16B", "RGBA;16L")}


def png16_samples(img: Image.Image, data: bytes, name: str) -> np.ndarray:
    """A 16-bit PNG's samples, exactly, grey or RGB, with alpha where it has some, decoded by
    Pillow, which raises where libpng prints (decoding them ourselves, the filters alone
    would cost a Python loop per pixel).

    Pillow keeps 16 bits for grey only ("I;16"); colour it loads as 8-bit RGB(A), the high
    byte of each sample. Loaded again with the little-endian raw mode, the same data gives
    the low bytes. Grey with alpha, four bytes a pixel, loads in one go with the 8-bit RGBA
    raw mode: grey high, grey low, alpha high, alpha low. A raw mode only says how to
    unpack a row; the filters undone before it depend on the bytes per pixel, the same.
    """
    color_type = data[_PNG_COLOR_TYPE]
    try:
        img.seek(0)
        if color_type == 4:
            return _load_with_raw_mode(img, "RGBA").view(">u2").astype(np.uint16)
        key = img.info.get("transparency")
        if color_type == 0:
            img.load()
            grey = np.asarray(img).astype(np.uint16)
            if not isinstance(key, int):
                return grey
            return np.dstack([grey, np.where(grey == key, 0, 65535).astype(np.uint16)])
        high_mode, low_mode = _PNG16_RAW_MODES[color_type]
        high = _load_with_raw_mode(img, high_mode)
        again = Image.open(io.BytesIO(data))
        again.seek(0)
        samples = (high.astype(np.uint16) << 8) | _load_with_raw_mode(again, low_mode)
        if color_type == 2 and isinstance(key, tuple) and len(key) == 3:  # a colour key (tRNS)
            opaque = np.any(samples != np.array(key, np.uint16), axis=2)
            samples = np.dstack([samples, np.where(opaque, 65535, 0).astype(np.uint16)])
        return samples
    except Exception as e:
        raise _pillow_failure(e, name, "PNG") from None


def _load_with_raw_mode(img: Image.Image, raw_mode: str) -> np.ndarray:
    (tile,) = img.tile  # a PNG frame is one tile
    img.tile = [tile._replace(args=raw_mode) if hasattr(tile, "_replace") else (*tile[:3], raw_mode)]
    img.load()
    return np.asarray(img)


def decode_opencv(data: bytes, size: tuple[int, int], may_have_alpha: bool) -> np.ndarray | None:
    # IMREAD_UNCHANGED keeps alpha and 16 bits and ignores EXIF orientation
    # (we apply it ourselves). None means "let Pillow try": OpenCV also refuses
    # images over its own OPENCV_IO_MAX_IMAGE_PIXELS (2**30 by default).
    try:
        out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if out is None or out.size == 0 or out.shape[:2] != size[::-1]:
        return None
    if out.ndim == 3 and out.shape[2] == 4 and not may_have_alpha:
        # e.g. a 32-bit BMP whose 4th byte is padding, often 0: taken as alpha
        # it would turn the whole image white.
        out = out[:, :, :3]
    return out


def decode_pillow(img: Image.Image, name: str, notes: list[str]) -> np.ndarray:
    fmt = img.format
    try:
        img.seek(0)
        img.load()
        mode = img.mode
        if mode in ("P", "PA"):
            has_alpha = mode == "PA" or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "RGB")
        elif "transparency" in img.info and mode in ("L", "RGB"):
            img = img.convert("RGBA")
        elif mode == "1":
            img = img.convert("L")
        elif mode in ("RGBa", "La"):  # premultiplied alpha
            img = img.convert("RGBA")
        elif mode in ("CMYK", "YCbCr", "RGBX"):
            if mode == "CMYK":
                notes.append("CMYK converted to RGB")
            img = img.convert("RGB")
        if img.mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not img.mode.startswith("I;16"):
            # e.g. LAB, which Pillow "converts" to RGB without colour management.
            raise DecodeError(name, "unsupported", f"{img.mode} images are not supported; convert to RGB")
        return np.asarray(img)
    except DecodeError:
        raise
    except Exception as e:
        raise _pillow_failure(e, name, fmt) from None


def _pillow_failure(e: Exception, name: str, fmt: str | None) -> DecodeError:
    """The DecodeError for what Pillow raised while loading pixels."""
    text = str(e) or type(e).__name__
    if isinstance(e, EOFError) or "truncated" in text:
        return truncated(name)
    if any(s in text for s in ("not available", "not supported", "cannot find loader")):
        return DecodeError(name, "unsupported", f"cannot decode this kind of {fmt} ({text})")
    return DecodeError(name, "corrupt", f"corrupt image data ({text})")


def to_rgb_uint8(a: np.ndarray, is_bgr: bool, name: str, notes: list[str]) -> np.ndarray:
    """The single place where any decoder output becomes RGB uint8."""
    # cv2.cvtColor rather than numpy slicing: a reversed-channel view costs a
    # slow strided copy later, several times cvtColor's time on a 12 Mpx photo.
    a = np.ascontiguousarray(_to_uint8(a, name, notes))
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    if a.ndim != 3 or a.shape[2] not in (2, 3, 4):
        raise DecodeError(name, "unsupported", f"unexpected pixel layout {a.shape}")
    if a.shape[2] == 3:
        return cv2.cvtColor(a, cv2.COLOR_BGR2RGB) if is_bgr else a
    color, alpha = a[:, :, :-1], a[:, :, -1:]
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    elif is_bgr:
        color = color[:, :, ::-1]
    if alpha.min() == 255:
        return color
    notes.append("alpha composited on white")
    c, w = color.astype(np.uint32), alpha.astype(np.uint32)
    return ((c * w + 255 * (255 - w) + 127) // 255).astype(np.uint8)


def _to_uint8(a: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    fits_16_bit = a.dtype.kind == "i" and (a.size == 0 or (a.min() >= 0 and a.max() <= 65535))
    if (a.dtype.kind == "u" and a.dtype.itemsize == 2) or fits_16_bit:
        # Pillow's "I" mode carries 16-bit PNG/TIFF data in int32.
        notes.append("16-bit scaled to 8-bit")
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if a.dtype.kind in "iuf":
        if a.dtype.kind == "f":
            # Float images are [0, 1] by convention; ones that go beyond 1 are
            # taken to be on the 0..255 scale already.
            f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            scale = 255.0 if f.size and f.max() <= 1.0 else 1.0
            notes.append("floating-point scaled to 8-bit")
        else:
            f, scale = a.astype(np.float64), 255.0 / np.iinfo(a.dtype).max
            notes.append(f"{8 * a.dtype.itemsize}-bit scaled to 8-bit")
        return np.rint(np.clip(f * scale, 0, 255)).astype(np.uint8)
    raise DecodeError(name, "unsupported", f"unsupported sample type {a.dtype}")
