"""JPEG files read by hand: the header, and libjpeg's strict decode.

Most inputs are plain JPEGs, so two things get their own code instead of Pillow's:

**The header walk** (:func:`jpeg_header`). All that decoding's general path learns from
Pillow's header parse (size, mode, EXIF orientation; frames is always 1) lies in the
segments before the first scan, which the truncation check walks anyway. Why it is kept,
measured against Pillow on real photos and damaged files (benchmarks/RESULTS.md, "The
JPEG header walk against Pillow"): the walk costs a fraction of Image.open + getexif()
and lets a plain JPEG skip the rest of the general path, which saves a few per cent of
every JPEG decode; should it ever disagree with a new Pillow, removing it is the fix, not
following Pillow. The rule that keeps outputs and error reasons unchanged: jpeg_header
accepts only files that Pillow 13's JpegImagePlugin would open as format "JPEG" with the
same size, mode and orientation, and answers None (-> Pillow) for everything else,
including each malformed segment that makes Image.open fail there. Its checks mirror that
plugin; tests compare the two paths.

**The strict decode** (:func:`strict_decode`), which finds damage inside the data.
Past damaged entropy-coded data libjpeg warns and carries on: what it cannot
decode comes out grey, or as garbage once it has lost step. OpenCV prints the
warning to stderr, naming no file, and returns the image; Pillow returns it
silently. simplejpeg's strict mode raises the first warning instead, with
libjpeg's text, and prints nothing: so every JPEG's pixels come from, or are
first checked by, a strict decode, at no cost for a whole file.

The text alone cannot say whether pixels were lost: "N extraneous bytes before
marker 0xd9" is what junk between the last scan and the end marker gives, and
equally what one flipped bit in mid-scan gives once the decoder, out of step,
finishes early with half the image garbage. So a warning is excused only where
no pixel data can be involved: before the first scan (junk after a metadata
segment, a JFIF version libjpeg does not know), which is proved by removing
the cause and decoding strictly again. Any other warning is "corrupt", or
"truncated" where the data ran out. Much damage draws no warning at all (a
JPEG has no checksum): no decoder can report that, and none is claimed.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

import numpy as np
import simplejpeg  # libjpeg-turbo's TurboJPEG API; its strict mode is what finds damaged JPEGs


class JpegDamage(Exception):
    """libjpeg warned while decoding strictly: pixels were lost (``truncated``: the data ran out)."""

    def __init__(self, truncated: bool, detail: str):
        super().__init__(truncated, detail)
        self.truncated = truncated
        self.detail = detail


class JpegHeader(NamedTuple):
    width: int
    height: int
    mode: str  # "RGB" or "L": the JPEG modes libjpeg-turbo decodes to RGB for us
    orientation: int  # as decoding._exif_orientation would return it
    scan: int  # offset of the first SOS marker, where image_checks.jpeg_is_truncated resumes


# Huffman-coded 8-bit DCT frames: baseline, extended sequential, progressive.
# The other SOFs (lossless, hierarchical, arithmetic) are rare; Pillow decides.
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2))
_JPEG_SKIPPED = frozenset((0xC4, 0xDD, 0xFE))  # DHT, DRI, COM: Pillow just skips them
_JPEG_MODES = {1: "L", 3: "RGB"}  # component count -> Pillow's mode; 4 (CMYK) needs Pillow
_XMP_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')  # Image.getexif's fallback
# Bytes per value of each TIFF field type Pillow loads (TiffImagePlugin._load_dispatch).
_TIFF_UNIT_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
_TIFF_SHORT, _TIFF_RATIONAL = 3, 5
_u16 = struct.Struct(">H").unpack_from


def jpeg_header(data: bytes) -> JpegHeader | None:
    """What Pillow's header parse would tell decoding._decode_general, or None to let Pillow tell it."""
    seen = _segments(data)
    if seen is None or seen.sof is None:
        return None
    sof_body, sof_end = seen.sof
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
    orientation = _jpeg_orientation(data, seen.exif, seen.xmp, seen.jfif_dpi)
    if orientation is None:
        return None
    return JpegHeader(width, height, mode, orientation, seen.scan)


class _Seen:
    """What the segments before the first scan hold, as (start, end) offsets of payloads."""

    def __init__(self) -> None:
        self.sof: tuple[int, int] | None = None
        self.exif: tuple[int, int] | None = None
        self.xmp: tuple[int, int] | None = None
        self.jfif_dpi = False  # a JFIF density in dots per inch/cm: Pillow then reads no DPI from EXIF
        self.scan = 0  # offset of the first SOS marker


def _segments(data: bytes) -> _Seen | None:
    """Walk the segments up to the first scan as Pillow's JpegImagePlugin does, or None where
    Pillow would fail, read them differently, or open the file as something else."""
    pos, n = 2, len(data)
    seen = _Seen()
    while True:
        if pos + 4 > n or data[pos] != 0xFF:
            return None  # cut short, or junk between segments (which Pillow skips)
        while data[pos + 1] == 0xFF:  # fill bytes before a marker, as image_checks.jpeg_is_truncated
            pos += 1
            if pos + 4 > n:
                return None
        marker = data[pos + 1]
        (length,) = _u16(data, pos + 2)
        body, end = pos + 4, pos + 2 + length
        if length < 2 or end > n:
            return None  # Pillow misreads it or reports a truncated file
        if marker == 0xDA:  # start of scan: Pillow stops reading the header here
            seen.scan = pos
            return seen
        if marker in _JPEG_SOF:
            if seen.sof is not None:
                return None
            seen.sof = (body, end)
        elif marker == 0xDB:
            # Pillow rejects a DQT whose tables do not fill it exactly.
            table = body
            while table < end:
                table += 65 if data[table] < 16 else 129  # 8- or 16-bit entries
            if table != end:
                return None
        elif 0xE0 <= marker <= 0xEF:
            if not _app_segment(data, marker, body, end, seen):
                return None
        elif marker not in _JPEG_SKIPPED:
            return None  # other SOFs, DAC, DNL, DHP, EXP, JPGn, TEM, RSTn, SOI, EOI, FF00
        pos = end


def _app_segment(data: bytes, marker: int, body: int, end: int, seen: _Seen) -> bool:
    """Read an APPn segment Pillow interprets into ``seen``; False where Pillow would fail on
    it or open the file as another format. A prefix alone is harmless."""
    size = end - body
    if marker == 0xE0 and data.startswith(b"JFIF", body, end):
        if size < 7:
            return False  # Pillow fails reading the JFIF version
        seen.jfif_dpi = seen.jfif_dpi or (size >= 12 and data[body + 7] in (1, 2))
    elif marker == 0xE1 and data.startswith(b"Exif\x00\x00", body, end):
        if seen.exif is not None:
            return False  # Pillow joins several Exif segments; rare
        seen.exif = (body + 6, end)
    elif marker == 0xE1 and data.startswith(_XMP_PREFIX, body, end):
        seen.xmp = (body + len(_XMP_PREFIX), end)  # Pillow keeps the last one
    elif marker == 0xE2 and data.startswith(b"MPF\x00", body, end):
        return False  # multi-picture (MPO, Ultra HDR): Pillow may open it as "MPO"
    elif marker == 0xE2 and data.startswith(b"ICC_PROFILE\x00", body, end) and size < 14:
        return False  # Pillow fails reading the chunk's sequence number
    elif marker == 0xED and data.startswith(b"Photoshop 3.0\x00", body, end):
        return _photoshop_irb_ok(data[body:end])
    elif marker == 0xEE and data.startswith(b"Adobe", body, end) and size < 7:
        return False  # Pillow fails reading the Adobe version
    return True


def _jpeg_orientation(
    data: bytes, exif: tuple[int, int] | None, xmp: tuple[int, int] | None, jfif_dpi: bool
) -> int | None:
    """``decoding._exif_orientation`` of what Pillow would read, or None when unsure.

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


def strict_decode(data: bytes, colorspace: str, min_height: int = 0, min_width: int = 0) -> np.ndarray | None:
    """Pixels, or JpegDamage where libjpeg warned, or None where it cannot decode the file.

    ``min_height``, ``min_width`` (0: the full size): decode at the smallest of libjpeg's
    DCT scales (M/8) that still gives at least that many rows and columns
    (augkit.input.reduced chooses them); (1, 1) when only the check is wanted. Either way
    the entropy-coded data, where the warnings come from, is read in full.
    (simplejpeg's ``min_factor`` alone scales nothing: the scale follows from these two.)
    """
    try:
        return simplejpeg.decode_jpeg(data, colorspace, strict=True, min_height=min_height, min_width=min_width)
    except (ValueError, RuntimeError) as e:
        message = _TURBOJPEG_PREFIX.sub("", str(e))
    if not message.startswith(_LIBJPEG_WARNINGS):
        return None
    repaired = _jpeg_without_header_junk(data)
    if repaired is not None:  # the warning may have been about that alone: ask again without it
        return strict_decode(repaired, colorspace, min_height, min_width)
    if message.startswith("Premature end of JPEG file"):
        raise JpegDamage(truncated=True, detail=message)
    raise JpegDamage(truncated=False, detail=message.removeprefix("Corrupt JPEG data: "))


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
