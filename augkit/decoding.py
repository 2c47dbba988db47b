"""Reading image files into RGB uint8 arrays, and writing them back out.

Every image enters augkit through :func:`decode_bytes`, so the rules that decide
what a pixel means live here, once, for every format:

* output is RGB uint8 (H, W, 3), C-contiguous; multi-frame files give frame 0;
* alpha is composited on WHITE (as img2dataset does), as a browser shows a
  transparent logo, rather than on black;
* 16-bit (and 32-bit, float) samples are SCALED to 8 bits with rounding, never
  clipped, so a 16-bit image keeps its tones instead of saturating to white;
* EXIF orientation is applied by us, the same way whichever library decoded;
* the pixel count is checked from the header alone, before any decoding, so a
  tiny "decompression bomb" costs nothing.

Failures never leak cv2.error or Pillow exceptions: they are DecodeError, with
a ``reason`` code a caller can count and a one-line message a person can act on.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# We enforce our own limit (before decoding, with a better message); Pillow's
# would warn at 89 Mpx and raise at twice that, independently of ours.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default, so behaviour matches what users know
MAX_PIXELS_ENV = "AUGKIT_MAX_IMAGE_PIXELS"

IMAGE_SUFFIXES = frozenset(".jpg .jpeg .jpe .jfif .png .bmp .tif .tiff .webp .gif".split())
REASONS = frozenset("missing empty not_an_image too_large truncated corrupt unsupported".split())


class DecodeError(Exception):
    """An image could not be decoded; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, path: str, reason: str, detail: str):
        # All three go to Exception.__init__ so the error pickles across
        # multiprocessing workers (pickle re-calls cls(*args)).
        super().__init__(path, reason, detail)
        self.path = path
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        # Messages end up in one-line-per-file logs; embedded newlines from
        # library error texts would break that.
        return f"{self.path}: {self.detail}".replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name for the container: "JPEG", "PNG", "MPO", ...
    width: int  # of the returned array, i.e. after EXIF orientation
    height: int
    mode: str  # Pillow's mode of the stored pixels: "RGB", "I;16", "CMYK", "P", ...
    frames: int
    orientation: int  # EXIF orientation as stored (1 when absent)
    notes: tuple[str, ...] = ()


def decode_image(path, *, max_pixels: int | None = None) -> np.ndarray:
    return decode_image_with_info(path, max_pixels=max_pixels)[0]


def decode_image_with_info(path, *, max_pixels: int | None = None) -> tuple[np.ndarray, ImageInfo]:
    name = os.fsdecode(path)
    # Reading the bytes ourselves (rather than cv2.imread) works for non-ASCII
    # paths on every platform and gives one code path for files and buffers.
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise DecodeError(name, "missing", "file not found") from None
    except IsADirectoryError:
        raise DecodeError(name, "missing", "is a directory, not an image file") from None
    except OSError as e:
        raise DecodeError(name, "missing", f"cannot read file ({e.strerror or e})") from None
    return decode_bytes(data, name=name, max_pixels=max_pixels)


def decode_bytes(
    data: bytes, *, name: str = "<bytes>", max_pixels: int | None = None
) -> tuple[np.ndarray, ImageInfo]:
    """Decode an encoded image to RGB uint8 (H, W, 3). ``max_pixels=0`` disables the limit."""
    limit = _resolve_max_pixels(max_pixels)
    if not data:
        raise DecodeError(name, "empty", "file is empty (0 bytes)")
    data = bytes(data)  # np.frombuffer and Pillow both want a real bytes object
    img = _open_header(data, name)
    with img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise DecodeError(name, "corrupt", f"header says the image is {width}x{height}")
        if limit and width * height > limit:
            raise DecodeError(
                name,
                "too_large",
                f"image is {width}x{height} ({_pixels(width * height)}), over the "
                f"{_pixels(limit)} limit; raise it with --max-pixels or {MAX_PIXELS_ENV}",
            )
        fmt, mode = img.format or "?", img.mode
        orientation = _exif_orientation(img, data)
        try:
            frames = int(getattr(img, "n_frames", 1))
        except Exception:  # a broken later frame must not cost us frame 0
            frames = 1
        if _is_truncated(data, _sniff(data)):
            raise _truncated(name)

        notes: list[str] = []
        pixels = _decode_opencv(data, img) if img.mode in _OPENCV_MODES.get(fmt, ()) else None
        is_bgr = pixels is not None
        if pixels is None:  # Pillow: the rare modes, and anything OpenCV refused
            pixels = _decode_pillow(img, name, notes)
    rgb = _to_rgb_uint8(pixels, is_bgr, name, notes)
    if frames > 1 and fmt != "MPO":  # an MPO's extra frames are camera previews
        notes.insert(0, f"first frame of {frames}")
    if orientation in _ORIENT_OPS:
        rgb = _ORIENT_OPS[orientation](rgb)
        notes.append(f"EXIF orientation {orientation} applied")
    rgb = np.ascontiguousarray(rgb)
    info = ImageInfo(fmt, rgb.shape[1], rgb.shape[0], mode, frames, orientation, tuple(notes))
    return rgb, info


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} Mpx" if n >= 100_000 else f"{n:,} px"


def _resolve_max_pixels(max_pixels: int | None) -> int:
    if max_pixels is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels") from None
    return max(int(max_pixels), 0)


def _open_header(data: bytes, name: str) -> Image.Image:
    # Image.open only parses the header; pixels are decoded on load().
    try:
        return Image.open(io.BytesIO(data))
    except Exception as e:
        kind = _sniff(data)
        unidentified = isinstance(e, UnidentifiedImageError)
        if unidentified and kind is None:
            raise _not_an_image(data, name) from None
        # An image signature, but Pillow cannot parse the header: most often
        # the file was cut short (Pillow cannot even open a WebP missing its end).
        cut_gif = kind == "GIF" and not data.endswith(b";")
        if _is_truncated(data, kind) or cut_gif or "truncat" in str(e).lower():
            raise _truncated(name) from None
        detail = "" if unidentified else f" ({e})"
        raise DecodeError(name, "corrupt", f"damaged {kind or 'image'} header{detail}") from None


def _sniff(data: bytes) -> str | None:
    """The format named by the magic bytes alone (for the formats augkit lists)."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _not_an_image(data: bytes, name: str) -> DecodeError:
    suffix = os.path.splitext(name)[1]
    hint = f" (is it really a {suffix}?)" if suffix else ""
    if data[:512].lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml", b"{", b"[")):
        hint = f" (is it really a {suffix or 'picture'}? it is text, e.g. an HTML error page)"
    return DecodeError(name, "not_an_image", f"not a recognised image format{hint}")


def _truncated(name: str) -> DecodeError:
    return DecodeError(name, "truncated", "file is truncated (incomplete download or copy?)")


def _exif_orientation(img: Image.Image, data: bytes) -> int:
    # PngImageFile.getexif() decodes the whole image when the eXIf chunk comes
    # after the pixels. Find the chunk ourselves and use the base-class
    # getexif(), which only parses metadata (EXIF, or XMP's tiff:Orientation).
    if img.format == "PNG" and "exif" not in img.info:
        for kind, start, length in _png_chunks(data):
            if kind == b"eXIf":
                img.info["exif"] = b"Exif\x00\x00" + data[start : start + length]
                break
    try:
        value = int(Image.Image.getexif(img).get(0x0112, 1))
    except Exception:  # malformed EXIF is common and must not reject the image
        return 1
    return value if 1 <= value <= 8 else 1


# --- completeness checks --------------------------------------------------
# A truncated file must be reported as such, never returned as a half-grey
# image. These read only markers/chunk headers, so they are cheap, and they
# tell "truncated" apart from "corrupt" without parsing decoder messages.

_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # FF00 = stuffing, D0-D7 = restarts


def _jpeg_is_truncated(data: bytes) -> bool:
    # Walk segments from SOI to the first EOI. Stopping at that EOI (instead of
    # looking at the file's last markers) ignores data appended after the image,
    # e.g. the MP4 of a "motion photo", which can contain FF DA by chance.
    pos, n = 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return False  # malformed rather than short: let the decoder judge
        while pos + 2 < n and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        marker = data[pos + 1]
        if marker == 0xD9:
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if pos + 4 > n:
            return True
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
        if marker == 0xDA:  # entropy-coded data follows; find the marker ending it
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                return True
            pos = found.start()
    return True


def _png_chunks(data: bytes):
    """Yield (type, data offset, length) per chunk; stops where the data runs out."""
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > n:
            return
        yield kind, pos + 8, length
        if kind == b"IEND":
            return
        pos += 12 + length


def _is_truncated(data: bytes, kind: str | None) -> bool:
    # ``kind`` comes from _sniff, not Pillow: this also runs when Pillow could
    # not open the file at all.
    if kind == "JPEG":
        return _jpeg_is_truncated(data)
    if kind == "PNG":
        return not any(chunk == b"IEND" for chunk, _, _ in _png_chunks(data))
    if kind == "WEBP":
        return len(data) < 8 + struct.unpack_from("<I", data, 4)[0]
    return False  # others: Pillow's "image file is truncated" error tells us


# --- pixel decoding --------------------------------------------------------

# Modes OpenCV decodes correctly (libpng also turns a PNG's tRNS colour key into
# alpha). Not CMYK JPEG, where Pillow knows Adobe's inverted CMYK, nor palette
# images, whose transparency OpenCV's BMP/PNG readers do not all honour.
_OPENCV_MODES = {
    "JPEG": {"RGB", "L"},
    "MPO": {"RGB", "L"},
    "PNG": {"RGB", "RGBA", "L", "LA", "1", "I", "I;16", "I;16B"},
    "BMP": {"RGB", "L"},
    "WEBP": {"RGB", "RGBA"},
}


def _decode_opencv(data: bytes, img: Image.Image) -> np.ndarray | None:
    # IMREAD_UNCHANGED keeps alpha and 16 bits and ignores EXIF orientation
    # (we apply it ourselves). None means "let Pillow try": OpenCV also refuses
    # images over its own OPENCV_IO_MAX_IMAGE_PIXELS (2**30 by default).
    try:
        out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if out is None or out.size == 0 or out.shape[:2] != img.size[::-1]:
        return None
    if out.ndim == 3 and out.shape[2] == 4 and "A" not in img.mode and "transparency" not in img.info:
        # e.g. a 32-bit BMP whose 4th byte is padding, often 0: taken as alpha
        # it would turn the whole image white.
        out = out[:, :, :3]
    return out


def _decode_pillow(img: Image.Image, name: str, notes: list[str]) -> np.ndarray:
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
        text = str(e) or type(e).__name__
        if isinstance(e, EOFError) or "truncated" in text:
            raise _truncated(name) from None
        if any(s in text for s in ("not available", "not supported", "cannot find loader")):
            raise DecodeError(name, "unsupported", f"cannot decode this kind of {fmt} ({text})") from None
        raise DecodeError(name, "corrupt", f"corrupt image data ({text})") from None


def _to_rgb_uint8(a: np.ndarray, is_bgr: bool, name: str, notes: list[str]) -> np.ndarray:
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


# EXIF orientation -> the operation that makes the image upright
# (the same mapping as PIL.ImageOps.exif_transpose).
_ORIENT_OPS = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


# --- encoding --------------------------------------------------------------

_ENCODERS = {  # fmt -> (OpenCV extension, the parameter that gets quality)
    "jpg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "png": (".png", cv2.IMWRITE_PNG_COMPRESSION),
    "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
}
_PNG_COMPRESSION = 6  # zlib's default trade-off; fixed so output is reproducible
_tmp_counter = itertools.count()


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


def write_image_atomic(path, image: np.ndarray, fmt: str | None = None, quality: int = 95) -> None:
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
    data = encode_image(image, fmt, quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    # pid + counter keeps concurrent writers (processes or threads) apart; the
    # leading dot hides the partial file from globbing and dataset discovery.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{next(_tmp_counter)}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
