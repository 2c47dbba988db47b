"""Reading image files into RGB uint8 arrays: the decoding policy.

Every image enters augkit through :func:`decode_bytes`, so the rules that decide
what a pixel means live here, once, for every format:

* output is RGB uint8 (H, W, 3), C-contiguous; multi-frame files give frame 0;
* alpha is composited on WHITE (as img2dataset does), as a browser shows a
  transparent logo, rather than on black;
* 16-bit (and 32-bit, float) samples are SCALED to 8 bits with rounding, never
  clipped, so a 16-bit image keeps its tones instead of saturating to white;
* EXIF orientation is applied by us, the same way whichever library decoded;
* given a ``size_hint`` (what the caller's first resize needs), a JPEG is decoded at the
  smallest of 1/2, 1/4 and 1/8 of its size that still gives it (:mod:`augkit.input.reduced`
  holds the rule); without one, every image is decoded whole;
* the pixel count is checked from the header alone, before any decoding, so a
  tiny "decompression bomb" costs nothing;
* a file whose pixels cannot all be decoded (cut short, or damaged where a
  decoder notices) is an error, never an image partly grey or garbage, and the
  decoders' own complaints become that error's message instead of lines on stderr.

Failures never leak cv2.error or Pillow exceptions: they are DecodeError, with
a ``reason`` code a caller can count and a one-line message a person can act on.

The code that does the work lives beside it, so this module reads as the policy:
``image_checks`` and ``jpeg`` parse untrusted bytes by hand (truncation, CRCs, impossible
header sizes; the JPEG header walk and libjpeg's strict decode), ``pixels`` asks OpenCV
or Pillow for the pixels and makes any of them RGB uint8, ``decode_error`` is the one
error they raise. ``encoding`` writes images back out.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from augkit.core.errors import UsageError
from augkit.input.decode_error import DecodeError, truncated
from augkit.input.decoder_settings import augkit_settings, quiet_libtiff
from augkit.input.image_checks import is_truncated as _is_truncated
from augkit.input.image_checks import jpeg_is_truncated as _jpeg_is_truncated
from augkit.input.image_checks import png_chunks as _png_chunks
from augkit.input.image_checks import png_crc_failure, size_problem
from augkit.input.image_checks import sniff as _sniff
from augkit.input.jpeg import JpegDamage, JpegHeader, strict_decode
from augkit.input.jpeg import jpeg_header as _jpeg_header
from augkit.input.reduced import SizeHint, displayed, reduced_size, reduction
from augkit.input.shards import ShardMember
from augkit.input.pixels import OPENCV_MODES, PNG_BIT_DEPTH, decode_opencv, decode_pillow, png16_samples, to_rgb_uint8

# We enforce our own limit (before decoding, with a better message); Pillow's
# would warn at 89 Mpx and raise at twice that, independently of ours.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default, so behaviour matches what users know
MAX_PIXELS_ENV = "AUGKIT_MAX_IMAGE_PIXELS"


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name for the container: "JPEG", "PNG", "MPO", ...
    width: int  # of the returned array, i.e. after EXIF orientation
    height: int
    mode: str  # Pillow's mode of the stored pixels: "RGB", "I;16", "CMYK", "P", ...
    frames: int
    orientation: int  # EXIF orientation as stored (1 when absent)
    notes: tuple[str, ...] = ()
    scale: int = 1  # decoded at 1/scale of the stored size (a size_hint's reduced decode)


def decode_image(path, *, max_pixels: int | None = None, size_hint: SizeHint | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) of the image file at ``path``; see :func:`decode_bytes`."""
    return decode_image_with_info(path, max_pixels=max_pixels, size_hint=size_hint)[0]


def decode_image_with_info(path, *, max_pixels: int | None = None,
                           size_hint: SizeHint | None = None) -> tuple[np.ndarray, ImageInfo]:
    name = os.fsdecode(path)
    limit = resolve_max_pixels(max_pixels)  # a bad setting is the caller's error, before any file
    # Reading the bytes ourselves (rather than cv2.imread) works for non-ASCII
    # paths on every platform and gives one code path for files and buffers.
    try:
        data = name.read() if isinstance(name, ShardMember) else _read_regular_file(name)  # a shard's member: by offset
    except FileNotFoundError:
        raise DecodeError(name, "missing", "file not found") from None
    except IsADirectoryError:
        raise DecodeError(name, "missing", "is a directory, not an image file") from None
    except OSError as e:
        raise DecodeError(name, "missing", f"cannot read file ({e.strerror or e})") from None
    return decode_bytes(data, name=name, max_pixels=limit, size_hint=size_hint)


# Opening a FIFO for reading waits for a writer, and reading a device may never end:
# only regular files are read. O_NONBLOCK makes the open itself return at once should
# the path become a FIFO between the stat and the open; on a regular file it changes
# nothing. O_BINARY: on Windows, os.open is otherwise a text-mode open.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _read_regular_file(name: str) -> bytes:
    with _open_regular(name) as f:
        return f.read()


def open_sample(path):
    """A sample's bytes as a binary file to read (a header, say) the way the decoder reads
    them: a regular file (never a FIFO or a device), or a shard member as a bounded view of
    its shard (:meth:`ShardMember.open`). DecodeError for what is not a usable image file,
    OSError as ``open`` raises it."""
    name = os.fsdecode(path)
    return name.open() if isinstance(name, ShardMember) else _open_regular(name)


def header_size(path) -> tuple[int, int] | None:
    """(height, width) of a sample as displayed, from its header alone (Pillow opens lazily
    and reads no pixels; a JPEG's EXIF orientation 5-8 turns it a quarter), or None when the
    header cannot be read (decoding it will say why). A cheap guess for planning: decoding
    is the truth (TIFF orientation, say, is not read here)."""
    try:
        # A file (never a FIFO, whose open would block) or a shard's member, as decoding reads it.
        with open_sample(path) as f, Image.open(f) as img:
            w, h = img.size
            if img.format in ("JPEG", "MPO") and img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                h, w = w, h
    except Exception:  # noqa: BLE001 - any reader error: unknown here, a failure row later
        return None
    return h, w


def _open_regular(name: str):
    _require_regular(name, os.stat(name).st_mode)
    f = open(os.open(name, _OPEN_FLAGS), "rb")
    try:
        _require_regular(name, os.fstat(f.fileno()).st_mode)
    except BaseException:
        f.close()
        raise
    return f


def _require_regular(name: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(name)
    what = next((words for test, words in _NOT_REGULAR if test(mode)), "neither a file nor a folder")
    raise DecodeError(name, "not_an_image", f"is {what}, not a file; only regular files are read as images")


def decode_bytes(
    data: bytes, *, name: str = "<bytes>", max_pixels: int | None = None, size_hint: SizeHint | None = None
) -> tuple[np.ndarray, ImageInfo]:
    """Decode an encoded image to RGB uint8 (H, W, 3). ``max_pixels=0`` disables the limit.

    ``size_hint``: what the caller's first resize needs (:class:`~augkit.input.reduced.SizeHint`);
    a JPEG is then decoded at the smallest DCT scale that still gives it, which
    ``ImageInfo.scale`` reports. The pixel limit applies to the stored size all the same."""
    limit = resolve_max_pixels(max_pixels)
    if not data:
        raise DecodeError(name, "empty", "file is empty (0 bytes)")
    data = bytes(data)  # np.frombuffer and Pillow both want a real bytes object
    if data[:3] == b"\xff\xd8\xff":
        # Most inputs are plain JPEGs; _jpeg_header reads what Pillow's header
        # parse would tell us from the segment walk the truncation check needs anyway.
        header = _jpeg_header(data)
        if header is not None:
            result = _decode_jpeg_fast(data, header, name, limit, size_hint)
            if result is not None:
                return result
    with augkit_settings():  # Pillow strict whatever the user's code set, OpenCV's log silent
        return _decode_general(data, name, limit, size_hint)


def _decode_general(data: bytes, name: str, limit: int, hint: SizeHint | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Any format, header read by Pillow. The reference the JPEG fast path must match."""
    magic = _sniff(data)
    if magic == "TIFF" and _is_truncated(data, magic):
        raise truncated(name)  # before Pillow reads the cut directory, with warnings on stderr
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
            raise truncated(name)
        if kind == "PNG":
            _check_png_crcs(data, name)

        notes: list[str] = []
        pixels, is_bgr, scale = None, False, 1
        if kind == "JPEG":  # JPEG or MPO: every one gets libjpeg's strict check (_strict_jpeg)
            scale = reduction(*displayed(height, width, orientation), hint)
            if mode in ("RGB", "L"):
                pixels = _jpeg_rgb(data, mode, img.size, name, scale)
                scale = scale if pixels is not None else 1  # else Pillow decodes it whole, below
            else:  # CMYK: Pillow's pixels (it knows Adobe's inverted CMYK), checked first
                _strict_jpeg(data, "CMYK" if mode == "CMYK" else "GRAY", name, check_only=True)
                scale = _pillow_draft(img, scale)
        elif fmt == "PNG" and data[PNG_BIT_DEPTH] == 16:
            pixels = png16_samples(img, data, name)
        elif mode in OPENCV_MODES.get(fmt, ()):
            may_have_alpha = "A" in img.mode or "transparency" in img.info
            pixels = decode_opencv(data, img.size, may_have_alpha)
            is_bgr = pixels is not None
        already_upright = False
        if pixels is None:  # Pillow: 8-bit PNG, GIF, TIFF, CMYK JPEG, and what OpenCV refused
            if fmt == "TIFF":
                quiet_libtiff()
            pixels = decode_pillow(img, name, notes)
            # Pillow's TIFF reader turns the image upright as it loads it and
            # drops the tag (TiffImagePlugin.load_end); turning it again would
            # rotate a 6 by 180 degrees. Asking the loaded image, rather than
            # naming TIFF, stays right if Pillow does this for more formats, or stops.
            already_upright = orientation != 1 and _exif_orientation(img, data) == 1
    rgb = to_rgb_uint8(pixels, is_bgr, name, notes)
    if frames > 1 and fmt != "MPO":  # an MPO's extra frames are camera previews
        notes.insert(0, f"first frame of {frames}")
    return _upright(rgb, fmt, mode, frames, orientation, notes, already_upright=already_upright, scale=scale)


def _upright(
    rgb: np.ndarray, fmt: str, mode: str, frames: int, orientation: int, notes: list[str],
    *, already_upright: bool = False, scale: int = 1,
) -> tuple[np.ndarray, ImageInfo]:
    if scale > 1:
        notes.append(f"decoded at 1/{scale} scale")
    if orientation in _ORIENT_OPS:
        if not already_upright:
            rgb = _ORIENT_OPS[orientation](rgb)
        notes.append(f"EXIF orientation {orientation} applied")
    rgb = np.ascontiguousarray(rgb)
    if not rgb.flags.writeable:  # numpy's view of Pillow's bytes; callers may draw on the image
        rgb = rgb.copy()
    info = ImageInfo(fmt, rgb.shape[1], rgb.shape[0], mode, frames, orientation, tuple(notes), scale)
    return rgb, info


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
            raise truncated(name) from None
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
    data: bytes, header: JpegHeader, name: str, limit: int, hint: SizeHint | None = None
) -> tuple[np.ndarray, ImageInfo] | None:
    """_decode_general's steps for a JPEG _jpeg_header understood, in the same order."""
    width, height = header.width, header.height
    if limit and width * height > limit:
        raise _too_large(name, width, height, limit)
    if _jpeg_is_truncated(data, header.scan):
        raise truncated(name)
    scale = reduction(*displayed(height, width, header.orientation), hint)
    rgb = _jpeg_rgb(data, header.mode, (width, height), name, scale)
    if rgb is None:
        return None  # libjpeg-turbo cannot decode it: _decode_general has Pillow try
    return _upright(rgb, "JPEG", header.mode, 1, header.orientation, [], scale=scale)


def _decode_turbojpeg(data: bytes, header: JpegHeader, name: str = "<bytes>") -> np.ndarray | None:
    """A plain JPEG's RGB pixels, whole, from simplejpeg (see _jpeg_rgb)."""
    return _jpeg_rgb(data, header.mode, (header.width, header.height), name)


def _jpeg_rgb(data: bytes, mode: str, size: tuple[int, int], name: str, scale: int = 1) -> np.ndarray | None:
    """An RGB or grey ("L") JPEG's pixels as RGB, at 1/``scale`` of its (width, height)
    ``size``, by a strict decode (see _strict_jpeg); None to let Pillow try.

    simplejpeg calls libjpeg-turbo's TurboJPEG API straight into the output array, faster
    than OpenCV's imdecode (benchmarks/RESULTS.md, 2026-11-29: "Plain JPEGs decoded through
    libjpeg-turbo's TurboJPEG API") with the same libjpeg-turbo (3.x), the same default
    (accurate) IDCT and upsampling, hence the same pixels (tests compare them over
    subsamplings, progressive scans, restart markers and odd sizes)."""
    expected = reduced_size(size[1], size[0], scale)
    pixels = _strict_jpeg(data, "RGB" if mode == "RGB" else "GRAY", name, expected if scale > 1 else (0, 0))
    if pixels is None or pixels.shape[:2] != expected:
        return None
    return pixels if mode == "RGB" else cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)


def _pillow_draft(img: Image.Image, scale: int) -> int:
    """Have Pillow decode a JPEG at 1/``scale`` (libjpeg's DCT scaling, as simplejpeg's);
    returns the scale it will decode at. Pillow picks the largest of 8, 4, 2 that fits the
    size it is asked for, which is exactly ``scale`` when both reduced sides are at least
    ``scale``; smaller images, which no hint shrinks that far anyway, are decoded whole."""
    width, height = img.size
    if scale == 1 or min(width, height) // scale < scale or len(img.tile) != 1:
        return 1
    img.draft(img.mode, (width // scale, height // scale))
    return scale if img.size == reduced_size(height, width, scale)[::-1] else 1


def _strict_jpeg(data: bytes, colorspace: str, name: str, at_least: tuple[int, int] = (0, 0),
                 check_only: bool = False) -> np.ndarray | None:
    """Pixels, or DecodeError where libjpeg warned (augkit.input.jpeg says why every warning
    counts), or None where libjpeg-turbo cannot decode the file and Pillow may.
    ``at_least``: (height, width) of the smallest DCT scale wanted; ``check_only``: the
    smallest scale there is, as only the warnings matter."""
    try:
        return strict_decode(data, colorspace, *((1, 1) if check_only else at_least))
    except JpegDamage as damage:
        if damage.truncated:
            raise truncated(name) from None
        raise DecodeError(name, "corrupt", f"corrupt JPEG data (libjpeg: {damage.detail})") from None


def _check_png_crcs(data: bytes, name: str) -> None:
    chunk = png_crc_failure(data)
    if chunk is not None:
        raise DecodeError(name, "corrupt", f"damaged PNG data (the {chunk} chunk fails its CRC check)")
