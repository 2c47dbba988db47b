"""Writing RGB uint8 images out: one encoder call per format, and whole files or nothing.

The decoder's twin: :mod:`augkit.input.decoding` reads every image augkit takes in, this
module writes every image it puts out (``augkit augment``, the preview grid, the stats plot).

A picture a command writes as its one output file (the preview grid, ``stats --plot``,
``predict --plot``, train-head's ``confusion.png``) names augkit and the command inside
(``mark=``): a PNG ``tEXt`` chunk ``Software: augkit <command>``, a JPEG comment, a WebP
chunk, all of which viewers ignore. :func:`written_by` reads it back, so a rerun may
replace its own picture and never a photo of the user's (:func:`augkit.core.files.check_output_file`).
"""

from __future__ import annotations

import os
import struct
import zlib
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
_PNG = b"\x89PNG\r\n\x1a\n"
_SOFTWARE = b"Software\x00augkit"  # the PNG mark's keyword and text; a command's name follows
_JPEG_MARK = b"augkit"  # a JPEG comment (COM segment) right after SOI, then the command
_WEBP_MARK = b"AUGK"  # a WebP chunk of this (unknown, so ignored) type: "augkit <command>"
_HEAD = 128  # bytes read to find a PNG's or a JPEG's mark


def encode_image(image: np.ndarray, fmt: str = "jpg", quality: int = 95, *, mark: str | None = None) -> bytes:
    """Encode RGB uint8 (H, W, 3) as jpg/jpeg, png or webp. Same input, same bytes.
    ``mark``: the command writing it, named inside the file (see :func:`written_by`)."""
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
    return buf.tobytes() if mark is None else marked(buf.tobytes(), mark)


def marked(data: bytes, command: str) -> bytes:
    """An encoded PNG, JPEG or WebP that names augkit and ``command`` inside."""
    text = f"augkit {command}".encode()
    if data.startswith(_PNG):
        chunk = b"tEXt" + _SOFTWARE + b" " + command.encode()
        end_of_header = len(_PNG) + 8 + 13 + 4  # IHDR: length, type, 13 bytes, CRC
        return (data[:end_of_header] + struct.pack(">I", len(chunk) - 4) + chunk
                + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF) + data[end_of_header:])
    if data.startswith(b"\xff\xd8"):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_marked(data, text)
    raise ValueError("can only mark a PNG, a JPEG or a WebP")


def _webp_marked(data: bytes, text: bytes) -> bytes:
    """The WebP in the extended format (a VP8X chunk first: unknown chunks are allowed
    there, and readers skip them), with a chunk holding ``text`` after the image."""
    body = data[12:]
    if body[:4] != b"VP8X":
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        h, w = image.shape[:2]
        flags = 0x10 if image.ndim == 3 and image.shape[2] == 4 else 0  # alpha
        vp8x = bytes([flags, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
        body = b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x + body
    chunk = _WEBP_MARK + struct.pack("<I", len(text)) + text + (b"\x00" if len(text) % 2 else b"")
    body += chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def written_by(path) -> str | None:
    """The command an augkit-marked PNG, JPEG or WebP at ``path`` names ("" for a picture
    marked before marks named the command); None for any other file, or none."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                f.seek(-min(os.fstat(f.fileno()).st_size, _HEAD), os.SEEK_END)
                tail = f.read()
                at = tail.rfind(_WEBP_MARK)
                return _command(tail[at + 8:].rstrip(b"\x00")) if at >= 0 else None
    except OSError:
        return None
    if head.startswith(_PNG) and head[len(_PNG) + 29:len(_PNG) + 33] == b"tEXt":
        length = struct.unpack(">I", head[len(_PNG) + 25:len(_PNG) + 29])[0]
        text = head[len(_PNG) + 33:len(_PNG) + 33 + length]
        return _command(b"augkit" + text[len(_SOFTWARE):]) if text.startswith(_SOFTWARE) else None
    if head.startswith(b"\xff\xd8\xff\xfe"):
        length = struct.unpack(">H", head[4:6])[0]
        return _command(head[6:4 + length])
    return None


def _command(text: bytes) -> str | None:
    if text == _JPEG_MARK:
        return ""
    if text.startswith(_JPEG_MARK + b" "):
        return text[len(_JPEG_MARK) + 1:].decode("utf-8", "replace")
    return None


def write_image_atomic(path, image: np.ndarray, fmt: str | None = None, quality: int = 95, *,
                       parents: bool = True, mark: str | None = None) -> None:
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
    write_bytes_atomic(path, encode_image(image, fmt, quality, mark=mark), parents=parents)
