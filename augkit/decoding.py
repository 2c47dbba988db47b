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
"""

from __future__ import annotations

import ctypes
import glob
import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import PIL
import simplejpeg  # libjpeg-turbo's TurboJPEG API; its strict mode is what finds damaged JPEGs
from PIL import Image, UnidentifiedImageError

from augkit.files import write_bytes_atomic

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
    if data[:3] == b"\xff\xd8\xff":
        # Most inputs are plain JPEGs; _jpeg_header reads what Pillow's header
        # parse would tell us from the segment walk the truncation check needs anyway.
        header = _jpeg_header(data)
        if header is not None:
            result = _decode_jpeg_fast(data, header, name, limit)
            if result is not None:
                return result
    return _decode_general(data, name, limit)


def _decode_general(data: bytes, name: str, limit: int) -> tuple[np.ndarray, ImageInfo]:
    """Any format, header read by Pillow. The reference the JPEG fast path must match."""
    magic = _sniff(data)
    if magic == "TIFF" and _is_truncated(data, magic):
        raise _truncated(name)  # before Pillow reads the cut directory, with warnings on stderr
    img = _open_header(data, name)
    with img:
        width, height = img.size
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
        kind = magic or fmt  # an MPO is a JPEG; a BMP's "BM" is too short for _sniff to trust
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
        elif mode in _OPENCV_MODES.get(fmt, ()) and (fmt != "PNG" or data[_PNG_BIT_DEPTH] == 16):
            may_have_alpha = "A" in img.mode or "transparency" in img.info
            pixels = _decode_opencv(data, img.size, may_have_alpha)
            is_bgr = pixels is not None
        already_upright = False
        if pixels is None:  # Pillow: 8-bit PNG, GIF, TIFF, CMYK JPEG, and what the others refused
            if fmt == "TIFF":
                _quiet_libtiff()
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
        f"{_pixels(limit)} limit; raise it with --max-pixels or {MAX_PIXELS_ENV}",
    )


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
        if kind == "PNG":
            _check_png_crcs(data, name)  # Pillow checks those of the chunks before the pixels
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


def _jpeg_is_truncated(data: bytes, pos: int = 2) -> bool:
    # Walk segments from SOI to the first EOI. Stopping at that EOI (instead of
    # looking at the file's last markers) ignores data appended after the image,
    # e.g. the MP4 of a "motion photo", which can contain FF DA by chance.
    # ``pos`` lets _jpeg_header's walk hand over at the first SOS marker.
    n = len(data)
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
    if kind == "TIFF":
        return _tiff_is_truncated(data)
    if kind == "BMP":  # OpenCV, which decodes most BMPs, logs its error to stderr
        return _bmp_is_truncated(data)
    return False  # GIF: Pillow's "image file is truncated" error tells us


def _tiff_is_truncated(data: bytes) -> bool:
    """Whether the first IFD, or a strip or tile it points to, lies past the end of the file."""
    e, n = ("<" if data[:2] == b"II" else ">"), len(data)
    if n < 8:
        return True
    (ifd,) = struct.unpack_from(e + "L", data, 4)
    if ifd + 2 > n:
        return True
    (count,) = struct.unpack_from(e + "H", data, ifd)
    if ifd + 2 + 12 * count > n:
        return True
    values = {}
    for at in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind, number = struct.unpack_from(e + "HHL", data, at)
        if tag in _TIFF_PIXEL_DATA_TAGS and kind in (_TIFF_SHORT, _TIFF_LONG):
            size = 2 if kind == _TIFF_SHORT else 4
            where = at + 8 if number * size <= 4 else struct.unpack_from(e + "L", data, at + 8)[0]
            if where + number * size > n:
                return True
            values[tag] = np.frombuffer(data, e + f"u{size}", number, where).astype(np.int64)
    for offsets, counts in ((273, 279), (324, 325)):  # strips, tiles
        if offsets in values and counts in values:
            m = min(len(values[offsets]), len(values[counts]))
            if m and (values[offsets][:m] + values[counts][:m]).max() > n:
                return True
    return False


def _bmp_is_truncated(data: bytes) -> bool:
    """Whether an uncompressed BMP holds fewer pixel rows than its header promises."""
    if len(data) < 26:
        return True
    offset, header_size = struct.unpack_from("<II", data, 10)
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
        compression = 0
    elif header_size >= 40 and len(data) >= 34:
        width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    else:
        return False
    if compression not in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS; RLE: Pillow tells
        return False
    stride = (abs(width) * bits + 31) // 32 * 4
    return len(data) < offset + stride * abs(height)


def _check_png_crcs(data: bytes, name: str) -> None:
    """Every chunk must match its CRC: transfer damage and bit rot break it, and
    libpng would otherwise decide, chunk by chunk, to print a warning and go on."""
    view = memoryview(data)
    for kind, start, length in _png_chunks(data):
        (stored,) = struct.unpack_from(">I", data, start + length)
        if stored != zlib.crc32(view[start - 4 : start + length]):
            chunk = kind.decode("latin-1")
            raise DecodeError(name, "corrupt", f"damaged PNG data (the {chunk} chunk fails its CRC check)")


# --- JPEG fast path ----------------------------------------------------------
# For a JPEG, all that _decode_general learns from Pillow's header parse (size,
# mode, EXIF orientation; frames is always 1) lies in the segments before the
# first scan, which the truncation check walks anyway. Reading it there costs
# ~5 us instead of Image.open + getexif(): decode_bytes of a 500x375 JPEG went
# from 0.49 to 0.46 ms (bare imdecode + cvtColor: 0.43 ms), one core.
#
# The rule that keeps outputs and error reasons unchanged: _jpeg_header accepts
# only files that Pillow 13's JpegImagePlugin would open as format "JPEG" with
# the same size, mode and orientation, and answers None (-> _decode_general)
# for everything else, including each malformed segment that makes Image.open
# fail there. Its checks mirror that plugin; tests compare the two paths.


class _JpegHeader(NamedTuple):
    width: int
    height: int
    mode: str  # "RGB" or "L": the JPEG modes _decode_general sends to OpenCV
    orientation: int  # as _exif_orientation would return it
    scan: int  # offset of the first SOS marker, where _jpeg_is_truncated resumes


# Huffman-coded 8-bit DCT frames: baseline, extended sequential, progressive.
# The other SOFs (lossless, hierarchical, arithmetic) are rare; Pillow decides.
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2))
_JPEG_SKIPPED = frozenset((0xC4, 0xDD, 0xFE))  # DHT, DRI, COM: Pillow just skips them
_JPEG_MODES = {1: "L", 3: "RGB"}  # component count -> Pillow's mode; 4 (CMYK) needs Pillow
_XMP_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')  # Image.getexif's fallback
# Bytes per value of each TIFF field type Pillow loads (TiffImagePlugin._load_dispatch).
_TIFF_UNIT_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
_TIFF_SHORT, _TIFF_LONG, _TIFF_RATIONAL = 3, 4, 5
_TIFF_PIXEL_DATA_TAGS = frozenset((273, 279, 324, 325))  # StripOffsets/ByteCounts, TileOffsets/ByteCounts
_u16 = struct.Struct(">H").unpack_from


def _jpeg_header(data: bytes) -> _JpegHeader | None:
    """What Pillow's header parse would tell _decode_general, or None to let Pillow tell it."""
    pos, n = 2, len(data)
    sof = exif = xmp = None
    jfif_dpi = False
    while True:
        if pos + 4 > n or data[pos] != 0xFF:
            return None  # cut short, or junk between segments (which Pillow skips)
        while data[pos + 1] == 0xFF:  # fill bytes before a marker, as _jpeg_is_truncated
            pos += 1
            if pos + 4 > n:
                return None
        marker = data[pos + 1]
        (length,) = _u16(data, pos + 2)
        body, end = pos + 4, pos + 2 + length
        if length < 2 or end > n:
            return None  # Pillow misreads it or reports a truncated file
        if marker == 0xDA:  # start of scan: Pillow stops reading the header here
            break
        if marker in _JPEG_SOF:
            if sof is not None:
                return None
            sof = (body, end)
        elif marker == 0xDB:
            # Pillow rejects a DQT whose tables do not fill it exactly.
            table = body
            while table < end:
                table += 65 if data[table] < 16 else 129  # 8- or 16-bit entries
            if table != end:
                return None
        elif 0xE0 <= marker <= 0xEF:
            # The APPn segments Pillow interprets; a prefix alone is harmless.
            size = end - body
            if marker == 0xE0 and data.startswith(b"JFIF", body, end):
                if size < 7:
                    return None  # Pillow fails reading the JFIF version
                # A JFIF density in dots per inch/cm stops Pillow reading the DPI from EXIF.
                jfif_dpi = jfif_dpi or (size >= 12 and data[body + 7] in (1, 2))
            elif marker == 0xE1 and data.startswith(b"Exif\x00\x00", body, end):
                if exif is not None:
                    return None  # Pillow joins several Exif segments; rare
                exif = (body + 6, end)
            elif marker == 0xE1 and data.startswith(_XMP_PREFIX, body, end):
                xmp = (body + len(_XMP_PREFIX), end)  # Pillow keeps the last one
            elif marker == 0xE2 and data.startswith(b"MPF\x00", body, end):
                return None  # multi-picture (MPO, Ultra HDR): Pillow may open it as "MPO"
            elif marker == 0xE2 and data.startswith(b"ICC_PROFILE\x00", body, end) and size < 14:
                return None  # Pillow fails reading the chunk's sequence number
            elif marker == 0xED and data.startswith(b"Photoshop 3.0\x00", body, end):
                if not _photoshop_irb_ok(data[body:end]):
                    return None
            elif marker == 0xEE and data.startswith(b"Adobe", body, end) and size < 7:
                return None  # Pillow fails reading the Adobe version
        elif marker not in _JPEG_SKIPPED:
            return None  # other SOFs, DAC, DNL, DHP, EXP, JPGn, TEM, RSTn, SOI, EOI, FF00
        pos = end

    if sof is None:
        return None
    sof_body, sof_end = sof
    # SOF body: precision, height, width, component count, then 3 bytes a component.
    if sof_end - sof_body < 6:
        return None
    precision, components = data[sof_body], data[sof_body + 5]
    height, width = _u16(data, sof_body + 1)[0], _u16(data, sof_body + 3)[0]
    mode = _JPEG_MODES.get(components)
    if precision != 8 or mode is None or sof_end - sof_body != 6 + 3 * components:
        return None  # 12-bit, CMYK/YCCK or a malformed frame header: Pillow's path
    if width == 0 or height == 0:
        return None  # Pillow refuses it (a height of 0 would come from a DNL marker)
    orientation = _jpeg_orientation(data, exif, xmp, jfif_dpi)
    if orientation is None:
        return None
    return _JpegHeader(width, height, mode, orientation, pos)


def _jpeg_orientation(
    data: bytes, exif: tuple[int, int] | None, xmp: tuple[int, int] | None, jfif_dpi: bool
) -> int | None:
    """``_exif_orientation`` of what Pillow would read, or None when unsure.

    ``exif`` and ``xmp`` are (start, end) offsets of the segments' payloads.
    """
    tags: dict[int, tuple[int, int]] = {}
    endian = ">"
    if exif is not None:
        start, end = exif
        if data.startswith(b"Exif\x00\x00", start, end):
            start += 6  # Pillow strips the prefix up to twice
        if start < end:
            found = _tiff_ifd0(data, start, end)
            if found is None:
                return None
            tags, endian = found
        # Unless JFIF gave a density, Pillow's JPEG open reads the DPI from EXIF
        # (ResolutionUnit, then XResolution); with odd field types there,
        # Image.open itself can fail. The standard types cannot.
        resolution_unit, x_resolution = tags.get(0x0128), tags.get(0x011A)
        if not jfif_dpi and resolution_unit is not None:
            if resolution_unit[0] != _TIFF_SHORT:
                return None
            if x_resolution is not None and x_resolution[0] != _TIFF_RATIONAL:
                return None
    if 0x0112 in tags:
        kind, at = tags[0x0112]
        if kind != _TIFF_SHORT:
            return None  # Pillow converts other types in its own ways
        (value,) = struct.unpack_from(endian + "H", data, at)  # the first, if several
    elif xmp is not None:  # Image.getexif falls back to XMP's tiff:Orientation
        match = _XMP_ORIENTATION.search(data, *xmp)
        value = int(match[2]) if match else 1
    else:
        value = 1
    return value if 1 <= value <= 8 else 1


def _tiff_ifd0(data: bytes, start: int, end: int) -> tuple[dict[int, tuple[int, int]], str] | None:
    """IFD0 of the TIFF structure in data[start:end] as Pillow loads it.

    Gives ({tag: (field type, offset of the value in data)}, struct byte order),
    or None where Pillow would refuse the header or stop reading partway.
    """
    size = end - start
    head = data[start : start + 4]
    endian = "<" if head == b"II*\x00" else ">" if head == b"MM\x00*" else None
    if endian is None or size < 8:
        return None  # not TIFF, or BigTIFF, or byte-swapped magic Pillow tolerates
    (ifd,) = struct.unpack_from(endian + "L", data, start + 4)
    if ifd + 2 > size:
        return None
    (count,) = struct.unpack_from(endian + "H", data, start + ifd)
    if ifd + 2 + 12 * count > size:
        return None  # Pillow keeps the entries before the cut; rare, let it
    entry = struct.Struct(endian + "HHLL")
    tags: dict[int, tuple[int, int]] = {}
    out_of_line = 0
    for at in range(start + ifd + 2, start + ifd + 2 + 12 * count, 12):
        tag, kind, n, offset = entry.unpack_from(data, at)
        # The same skips as ImageFileDirectory_v2.load: the first copy of a tag
        # wins, unknown types and empty values are ignored.
        if tag in tags or kind not in _TIFF_UNIT_SIZE:
            continue
        nbytes = n * _TIFF_UNIT_SIZE[kind]
        if nbytes == 0:
            continue
        if nbytes <= 4:  # stored in the entry itself
            tags[tag] = (kind, at + 8)
            continue
        out_of_line += nbytes
        if out_of_line > size:
            continue  # "Tag data larger than file": Pillow skips the tag
        if offset + nbytes > size:
            return None  # Pillow stops loading the IFD here
        tags[tag] = (kind, start + offset)
    return tags, endian


def _photoshop_irb_ok(s: bytes) -> bool:
    """False where Pillow's APP13 parser raises IndexError, which fails Image.open.

    It walks the 8BIM resource blocks as JpegImagePlugin.APP does; running out
    of data in a struct read ends that walk quietly, so it ends this one too.
    """
    offset = 14
    while s[offset : offset + 4] == b"8BIM":
        offset += 4
        if offset + 2 > len(s):
            return True
        code = _u16(s, offset)[0]
        offset += 2
        if offset >= len(s):
            return False  # the name length byte: IndexError in Pillow
        offset += 1 + s[offset]
        offset += offset & 1
        if offset + 4 > len(s):
            return True
        (size,) = struct.unpack_from(">L", s, offset)
        offset += 4
        if code == 0x03ED and len(s[offset : offset + size]) < 14:
            return True  # ResolutionInfo too short to read
        offset += size
        offset += offset & 1
    return True


def _decode_jpeg_fast(
    data: bytes, header: _JpegHeader, name: str, limit: int
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


def _decode_turbojpeg(data: bytes, header: _JpegHeader, name: str = "<bytes>") -> np.ndarray | None:
    """RGB pixels from simplejpeg (DecodeError where damaged), or None to let Pillow try.

    simplejpeg calls libjpeg-turbo's TurboJPEG API straight into the output array: 0.48 ms
    for a 500x375 JPEG against 0.58 ms for OpenCV's imdecode, with the same libjpeg-turbo
    (3.x), the same default (accurate) IDCT and upsampling, hence the same pixels (tests
    compare them over subsamplings, progressive scans, restart markers and odd sizes)."""
    return _jpeg_rgb(data, header.mode, (header.width, header.height), name)


# --- JPEG: damage inside the data ---------------------------------------------
# Past damaged entropy-coded data libjpeg warns and carries on: what it cannot
# decode comes out grey, or as garbage once it has lost step. OpenCV prints the
# warning to stderr, naming no file, and returns the image; Pillow returns it
# silently. simplejpeg's strict mode raises the first warning instead, with
# libjpeg's text, and prints nothing: so every JPEG's pixels come from, or are
# first checked by, a strict decode, at no cost for a whole file.
#
# The text alone cannot say whether pixels were lost: "N extraneous bytes before
# marker 0xd9" is what junk between the last scan and the end marker gives, and
# equally what one flipped bit in mid-scan gives once the decoder, out of step,
# finishes early with half the image garbage. So a warning is excused only where
# no pixel data can be involved: before the first scan (junk after a metadata
# segment, a JFIF version libjpeg does not know), which is proved by removing
# the cause and decoding strictly again. Any other warning is "corrupt", or
# "truncated" where the data ran out. Much damage draws no warning at all (a
# JPEG has no checksum): no decoder can report that, and none is claimed.

# libjpeg-turbo's warnings (JWRN_* in jerror.h). Any other message is a fatal
# error, met before any warning: damage that stops libjpeg (Pillow, which then
# tries, fails too) or a kind of JPEG the TurboJPEG API does not decode.
_LIBJPEG_WARNINGS = (
    "Corrupt JPEG data",
    "Premature end of JPEG file",
    "Inconsistent progression sequence",
    "Invalid SOS parameters for sequential JPEG",
    "Unknown Adobe color transform code",
    "Warning: unknown JFIF revision number",
    "Application transferred too many scanlines",
)
_TURBOJPEG_PREFIX = re.compile(r"^\w+\(\): ")  # "tjDecompressHeader3(): ..."
_JPEG_NEXT_MARKER = re.compile(rb"\xff+[^\x00\xff]")  # as libjpeg's next_marker: FF00 is data
# SOI, APPn (but Adobe's, which says how to convert colours) and COM: what junk may follow harmlessly.
_JPEG_METADATA = frozenset((0xD8, *range(0xE0, 0xEE), 0xEF, 0xFE))


def _jpeg_rgb(data: bytes, mode: str, size: tuple[int, int], name: str) -> np.ndarray | None:
    """An RGB or grey ("L") JPEG's pixels as RGB, by a strict decode (see _strict_jpeg)."""
    pixels = _strict_jpeg(data, "RGB" if mode == "RGB" else "GRAY", name)
    if pixels is None or pixels.shape[:2] != size[::-1]:
        return None
    return pixels if mode == "RGB" else cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)


def _strict_jpeg(data: bytes, colorspace: str, name: str, min_factor: int = 1) -> np.ndarray | None:
    """Pixels, or DecodeError where libjpeg warned, or None where it cannot decode the file.

    ``min_factor`` > 1 scales the output down when only the check is wanted: the
    entropy-coded data, where the warnings come from, is read in full all the same.
    """
    try:
        return simplejpeg.decode_jpeg(data, colorspace, strict=True, min_factor=min_factor)
    except (ValueError, RuntimeError) as e:
        message = _TURBOJPEG_PREFIX.sub("", str(e))
    if not message.startswith(_LIBJPEG_WARNINGS):
        return None
    repaired = _jpeg_without_header_junk(data)
    if repaired is not None:  # the warning may have been about that alone: ask again without it
        return _strict_jpeg(repaired, colorspace, name, min_factor)
    if message.startswith("Premature end of JPEG file"):
        raise _truncated(name)
    detail = message.removeprefix("Corrupt JPEG data: ")
    raise DecodeError(name, "corrupt", f"corrupt JPEG data (libjpeg: {detail})")


def _jpeg_without_header_junk(data: bytes) -> bytes | None:
    """The JPEG without what libjpeg warns about before the first scan but decodes
    the same without: bytes between segments after a metadata segment, and a JFIF
    major version other than 1. None if it has neither.

    Junk after a table or frame header is not excused: it may be the rest of a
    segment whose length field was damaged, of which libjpeg then read a part.
    """
    out, pos, previous, changed = bytearray(data[:2]), 2, 0xD8, False
    while True:
        found = _JPEG_NEXT_MARKER.search(data, pos)
        if found is None:
            return None
        if found.start() > pos:
            if previous not in _JPEG_METADATA:
                return None
            changed = True
        marker, start, body = data[found.end() - 1], found.end() - 2, found.end()
        if marker == 0xDA:
            return bytes(out + data[start:]) if changed else None
        if marker == 0x01 or 0xD0 <= marker <= 0xD9 or body + 2 > len(data):
            return None
        segment = bytearray(data[start : body + _u16(data, body)[0]])
        if marker == 0xE0 and segment[4:9] == b"JFIF\x00" and len(segment) > 9 and segment[9] != 1:
            segment[9] = 1
            changed = True
        out += segment
        previous, pos = marker, body + _u16(data, body)[0]


# --- pixel decoding --------------------------------------------------------

# Modes OpenCV decodes correctly (libpng also turns a PNG's tRNS colour key into
# alpha). Not palette images, whose transparency OpenCV's BMP/PNG readers do not
# all honour; not JPEGs, which simplejpeg decodes (see _strict_jpeg). PNGs only
# when 16-bit, where Pillow would keep the high byte of RGB instead of rounding:
# libpng prints its warnings and errors to stderr (an ICC profile it dislikes, a
# bad filter byte), where Pillow raises or stays silent.
_OPENCV_MODES = {
    "PNG": {"RGB", "RGBA", "L", "LA", "1", "I", "I;16", "I;16B"},
    "BMP": {"RGB", "L"},
    "WEBP": {"RGB", "RGBA"},
}
_PNG_BIT_DEPTH = 24  # offset of the bit depth in IHDR, which is always the first chunk


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


_libtiff_quiet = False


def _quiet_libtiff() -> None:
    """Stop the libtiff that Pillow uses printing its errors to stderr.

    Such a line names no file, and Pillow raises for the same failure ("decoder
    error -2"), which becomes the file's DecodeError; Pillow mutes libtiff's
    warnings itself. Process-wide, once, best effort: the library is found where
    Linux maps it, or where Pillow's macOS wheel keeps it (on Windows it is inside
    Pillow's own module, out of reach).
    """
    global _libtiff_quiet
    if _libtiff_quiet:
        return
    _libtiff_quiet = True
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libtiff" in line}
    except OSError:
        paths = set(glob.glob(os.path.join(os.path.dirname(PIL.__file__), ".dylibs", "libtiff*")))
    for path in paths:
        try:
            ctypes.CDLL(path).TIFFSetErrorHandler(None)
        except (OSError, AttributeError):
            pass


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
