"""What an encoded image's own structure says, read before any decoder sees the file.

decoding.py asks these questions of every file; they live apart because they are
the part of decoding that parses untrusted bytes by hand, and each answer stands in
for a decoder that would otherwise print to stderr, or return a partial image:

* :func:`sniff`: the format named by the magic bytes alone;
* :func:`is_truncated`: a file cut short must be reported as such, never returned as
  a half-grey image. These read only markers and chunk headers, so they are cheap,
  and they tell "truncated" apart from "corrupt" without parsing decoder messages;
* :func:`png_crc_failure`: a PNG chunk whose data no longer matches its checksum;
* :func:`size_problem`: a width or height the format does not allow, which a reader
  taking the field as unsigned would report as billions of pixels.

Nothing here raises for a malformed file: every function answers, and decoding.py
turns the answer into a DecodeError that names the file.
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np

_TIFF_SHORT, _TIFF_LONG = 3, 4
_TIFF_PIXEL_DATA_TAGS = frozenset((273, 279, 324, 325))  # StripOffsets/ByteCounts, TileOffsets/ByteCounts


def sniff(data: bytes) -> str | None:
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
    if data[:2] == b"BM" and len(data) >= 18 and struct.unpack_from("<I", data, 14)[0] in _BMP_HEADER_SIZES:
        return "BMP"  # "BM" alone is too short to trust; with a known header size it is a BMP
    return None


_BMP_HEADER_SIZES = frozenset((12, 40, 52, 56, 64, 108, 124))  # OS/2 1.x, Windows 3 to 5, Adobe's, OS/2 2.x


_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # FF00 = stuffing, D0-D7 = restarts


def jpeg_is_truncated(data: bytes, pos: int = 2) -> bool:
    # Walk segments from SOI to the first EOI. Stopping at that EOI (instead of
    # looking at the file's last markers) ignores data appended after the image,
    # e.g. the MP4 of a "motion photo", which can contain FF DA by chance.
    # ``pos`` lets augkit.input.jpeg.jpeg_header's walk hand over at the first SOS marker.
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


def png_chunks(data: bytes):
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


def is_truncated(data: bytes, kind: str | None) -> bool:
    # ``kind`` comes from _sniff, not Pillow: this also runs when Pillow could
    # not open the file at all.
    if kind == "JPEG":
        return jpeg_is_truncated(data)
    if kind == "PNG":
        return not any(chunk == b"IEND" for chunk, _, _ in png_chunks(data))
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


def _bmp_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(offset of the pixels, width, height, bits per pixel, compression) as a BMP's
    header stores them, or None where it is too short or of a kind not read here.

    Width and height are signed in every header but OS/2's first: a negative height
    is a top-down image (valid), a negative width is damage. Pillow reads the width as
    unsigned, so -30 would be 4294967266 pixels wide.
    """
    if len(data) < 26:
        return None
    offset, header_size = struct.unpack_from("<II", data, 10)
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
        return offset, width, height, bits, 0
    if header_size >= 40 and len(data) >= 34:
        width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
        return offset, width, height, bits, compression
    return None


def _bmp_is_truncated(data: bytes) -> bool:
    """Whether an uncompressed BMP holds fewer pixel rows than its header promises."""
    header = _bmp_header(data)
    if header is None:
        return len(data) < 26
    offset, width, height, bits, compression = header
    if compression not in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS; RLE: Pillow tells
        return False
    stride = (abs(width) * bits + 31) // 32 * 4
    return len(data) < offset + stride * abs(height)


_PNG_MAX_SIDE = 2**31 - 1  # the PNG specification's limit for either side


def size_problem(data: bytes, kind: str | None) -> str | None:
    """Why the width or height in the header cannot be right, or None.

    For the formats whose size fields a reader can take with the wrong sign or range
    (BMP: signed; PNG: at most 2**31 - 1). The others store sizes in 14 to 16 bits,
    or as TIFF's unsigned 32-bit fields, which any reader takes as written.
    """
    if kind == "BMP":
        header = _bmp_header(data)
        if header is not None and (header[1] <= 0 or header[2] in (0, -(2**31))):
            return f"it says the image is {header[1]}x{header[2]} pixels"
    elif kind == "PNG" and len(data) >= 24:
        width, height = struct.unpack_from(">II", data, 16)
        if not (0 < width <= _PNG_MAX_SIDE and 0 < height <= _PNG_MAX_SIDE):
            return f"it says the image is {width}x{height} pixels; PNG allows 1 to {_PNG_MAX_SIDE:,} a side"
    return None


def png_crc_failure(data: bytes) -> str | None:
    """The type of the first chunk that fails its CRC, or None. Transfer damage and bit
    rot break CRCs, and libpng would otherwise decide, chunk by chunk, to warn and go on."""
    view = memoryview(data)
    for kind, start, length in png_chunks(data):
        (stored,) = struct.unpack_from(">I", data, start + length)
        if stored != zlib.crc32(view[start - 4 : start + length]):
            return kind.decode("latin-1")
    return None
