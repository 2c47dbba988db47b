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
  tiny "decompression bomb" costs nothing;
* a file whose pixels cannot all be decoded (cut short, or damaged where a
  decoder notices) is an error, never an image partly grey or garbage, and the
  decoders' own complaints become that error's message instead of lines on stderr.

Failures never leak cv2.error or Pillow exceptions: they are DecodeError, with
a ``reason`` code a caller can count and a one-line message a person can act on.

Two modules hold the code that parses untrusted bytes by hand, apart so this one
reads as the policy: ``image_checks`` (truncation, CRCs, impossible header sizes)
and ``jpeg`` (the JPEG header walk and libjpeg's strict decode).
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from augkit.input.decoder_settings import augkit_settings, quiet_libtiff
from augkit.core.errors import UsageError
from augkit.core.files import write_bytes_atomic
from augkit.input.image_checks import is_truncated as _is_truncated
from augkit.input.image_checks import jpeg_is_truncated as _jpeg_is_truncated
from augkit.input.image_checks import png_chunks as _png_chunks
from augkit.input.image_checks import png_crc_failure, size_problem
from augkit.input.image_checks import sniff as _sniff
from augkit.input.jpeg import JpegDamage, JpegHeader, strict_decode
from augkit.input.jpeg import jpeg_header as _jpeg_header

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
    limit = resolve_max_pixels(max_pixels)  # a bad setting is the caller's error, before any file
    # Reading the bytes ourselves (rather than cv2.imread) works for non-ASCII
    # paths on every platform and gives one code path for files and buffers.
    try:
        data = _read_regular_file(name)
    except FileNotFoundError:
        raise DecodeError(name, "missing", "file not found") from None
    except IsADirectoryError:
        raise DecodeError(name, "missing", "is a directory, not an image file") from None
    except OSError as e:
        raise DecodeError(name, "missing", f"cannot read file ({e.strerror or e})") from None
    return decode_bytes(data, name=name, max_pixels=limit)


# Opening a FIFO for reading waits for a writer, and reading a device may never end:
# only regular files are read. O_NONBLOCK makes the open itself return at once should
# the path become a FIFO between the stat and the open; on a regular file it changes
# nothing. O_BINARY: on Windows, os.open is otherwise a text-mode open.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _read_regular_file(name: str) -> bytes:
    _require_regular(name, os.stat(name).st_mode)
    with open(os.open(name, _OPEN_FLAGS), "rb") as f:
        _require_regular(name, os.fstat(f.fileno()).st_mode)
        return f.read()


def _require_regular(name: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(name)
    what = next((words for test, words in _NOT_REGULAR if test(mode)), "neither a file nor a folder")
    raise DecodeError(name, "not_an_image", f"is {what}, not a file; only regular files are read as images")


def decode_bytes(
    data: bytes, *, name: str = "<bytes>", max_pixels: int | None = None
) -> tuple[np.ndarray, ImageInfo]:
    """Decode an encoded image to RGB uint8 (H, W, 3). ``max_pixels=0`` disables the limit."""
    limit = resolve_max_pixels(max_pixels)
    if not data:
        raise DecodeError(name, "empty", "file is empty (0 bytes)")
    data = bytes(data)  # np.frombuffer and Pillow both want a real bytes object
    if data[:3] == b"\xff\xd8\xff":
        # Most inputs are plain JPEGs; _jpeg_header reads what Pillow's header
        # parse would tell us from the segment walk the truncation check needs anyway.
        header = _jpeg_header(data)
        if header is not None:
            result = _decode_jpeg_fast(data, header, name, limit)
            if result is not None:
                return result
    with augkit_settings():  # Pillow strict whatever the user's code set, OpenCV's log silent
        return _decode_general(data, name, limit)


def _decode_general(data: bytes, name: str, limit: int) -> tuple[np.ndarray, ImageInfo]:
    """Any format, header read by Pillow. The reference the JPEG fast path must match."""
    magic = _sniff(data)
    if magic == "TIFF" and _is_truncated(data, magic):
        raise _truncated(name)  # before Pillow reads the cut directory, with warnings on stderr
    img = _open_header(data, name)
    with img:
        width, height = img.size
        problem = size_problem(data, magic or img.format)  # e.g. a BMP's negative width, read unsigned
        if problem:
            raise DecodeError(name, "corrupt", f"damaged {magic or img.format} header ({problem})")
        if width <= 0 or height <= 0:
            raise DecodeError(name, "corrupt", f"header says the image is {width}x{height}")
        if limit and width * height > limit:
            raise _too_large(name, width, height, limit)
        fmt, mode = img.format or "?", img.mode
        orientation = _exif_orientation(img, data)
        try:
            frames = int(getattr(img, "n_frames", 1))
        except Exception:  # a broken later frame must not cost us frame 0
            frames = 1
        kind = magic or fmt  # an MPO is a JPEG
        if _is_truncated(data, kind):
            raise _truncated(name)
        if kind == "PNG":
            _check_png_crcs(data, name)

        notes: list[str] = []
        pixels, is_bgr = None, False
        if kind == "JPEG":  # JPEG or MPO: every one gets libjpeg's strict check (_strict_jpeg)
            if mode in ("RGB", "L"):
                pixels = _jpeg_rgb(data, mode, img.size, name)
            else:  # CMYK: Pillow's pixels (it knows Adobe's inverted CMYK), checked first
                _strict_jpeg(data, "CMYK" if mode == "CMYK" else "GRAY", name, min_factor=8)
        elif fmt == "PNG" and data[_PNG_BIT_DEPTH] == 16:
            pixels = _png16_samples(img, data, name)
        elif mode in _OPENCV_MODES.get(fmt, ()):
            may_have_alpha = "A" in img.mode or "transparency" in img.info
            pixels = _decode_opencv(data, img.size, may_have_alpha)
            is_bgr = pixels is not None
        already_upright = False
        if pixels is None:  # Pillow: 8-bit PNG, GIF, TIFF, CMYK JPEG, and what OpenCV refused
            if fmt == "TIFF":
                quiet_libtiff()
            pixels = _decode_pillow(img, name, notes)
            # Pillow's TIFF reader turns the image upright as it loads it and
            # drops the tag (TiffImagePlugin.load_end); turning it again would
            # rotate a 6 by 180 degrees. Asking the loaded image, rather than
            # naming TIFF, stays right if Pillow does this for more formats, or stops.
            already_upright = orientation != 1 and _exif_orientation(img, data) == 1
    rgb = _to_rgb_uint8(pixels, is_bgr, name, notes)
    if frames > 1 and fmt != "MPO":  # an MPO's extra frames are camera previews
        notes.insert(0, f"first frame of {frames}")
    return _upright(rgb, fmt, mode, frames, orientation, notes, already_upright=already_upright)


def _upright(
    rgb: np.ndarray, fmt: str, mode: str, frames: int, orientation: int, notes: list[str],
    *, already_upright: bool = False,
) -> tuple[np.ndarray, ImageInfo]:
    if orientation in _ORIENT_OPS:
        if not already_upright:
            rgb = _ORIENT_OPS[orientation](rgb)
        notes.append(f"EXIF orientation {orientation} applied")
    rgb = np.ascontiguousarray(rgb)
    if not rgb.flags.writeable:  # numpy's view of Pillow's bytes; callers may draw on the image
        rgb = rgb.copy()
    info = ImageInfo(fmt, rgb.shape[1], rgb.shape[0], mode, frames, orientation, tuple(notes))
    return rgb, info


def _too_large(name: str, width: int, height: int, limit: int) -> DecodeError:
    return DecodeError(
        name,
        "too_large",
        f"image is {width}x{height} ({_pixels(width * height)}), over the "
        f"{_pixels(limit)} limit; raise it with --max-pixels (max_pixels= from Python) or {MAX_PIXELS_ENV}",
    )


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} Mpx" if n >= 100_000 else f"{n:,} px"


def resolve_max_pixels(max_pixels: int | None = None) -> int:
    """The pixel limit decoding applies: ``max_pixels`` if given, else $AUGKIT_MAX_IMAGE_PIXELS,
    else Pillow's default; 0 means no limit. UsageError for anything but a whole number >= 0.

    Every decode calls it, so a worker would turn a bad value into one failure row per
    image: a command calls it once, before starting work, to report it once.
    """
    if max_pixels is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PIXELS
        return _whole_pixels(raw.replace("_", ""), f"{MAX_PIXELS_ENV}={raw!r}")
    return _whole_pixels(max_pixels, f"max_pixels={max_pixels!r}")


def _whole_pixels(value, setting: str) -> int:
    try:
        pixels = int(value)
    except (TypeError, ValueError):
        pixels = None
    fractional = pixels is not None and not isinstance(value, str) and pixels != value  # 1.5 is not 1
    if pixels is None or fractional or pixels < 0:
        raise UsageError(f"{setting} is not a pixel limit: give a whole number of pixels, such as "
                         f"{DEFAULT_MAX_PIXELS} (the default), or 0 for no limit")
    return pixels


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
        if kind == "PNG":
            _check_png_crcs(data, name)  # Pillow checks those of the chunks before the pixels
        problem = size_problem(data, kind)
        detail = f" ({problem})" if problem else "" if unidentified else f" ({e})"
        raise DecodeError(name, "corrupt", f"damaged {kind or 'image'} header{detail}") from None


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


# --- JPEG fast path ------------------------------------------------------------
# A plain JPEG skips Pillow: augkit.input.jpeg reads its header and decodes it strictly.


def _decode_jpeg_fast(
    data: bytes, header: JpegHeader, name: str, limit: int
) -> tuple[np.ndarray, ImageInfo] | None:
    """_decode_general's steps for a JPEG _jpeg_header understood, in the same order."""
    width, height = header.width, header.height
    if limit and width * height > limit:
        raise _too_large(name, width, height, limit)
    if _jpeg_is_truncated(data, header.scan):
        raise _truncated(name)
    rgb = _decode_turbojpeg(data, header, name)
    if rgb is None:
        return None  # libjpeg-turbo cannot decode it: _decode_general has Pillow try
    return _upright(rgb, "JPEG", header.mode, 1, header.orientation, [])


def _decode_turbojpeg(data: bytes, header: JpegHeader, name: str = "<bytes>") -> np.ndarray | None:
    """RGB pixels from simplejpeg (DecodeError where damaged), or None to let Pillow try.

    simplejpeg calls libjpeg-turbo's TurboJPEG API straight into the output array: 0.48 ms
    for a 500x375 JPEG against 0.58 ms for OpenCV's imdecode, with the same libjpeg-turbo
    (3.x), the same default (accurate) IDCT and upsampling, hence the same pixels (tests
    compare them over subsamplings, progressive scans, restart markers and odd sizes)."""
    return _jpeg_rgb(data, header.mode, (header.width, header.height), name)


def _jpeg_rgb(data: bytes, mode: str, size: tuple[int, int], name: str) -> np.ndarray | None:
    """An RGB or grey ("L") JPEG's pixels as RGB, by a strict decode (see _strict_jpeg)."""
    pixels = _strict_jpeg(data, "RGB" if mode == "RGB" else "GRAY", name)
    if pixels is None or pixels.shape[:2] != size[::-1]:
        return None
    return pixels if mode == "RGB" else cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)


def _strict_jpeg(data: bytes, colorspace: str, name: str, min_factor: int = 1) -> np.ndarray | None:
    """Pixels, or DecodeError where libjpeg warned (augkit.input.jpeg says why every warning
    counts), or None where libjpeg-turbo cannot decode the file and Pillow may."""
    try:
        return strict_decode(data, colorspace, min_factor)
    except JpegDamage as damage:
        if damage.truncated:
            raise _truncated(name) from None
        raise DecodeError(name, "corrupt", f"corrupt JPEG data (libjpeg: {damage.detail})") from None


def _check_png_crcs(data: bytes, name: str) -> None:
    chunk = png_crc_failure(data)
    if chunk is not None:
        raise DecodeError(name, "corrupt", f"damaged PNG data (the {chunk} chunk fails its CRC check)")


# --- pixel decoding --------------------------------------------------------

# Modes OpenCV decodes correctly. Not palette images, whose transparency OpenCV's BMP
# reader does not honour; not JPEGs, which simplejpeg decodes (see _strict_jpeg); not
# PNGs: OpenCV hands them to libpng, which prints its warnings and errors to stderr (an
# ICC profile it dislikes, a bad filter byte, data after the last row), naming no file,
# where Pillow raises or stays silent. Pillow decodes them (see _png16_samples for 16 bits).
_OPENCV_MODES = {
    "BMP": {"RGB", "L"},
    "WEBP": {"RGB", "RGBA"},
}
_PNG_BIT_DEPTH, _PNG_COLOR_TYPE = 24, 25  # offsets in IHDR, which is always the first chunk
# 16-bit colour PNGs: Pillow's raw modes for each sample's high byte (how it loads them)
# and for its low byte (the same samples read as little-endian).
_PNG16_RAW_MODES = {2: ("RGB;16B", "RGB;16L"), 6: ("RGBA;16B", "RGBA;16L")}


def _png16_samples(img: Image.Image, data: bytes, name: str) -> np.ndarray:
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


def _decode_opencv(data: bytes, size: tuple[int, int], may_have_alpha: bool) -> np.ndarray | None:
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
        raise _pillow_failure(e, name, fmt) from None


def _pillow_failure(e: Exception, name: str, fmt: str | None) -> DecodeError:
    """The DecodeError for what Pillow raised while loading pixels."""
    text = str(e) or type(e).__name__
    if isinstance(e, EOFError) or "truncated" in text:
        return _truncated(name)
    if any(s in text for s in ("not available", "not supported", "cannot find loader")):
        return DecodeError(name, "unsupported", f"cannot decode this kind of {fmt} ({text})")
    return DecodeError(name, "corrupt", f"corrupt image data ({text})")


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
