"""Image files as users have them, good and bad, built in code (no binary fixtures).

Used by the modules that run whole datasets (augment, and later stats and batches);
test_decoding.py covers each case in depth.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
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


# --- damaged files ------------------------------------------------------------------
# Each builder damages one whole file in one way, deterministically. Most are damage a
# decoder meets with only a warning while returning an image (libjpeg greys what it
# cannot decode, or decodes garbage once out of step, and says so on stderr only;
# OpenCV or Pillow with LOAD_TRUNCATED_IMAGES take a cut file), the rest are cut or
# damaged files a decoder refuses after printing about them. Damage that no decoder
# notices at all (most flipped bits in a JPEG, lossy WebP or LZW data: no checksum
# covers them) is not here: nobody can report it.


def damage_source(seed: int = 7) -> np.ndarray:
    """The picture every damaged file is made from: 120x160, enough scan to damage mid-way."""
    return make_structured_rgb(120, 160, seed)


def _jpeg(progressive: bool = False, **kw) -> bytes:
    return encoded(damage_source(), "JPEG", quality=90, progressive=progressive, **kw)


def _jpeg_scans(jpeg: bytes) -> list[tuple[int, int]]:
    """(start, end) of the entropy-coded data of each scan, restart markers included."""
    scans, pos = [], jpeg.index(b"\xff\xda")
    while pos >= 0:
        start = pos + 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
        end = start
        while not (jpeg[end] == 0xFF and jpeg[end + 1] not in (0x00, *range(0xD0, 0xD8))):
            end += 1
        scans.append((start, end))
        pos = jpeg.find(b"\xff\xda", end)
    return scans


def _mid_scan(jpeg: bytes, scan: int = 0) -> int:
    """An offset halfway through the entropy-coded data of scan number ``scan``."""
    start, end = _jpeg_scans(jpeg)[scan]
    return (start + end) // 2


# libjpeg's default progression starts with the DC scan, then the first luminance AC
# scan. Damage there is noticed; in the last refinement scans, which only add one bit
# of precision, libjpeg notices nothing.
_FIRST_AC_SCAN = 1


def _inverted(data: bytes, at: int, n: int) -> bytes:
    return data[:at] + bytes(b ^ 0xFF for b in data[at : at + n]) + data[at + n :]


def jpeg_damaged_mid_scan() -> bytes:
    """Eight bytes inverted halfway through a baseline scan: libjpeg, out of step, finishes
    early and warns about the bytes left over; half the image is garbage."""
    jpeg = _jpeg()
    return _inverted(jpeg, _mid_scan(jpeg), 8)


def progressive_jpeg_damaged_mid_scan() -> bytes:
    """Eight bytes inverted halfway through the first AC scan of a progressive JPEG."""
    jpeg = _jpeg(progressive=True)
    return _inverted(jpeg, _mid_scan(jpeg, _FIRST_AC_SCAN), 8)


def jpeg_with_bytes_zeroed_mid_scan() -> bytes:
    """64 bytes zeroed halfway through a scan with a restart marker every 4 MCUs: libjpeg
    reads the zeros as valid codes, meets the next restart marker with blocks still to
    decode, warns and greys them. (Zeros in a scan without restart markers often pass
    unnoticed: libjpeg falls back into step and nothing is left over or missing.)"""
    params = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_RST_INTERVAL, 4]
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(damage_source(), cv2.COLOR_RGB2BGR), params)[1].tobytes()
    at = _mid_scan(jpeg)
    return jpeg[:at] + bytes(64) + jpeg[at + 64 :]


def jpeg_with_chunk_cut_from_scan() -> bytes:
    """200 bytes missing from the middle of the scan; the file still ends with EOI."""
    jpeg = _jpeg()
    at = _mid_scan(jpeg)
    return jpeg[:at] + jpeg[at + 200 :]


def progressive_jpeg_with_chunk_cut_from_scan() -> bytes:
    jpeg = _jpeg(progressive=True)
    at = _mid_scan(jpeg, _FIRST_AC_SCAN)
    return jpeg[:at] + jpeg[at + 200 :]


def jpeg_with_marker_in_scan() -> bytes:
    """An end-of-image marker inside the scan: libjpeg stops there, warns, and greys the rest."""
    jpeg = _jpeg()
    at = _mid_scan(jpeg)
    return jpeg[:at] + b"\xff\xd9" + jpeg[at + 2 :]


def cmyk_jpeg_with_chunk_cut_from_scan() -> bytes:
    """The same damage where Pillow, not libjpeg-turbo's RGB output, gives the pixels."""
    jpeg = encoded(Image.fromarray(damage_source()).convert("CMYK"), "JPEG", quality=90)
    at = _mid_scan(jpeg)
    return jpeg[:at] + jpeg[at + 200 :]


def jpeg_with_junk_before_end_marker() -> bytes:
    """Ten bytes between the last scan and EOI. libjpeg gives the warning it gives for
    jpeg_damaged_mid_scan, and nothing tells the two apart: not excused."""
    jpeg = _jpeg()
    return jpeg[:-2] + bytes(10) + jpeg[-2:]


def jpeg_with_junk_after_end_marker() -> bytes:
    """Bytes after EOI (a motion photo's video, a download's padding): no pixel lost."""
    return _jpeg() + b"\x00" * 16 + b"trailing garbage"


def jpeg_with_junk_between_header_segments() -> bytes:
    """A stray byte after the JFIF segment, before any table: libjpeg warns and skips it."""
    jpeg = _jpeg()
    app0_end = 4 + struct.unpack_from(">H", jpeg, 4)[0]
    return jpeg[:app0_end] + b"\x00" + jpeg[app0_end:]


def truncated_jpeg() -> bytes:
    jpeg = _jpeg()
    return jpeg[: _mid_scan(jpeg)]


def _png(image: np.ndarray | None = None) -> bytes:
    return encoded(damage_source() if image is None else image, "PNG")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_idat_at(png: bytes) -> int:
    return png.index(b"IDAT") - 4


def png_with_bad_idat_crc() -> bytes:
    """The IDAT chunk's CRC damaged: its data may be whole, nobody can prove it."""
    png = bytearray(_png())
    at = _png_idat_at(png)
    crc_at = at + 8 + struct.unpack_from(">I", png, at)[0]
    png[crc_at] ^= 0xFF
    return bytes(png)


def png_with_damaged_idat_data() -> bytes:
    """Forty bytes zeroed inside the compressed pixels; the CRC no longer matches."""
    png = bytearray(_png())
    at = _png_idat_at(png) + 8 + 200
    png[at : at + 40] = bytes(40)
    return bytes(png)


def png_with_bad_ancillary_crc() -> bytes:
    """A text chunk after the pixels, its CRC damaged (libpng warns; Pillow reads past it)."""
    png = _png()
    text = bytearray(_png_chunk(b"tEXt", b"Comment\x00scanned at 300 dpi"))
    text[-1] ^= 0xFF
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + bytes(text) + png[iend:]


def _png_rows(image: np.ndarray) -> bytearray:
    """The image as PNG scanlines, each behind filter byte 0 (none)."""
    return bytearray(b"".join(b"\x00" + row.tobytes() for row in image))


def _png_from_rows(image: np.ndarray, rows: bytes) -> bytes:
    png = _png(image)
    return png[: _png_idat_at(png)] + _png_chunk(b"IDAT", zlib.compress(bytes(rows))) + _png_chunk(b"IEND", b"")


def png_with_bad_filter_byte() -> bytes:
    """Row 60's filter byte is 7 (there are 0-4); the CRCs are right: a broken encoder."""
    image = damage_source()
    rows = _png_rows(image)
    rows[60 * (1 + image.shape[1] * 3)] = 7
    return _png_from_rows(image, rows)


def png_with_data_after_the_last_row() -> bytes:
    """Compressed data beyond the last scanline (libpng warns "Too much image data"):
    every row is there."""
    image = damage_source()
    return _png_from_rows(image, _png_rows(image) + bytes(300))


def truncated_png() -> bytes:
    png = _png()
    return png[: len(png) // 2]


def _webp(lossless: bool = False) -> bytes:
    return encoded(damage_source(), "WEBP", quality=90, lossless=lossless)


def _webp_with_chunk_body(webp: bytes, body: bytes) -> bytes:
    """A one-chunk WebP (RIFF header + VP8/VP8L chunk) with a new chunk body, sizes rewritten."""
    pad = b"\x00" * (len(body) & 1)
    chunk = webp[12:16] + struct.pack("<I", len(body)) + body + pad
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_with_vp8_data_cut_short() -> bytes:
    """A lossy WebP missing the second half of its VP8 data, its RIFF sizes rewritten to
    match: the container looks whole, the bitstream ends early."""
    webp = _webp()
    size = struct.unpack_from("<I", webp, 16)[0]
    return _webp_with_chunk_body(webp, webp[20 : 20 + size // 2])


def lossless_webp_with_data_cut_short() -> bytes:
    webp = _webp(lossless=True)
    size = struct.unpack_from("<I", webp, 16)[0]
    return _webp_with_chunk_body(webp, webp[20 : 20 + size // 2])


def truncated_webp() -> bytes:
    webp = _webp()
    return webp[: len(webp) // 2]


def _gif() -> bytes:
    return encoded(Image.fromarray(damage_source()).quantize(), "GIF")


def gif_with_damaged_lzw_data() -> bytes:
    """Eight bytes of 0xFF in the middle of the LZW data: codes no table holds yet."""
    gif = bytearray(_gif())
    at = len(gif) // 2
    gif[at : at + 8] = b"\xff" * 8
    return bytes(gif)


def truncated_gif() -> bytes:
    gif = _gif()
    return gif[: len(gif) // 2]


def _tiff(**kw) -> bytes:
    return encoded(damage_source(), "TIFF", **kw)


def truncated_tiff() -> bytes:
    tiff = _tiff()
    return tiff[: len(tiff) // 2]


def tiff_with_strip_cut_short() -> bytes:
    """A deflate-compressed TIFF whose single strip lost its last 1000 bytes (the IFD,
    before the strip, is whole)."""
    tiff = _tiff(compression="tiff_adobe_deflate")
    return tiff[:-1000]


def tiff_with_damaged_deflate_strip() -> bytes:
    """Bytes inverted inside a deflate-compressed strip: zlib's checksum fails, and
    libtiff would print so on stderr."""
    tiff = _tiff(compression="tiff_adobe_deflate")
    return _inverted(tiff, len(tiff) // 2, 16)


def truncated_bmp() -> bytes:
    bmp = encoded(damage_source(), "BMP")
    return bmp[: len(bmp) // 2]


def damaged_files() -> dict[str, tuple[bytes, bytes | None]]:
    """File name -> (damaged file, the undamaged file where the damage provably costs no
    pixel, else None). The names say what each is; decoding must give the undamaged
    file's pixels exactly, or fail with reason corrupt or truncated."""
    return {
        "jpeg damaged mid scan.jpg": (jpeg_damaged_mid_scan(), None),
        "progressive jpeg damaged mid scan.jpg": (progressive_jpeg_damaged_mid_scan(), None),
        "jpeg with bytes zeroed mid scan.jpg": (jpeg_with_bytes_zeroed_mid_scan(), None),
        "jpeg with chunk cut from scan.jpg": (jpeg_with_chunk_cut_from_scan(), None),
        "progressive jpeg with chunk cut from scan.jpg": (progressive_jpeg_with_chunk_cut_from_scan(), None),
        "jpeg with marker in scan.jpg": (jpeg_with_marker_in_scan(), None),
        "cmyk jpeg with chunk cut from scan.jpg": (cmyk_jpeg_with_chunk_cut_from_scan(), None),
        "jpeg with junk before end marker.jpg": (jpeg_with_junk_before_end_marker(), None),
        "jpeg with junk after end marker.jpg": (jpeg_with_junk_after_end_marker(), _jpeg()),
        "jpeg with junk between header segments.jpg": (jpeg_with_junk_between_header_segments(), _jpeg()),
        "truncated jpeg.jpg": (truncated_jpeg(), None),
        "png with bad idat crc.png": (png_with_bad_idat_crc(), None),
        "png with damaged idat data.png": (png_with_damaged_idat_data(), None),
        "png with bad ancillary crc.png": (png_with_bad_ancillary_crc(), None),
        "png with bad filter byte.png": (png_with_bad_filter_byte(), None),
        "png with data after the last row.png": (png_with_data_after_the_last_row(), _png()),
        "truncated png.png": (truncated_png(), None),
        "webp with vp8 data cut short.webp": (webp_with_vp8_data_cut_short(), None),
        "lossless webp with data cut short.webp": (lossless_webp_with_data_cut_short(), None),
        "truncated webp.webp": (truncated_webp(), None),
        "gif with damaged lzw data.gif": (gif_with_damaged_lzw_data(), None),
        "truncated gif.gif": (truncated_gif(), None),
        "truncated tiff.tif": (truncated_tiff(), None),
        "tiff with strip cut short.tif": (tiff_with_strip_cut_short(), None),
        "tiff with damaged deflate strip.tif": (tiff_with_damaged_deflate_strip(), None),
        "truncated bmp.bmp": (truncated_bmp(), None),
    }


# --- files other decoders print about -----------------------------------------------
# libpng (through OpenCV) prints warnings and errors about these, naming no file, and
# OpenCV logs a line when it refuses a BMP that Pillow reads. Some are whole images.


def _sixteen_bit_png(chunks: bytes = b"", rows: bytes | None = None) -> bytes:
    """A 16-bit grey PNG of damage_source()'s red channel, ``chunks`` before its IDAT,
    ``rows`` (its scanlines, filter bytes included) instead of its own if given."""
    grey = damage_source()[..., 0].astype(">u2") * 257
    if rows is None:
        rows = b"".join(b"\x00" + row.tobytes() for row in grey)
    png = encoded(Image.fromarray(grey.astype(np.uint16)), "PNG")
    return png[: _png_idat_at(png)] + chunks + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")


def sixteen_bit_png_with_a_short_icc_profile() -> bytes:
    """libpng: "iCCP: too short", a warning; every pixel is there."""
    return _sixteen_bit_png(_png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"x" * 200)))


def sixteen_bit_png_with_data_after_the_last_row() -> bytes:
    """libpng: "IDAT: Too much image data", a warning; every pixel is there."""
    grey = damage_source()[..., 0].astype(">u2") * 257
    return _sixteen_bit_png(rows=b"".join(b"\x00" + row.tobytes() for row in grey) + bytes(300))


def sixteen_bit_png_with_bad_filter_byte() -> bytes:
    """libpng: "bad adaptive filter value", an error."""
    grey = damage_source()[..., 0].astype(">u2") * 257
    rows = bytearray(b"".join(b"\x00" + row.tobytes() for row in grey))
    rows[60 * (1 + 2 * grey.shape[1])] = 7
    return _sixteen_bit_png(rows=bytes(rows))


def sixteen_bit_png_with_ihdr_twice() -> bytes:
    """libpng: "IHDR: out of place", an error."""
    png = _sixteen_bit_png()
    return _sixteen_bit_png(png[8 : 8 + 25])


def bmp_with_more_colours_than_8_bits_hold() -> bytes:
    """An 8-bit grey BMP whose header counts 257 palette colours: Pillow reads it, OpenCV
    refuses it and logs an assertion on stderr."""
    grey = damage_source()[..., 0]
    h, w = grey.shape
    stride = (w + 3) // 4 * 4
    palette = b"".join(bytes((i % 256, i % 256, i % 256, 0)) for i in range(257))
    offset = 14 + 40 + len(palette)
    rows = b"".join(row.tobytes() + bytes(stride - w) for row in grey[::-1])
    header = struct.pack("<2sIHHI", b"BM", offset + len(rows), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(rows), 2835, 2835, 257, 0)
    return header + info + palette + rows


def noisy_files() -> dict[str, bytes]:
    """File name -> a file that another decoder prints about (decoded or refused, augkit
    must print nothing)."""
    return {
        "16-bit png with a short icc profile.png": sixteen_bit_png_with_a_short_icc_profile(),
        "16-bit png with data after the last row.png": sixteen_bit_png_with_data_after_the_last_row(),
        "16-bit png with bad filter byte.png": sixteen_bit_png_with_bad_filter_byte(),
        "16-bit png with ihdr twice.png": sixteen_bit_png_with_ihdr_twice(),
        "bmp with more colours than 8 bits hold.bmp": bmp_with_more_colours_than_8_bits_hold(),
    }


def _tiff_with_entry(tag: int, kind: int, count: int, value: int) -> bytes:
    """damage_source() as an uncompressed little-endian TIFF, one IFD entry rewritten."""
    tiff = bytearray(encoded(damage_source(), "TIFF"))
    ifd = struct.unpack_from("<I", tiff, 4)[0]
    for at in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from("<H", tiff, ifd)[0], 12):
        if struct.unpack_from("<H", tiff, at)[0] == tag:
            struct.pack_into("<HHII", tiff, at, tag, kind, count, value)
    return bytes(tiff)


def tiff_whose_tag_claims_more_data_than_the_file_holds() -> bytes:
    """BitsPerSample said to hold a million values: Pillow warns "Tag data larger than
    file", which Python prints on stderr, and skips the tag."""
    return _tiff_with_entry(258, 3, 1_000_000, 134)


def tiff_with_thousands_of_samples_per_pixel() -> bytes:
    """SamplesPerPixel 23811: Pillow logs "More samples per pixel than can be decoded"
    through the logging module, which prints on stderr when no handler is set."""
    return _tiff_with_entry(277, 3, 1, 23811)


def noisy_pillow_files() -> dict[str, bytes]:
    """File name -> a file Pillow warns or logs about (Python prints both on stderr)."""
    return {
        "tiff whose tag claims more data than the file holds.tif": tiff_whose_tag_claims_more_data_than_the_file_holds(),
        "tiff with thousands of samples per pixel.tif": tiff_with_thousands_of_samples_per_pixel(),
    }
