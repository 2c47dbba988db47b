#!/usr/bin/env python3
"""Fuzz augkit's decoder, as Pillow and libjpeg-turbo are fuzzed: real image files,
mutated, must each give a whole RGB image or a DecodeError, and nothing else.

The contract checked for every input (:func:`verdict`): ``decode_bytes`` returns an RGB
uint8 (H, W, 3) C-contiguous, writable array whose size its ImageInfo states, or raises
DecodeError with a reason in REASONS and a one-line message; any other exception, a
Python warning or a byte on file descriptor 2 is a finding. Each input runs in a sandbox
process (:class:`Sandbox`) whose address space is capped (RLIMIT_AS) and whose answer
is awaited for a bounded time, so a decoder that allocates without bound, crashes or
never returns is a finding too, and the run goes on in a fresh sandbox.

An input is a seed file (:func:`seed_files`: JPEG baseline and progressive, PNG 8 and
16-bit, palette, alpha, interlaced, WebP, GIF, TIFF, BMP) and a list of mutations, each
a name and an integer that seeds its own choices (:func:`mutate`): bit flips,
interesting bytes and words, truncation, insertion, deletion, duplication, splicing with
another seed, huge or impossible declared sizes written where each format keeps them,
and repairs (PNG CRCs, RIFF sizes) that carry damage past the container checks to the
codecs. tests/test_fuzz_decoding.py draws them with hypothesis (a short, derandomized
pass in CI); this script draws them from a seeded PRNG, for long runs:

    python tools/fuzz_decoder.py --inputs 1000000 --jobs 2 --findings fuzz-findings/

Each finding is written to the findings folder as the input file and a .json saying what
happened and how to rebuild it (seed, mutations). Exit status 1 if there was any.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
import zlib
from pathlib import Path

import numpy as np

DEFAULT_MAX_PIXELS = 1 << 22  # 4.2 Mpx: the limit is a parameter; a small one keeps each input fast
DEFAULT_MEMORY_MB = 1024  # address space a sandbox may add to what it holds after its imports
DEFAULT_TIMEOUT_S = 10.0  # per input; decodes of these small files take about a millisecond


# --- seed files ---------------------------------------------------------------------------


def _picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Gradients, edges and noise: what photos have, so codecs use their full machinery."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 60 + 120 * (x / w) + 40 * np.sin(y / 3.0)
    rgb = np.stack([base + 30 * (y / h), 0.8 * base + 20 * np.cos(x / 5.0),
                    0.5 * base + 60 * ((x // 8 + y // 8) % 2)], axis=-1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _pillow(image, fmt: str, **kw) -> bytes:
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _interlaced_png(rgb: np.ndarray) -> bytes:
    """An 8-bit Adam7-interlaced PNG (Pillow writes none), every row with filter 0."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    rows = b"".join(b"\x00" + row.tobytes() for x0, y0, dx, dy in passes for row in rgb[y0::dy, x0::dx])
    ihdr = struct.pack(">IIBBBBB", rgb.shape[1], rgb.shape[0], 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def seed_files() -> dict[str, bytes]:
    """Name -> a small real file of each kind the decoder takes a distinct path for."""
    import cv2
    from PIL import Image

    rgb = _picture(24, 33)
    grey = rgb[..., 0]
    rgba = np.dstack([rgb, np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :].repeat(rgb.shape[0], 0)])
    deep = (rgb.astype(np.uint16) * 257) ^ np.uint16(0x5A)  # high and low bytes differ
    frames = [Image.fromarray(_picture(16, 16, s)) for s in range(3)]
    exif = Image.Exif()
    exif[0x0112] = 6
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    restarts = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_RST_INTERVAL, 2])[1]
    palette = Image.fromarray(rgb).quantize(16)
    palette_transparent = palette.copy()
    palette_transparent.info["transparency"] = 3

    def many(fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **kw)
        return buf.getvalue()

    return {
        "baseline.jpg": _pillow(rgb, "JPEG", quality=90),
        "progressive.jpg": _pillow(rgb, "JPEG", quality=90, progressive=True),
        "grey.jpg": _pillow(grey, "JPEG", quality=90),
        "exif6.jpg": _pillow(rgb, "JPEG", quality=90, exif=exif.tobytes()),
        "restarts.jpg": restarts.tobytes(),
        "cmyk.jpg": _pillow(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=90),
        "rgb8.png": _pillow(rgb, "PNG"),
        "grey8.png": _pillow(grey, "PNG"),
        "rgba8.png": _pillow(rgba, "PNG"),
        "palette.png": _pillow(palette, "PNG"),
        "palette-transparent.png": _pillow(palette_transparent, "PNG"),
        "interlaced.png": _interlaced_png(rgb),
        "grey16.png": _pillow(Image.fromarray(deep[..., 0]), "PNG"),
        "rgb16.png": cv2.imencode(".png", deep[..., ::-1].copy())[1].tobytes(),
        "rgba16.png": cv2.imencode(".png", np.dstack([deep[..., ::-1], deep[..., :1]]))[1].tobytes(),
        "animated.png": many("PNG"),
        "lossy.webp": _pillow(rgb, "WEBP", quality=80),
        "lossless.webp": _pillow(rgb, "WEBP", lossless=True),
        "alpha.webp": _pillow(rgba, "WEBP", quality=80),
        "animated.webp": many("WEBP"),
        "still.gif": _pillow(palette, "GIF"),
        "animated.gif": many("GIF"),
        "raw.tif": _pillow(rgb, "TIFF"),
        "deflate.tif": _pillow(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "lzw.tif": _pillow(rgb, "TIFF", compression="tiff_lzw"),
        "grey16.tif": _pillow(Image.fromarray(deep[..., 0]), "TIFF"),
        "pages.tif": many("TIFF"),
        "rgb24.bmp": _pillow(rgb, "BMP"),
        "grey8.bmp": _pillow(grey, "BMP"),
        "rgba32.bmp": cv2.imencode(".bmp", np.dstack([bgr, np.full(grey.shape, 255, np.uint8)]))[1].tobytes(),
    }


# --- mutations ----------------------------------------------------------------------------
# Each takes the file (a bytearray, changed in place or replaced), its own PRNG and the
# seed files, and returns the file. None is ever empty on the way in; any may be after.

INTERESTING_8 = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x40)
INTERESTING_32 = (0, 1, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
# Declared sizes: nothing, tiny, each format's field limits, and past the pixel limit.
SIZES = (0, 1, 2, 0x3FFF, 0x4000, 0x7FFF, 0xFFFF, 0x10000, 0xFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
         -1, -2**31)


def _bit_flips(d: bytearray, rng: random.Random, seeds) -> bytearray:
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
    return d


def _interesting_bytes(d: bytearray, rng: random.Random, seeds) -> bytearray:
    near_start = rng.random() < 0.5  # headers are where the hand-written parsers read
    for _ in range(rng.randint(1, 4)):
        d[rng.randrange(min(len(d), 96) if near_start else len(d))] = rng.choice(INTERESTING_8)
    return d


def _interesting_word(d: bytearray, rng: random.Random, seeds) -> bytearray:
    size = rng.choice((2, 4))
    if len(d) >= size:
        at = rng.randrange(min(len(d), 128) - size + 1 if rng.random() < 0.5 else len(d) - size + 1)
        d[at : at + size] = (rng.choice(INTERESTING_32) & (256**size - 1)).to_bytes(size, rng.choice(("big", "little")))
    return d


def _truncate(d: bytearray, rng: random.Random, seeds) -> bytearray:
    return d[: rng.randrange(len(d))]


def _insert(d: bytearray, rng: random.Random, seeds) -> bytearray:
    at, n = rng.randrange(len(d) + 1), rng.choice((1, 2, 4, 16, 64))
    d[at:at] = bytes([rng.choice(INTERESTING_8)]) * n if rng.random() < 0.5 else rng.randbytes(n)
    return d


def _delete(d: bytearray, rng: random.Random, seeds) -> bytearray:
    at = rng.randrange(len(d))
    del d[at : at + rng.choice((1, 2, 4, 16, 64, 512))]
    return d


def _duplicate(d: bytearray, rng: random.Random, seeds) -> bytearray:
    start = rng.randrange(len(d))
    piece = d[start : start + rng.choice((2, 8, 64, 1024))]
    at = rng.randrange(len(d) + 1)
    d[at:at] = piece
    return d


def _splice(d: bytearray, rng: random.Random, seeds) -> bytearray:
    """The start of one file and the rest of another: a header over someone else's data."""
    other = seeds[rng.choice(sorted(seeds))]
    cut = rng.randrange(1, min(len(d), len(other)) + 1)
    return bytearray(other[:cut] + d[cut:]) if rng.random() < 0.5 else bytearray(d[:cut] + other[cut:])


def _declared_size(d: bytearray, rng: random.Random, seeds) -> bytearray:
    """Write a width and/or height where the format keeps them, as 1 to 4 bytes allow."""
    width, height = (rng.choice(SIZES) if rng.random() < 0.8 else rng.randrange(1, 70000) for _ in range(2))
    if rng.random() < 0.3:
        height = None if rng.random() < 0.5 else height
        width = None if height is not None else width

    def put(fmt: str, at: int, value) -> None:
        if value is not None and at + struct.calcsize(fmt) <= len(d):
            size = struct.calcsize(fmt) * 8
            value = value & (2**size - 1)
            if fmt[-1].islower():  # a signed field
                value = value - 2**size if value >= 2 ** (size - 1) else value
            struct.pack_into(fmt, d, at, value)

    if d[:8] == b"\x89PNG\r\n\x1a\n":
        put(">I", 16, width)
        put(">I", 20, height)
        _png_crcs(d, rng, seeds)
    elif d[:2] == b"\xff\xd8":
        for sof in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
            at = d.find(sof)
            if at >= 0:
                put(">H", at + 5, height)
                put(">H", at + 7, width)
                break
    elif d[:3] == b"GIF":
        put("<H", 6, width)
        put("<H", 8, height)
        descriptor = d.find(b"\x2c", 13)
        if descriptor >= 0 and rng.random() < 0.5:
            put("<H", descriptor + 5, width)
            put("<H", descriptor + 7, height)
    elif d[:2] == b"BM":
        put("<i", 18, width)
        put("<i", 22, height)
    elif d[:4] == b"RIFF":
        kind = bytes(d[12:16])
        if kind == b"VP8X" and len(d) >= 30:  # canvas width - 1 and height - 1, 3 bytes each
            for at, value in ((24, width), (27, height)):
                if value is not None:
                    d[at : at + 3] = ((value - 1) & 0xFFFFFF).to_bytes(3, "little")
        elif kind == b"VP8 ":
            put("<H", 26, width)
            put("<H", 28, height)
        elif kind == b"VP8L" and len(d) >= 25:
            w = (width or 1) - 1 & 0x3FFF
            h = (height or 1) - 1 & 0x3FFF
            bits = struct.unpack_from("<I", d, 21)[0]
            struct.pack_into("<I", d, 21, (bits & 0xF0000000) | (h << 14) | w)
    elif d[:4] in (b"II*\x00", b"MM\x00*") and len(d) >= 8:
        e = "<" if d[:2] == b"II" else ">"
        ifd = struct.unpack_from(e + "I", d, 4)[0]
        if ifd + 2 <= len(d):
            for at in range(ifd + 2, min(len(d) - 11, ifd + 2 + 12 * struct.unpack_from(e + "H", d, ifd)[0]), 12):
                tag = struct.unpack_from(e + "H", d, at)[0]
                value = width if tag == 256 else height if tag == 257 else None
                if value is not None:
                    kind = rng.choice((3, 4, 8, 9))  # SHORT, LONG, SSHORT, SLONG
                    struct.pack_into(e + "HI", d, at + 2, kind, 1)
                    put(e + {3: "H", 4: "I", 8: "h", 9: "i"}[kind], at + 8, value)
    return d


def _png_crcs(d: bytearray, rng: random.Random, seeds) -> bytearray:
    """Every whole PNG chunk's CRC made right again, so the damage reaches the decoder."""
    if d[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 12 <= len(d):
            (length,) = struct.unpack_from(">I", d, pos)
            if pos + 12 + length > len(d):
                break
            struct.pack_into(">I", d, pos + 8 + length, zlib.crc32(bytes(d[pos + 4 : pos + 8 + length])))
            pos += 12 + length
    return d


def _riff_sizes(d: bytearray, rng: random.Random, seeds) -> bytearray:
    """A WebP's RIFF size (and its first chunk's) made to match the file again."""
    if d[:4] == b"RIFF" and len(d) >= 20:
        struct.pack_into("<I", d, 4, len(d) - 8)
        if rng.random() < 0.5:
            struct.pack_into("<I", d, 16, len(d) - 20)
    return d


MUTATIONS = {
    "bit_flips": _bit_flips,
    "interesting_bytes": _interesting_bytes,
    "interesting_word": _interesting_word,
    "truncate": _truncate,
    "insert": _insert,
    "delete": _delete,
    "duplicate": _duplicate,
    "splice": _splice,
    "declared_size": _declared_size,
    "png_crcs": _png_crcs,
    "riff_sizes": _riff_sizes,
}


def mutate(seed: bytes, mutations, seeds: dict[str, bytes]) -> bytes:
    """``seed`` after each (mutation name, its PRNG seed) in turn."""
    data = bytearray(seed)
    for name, param in mutations:
        if not data:
            break
        data = MUTATIONS[name](data, random.Random(param), seeds)
    return bytes(data)


def draw(rng: random.Random, seed_names: list[str]) -> tuple[str, list[tuple[str, int]]]:
    """One input as the long run draws it: a seed file and one to four mutations."""
    names = list(MUTATIONS)
    count = rng.choice((1, 1, 2, 2, 3, 4))
    return rng.choice(seed_names), [(rng.choice(names), rng.getrandbits(32)) for _ in range(count)]


# --- the contract -------------------------------------------------------------------------


def verdict(data: bytes, max_pixels: int) -> tuple[str | None, str]:
    """(None if decode_bytes kept its contract on ``data``, else what went wrong; what
    the input became: "decoded", a DecodeError's reason, or "exception")."""
    from augkit.input.decode_error import REASONS
    from augkit.input.decoding import DecodeError, decode_bytes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image, info = decode_bytes(data, name="input", max_pixels=max_pixels)
        except DecodeError as error:
            problem = None
            if error.reason not in REASONS:
                problem = f"DecodeError with unknown reason {error.reason!r}: {error}"
            elif "\n" in str(error) or "\r" in str(error):
                problem = f"DecodeError message of several lines: {str(error)!r}"
            return problem or _warned(caught), error.reason
        except Exception as exc:  # noqa: BLE001 - the finding
            return f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", "exception"
    if not isinstance(image, np.ndarray):
        problem = f"returned a {type(image).__name__}, not an array"
    elif image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        problem = f"returned {image.dtype} {image.shape}, not RGB uint8 (H, W, 3)"
    elif not image.flags.c_contiguous or not image.flags.writeable:
        problem = f"returned an array that is not C-contiguous and writable: {image.flags}"
    elif (info.width, info.height) != (image.shape[1], image.shape[0]):
        problem = f"ImageInfo says {info.width}x{info.height}, the array is {image.shape[1]}x{image.shape[0]}"
    else:
        problem = _warned(caught)
    return problem, "decoded"


def _warned(caught) -> str | None:
    if caught:
        return "Python warning: " + "; ".join(f"{w.category.__name__}: {w.message}" for w in caught)
    return None


# --- the sandbox ---------------------------------------------------------------------------


def serve(max_pixels: int, memory_mb: int) -> None:
    """The sandbox's side: inputs as JSON lines on stdin, verdicts as JSON lines on stdout.

    Its stderr (file descriptor 2, where C libraries print) goes to a temporary file,
    watched for growth after each input. Its address space is capped at what it holds
    after its imports plus ``memory_mb``."""
    import resource

    import cv2

    import augkit.input.decoding  # noqa: F401 - before measuring what the imports hold

    cv2.setNumThreads(1)
    seeds = seed_files()
    with open("/proc/self/status") as status:
        held_kb = int(next(line for line in status if line.startswith("VmSize:")).split()[1])
    limit = (held_kb << 10) + (memory_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stderr = tempfile.TemporaryFile()
    os.dup2(stderr.fileno(), 2)
    out = sys.stdout
    for line in sys.stdin:
        job = json.loads(line)
        data = bytes.fromhex(job["data"]) if "data" in job else mutate(seeds[job["seed"]], job["mutations"], seeds)
        before = os.fstat(stderr.fileno()).st_size
        problem, outcome = verdict(data, max_pixels)
        printed = os.fstat(stderr.fileno()).st_size - before
        if printed:
            stderr.seek(before)
            text = stderr.read(min(printed, 2000)).decode("utf-8", "replace")
            stderr.seek(0, 2)
            problem = (problem + "\n" if problem else "") + f"printed on stderr: {text!r}"
        out.write(json.dumps({"verdict": problem, "outcome": outcome}) + "\n")
        out.flush()


class Sandbox:
    """A decoding process of its own, restarted after a crash or a hang."""

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS, memory_mb: int = DEFAULT_MEMORY_MB,
                 timeout_s: float = DEFAULT_TIMEOUT_S, startup_s: float = 60.0):
        self.args = [sys.executable, __file__, "--serve", "--max-pixels", str(max_pixels),
                     "--memory-mb", str(memory_mb)]
        self.timeout_s = timeout_s
        self.startup_s = startup_s  # more time for a fresh sandbox's first answer: its imports
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.process is None:
            self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, bufsize=0)
            self._buffer = b""
            self._fresh = True
        return self.process

    def check(self, job: dict) -> str | None:
        """The verdict on one input: ``{"seed": name, "mutations": [...]}`` or ``{"data": hex}``."""
        return self.outcome(job)[0]

    def outcome(self, job: dict) -> tuple[str | None, str]:
        """(the verdict, what the input became: "decoded", a DecodeError's reason, or
        "exception", "hang", "crash")."""
        process = self._start()
        try:
            process.stdin.write((json.dumps(job) + "\n").encode())
        except BrokenPipeError:
            return self._died(), "crash"
        deadline = time.monotonic() + self.timeout_s + (self.startup_s if self._fresh else 0)
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([process.stdout], [], [], left)[0]:
                self.close()
                return f"hang: no answer in {self.timeout_s:g} s", "hang"
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                return self._died(), "crash"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        self._fresh = False
        answer = json.loads(line)
        return answer["verdict"], answer["outcome"]

    def _died(self) -> str:
        code = self.process.wait()
        self.process = None
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return f"crash: the decoding process ended ({how})"

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the long run ----------------------------------------------------------------------------


def run(inputs: int, seed: int, jobs: int, findings: Path, **sandbox_options) -> int:
    """Check ``inputs`` inputs, input i drawn from a PRNG seeded with (seed, i); returns
    the number of findings, each written to ``findings``."""
    seeds = seed_files()
    names = sorted(seeds)
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "findings": 0}
    outcomes: dict[str, int] = {}
    started = time.monotonic()

    def lane() -> None:
        with Sandbox(**sandbox_options) as sandbox:
            while True:
                with lock:
                    index = state["next"]
                    if index >= inputs:
                        return
                    state["next"] += 1
                seed_name, mutations = draw(random.Random(f"{seed}:{index}"), names)
                problem, outcome = sandbox.outcome({"seed": seed_name, "mutations": mutations})
                with lock:
                    state["done"] += 1
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    if problem is not None:
                        state["findings"] += 1
                        _record(findings, index, seed, seed_name, mutations, problem,
                                mutate(seeds[seed_name], mutations, seeds))
                    if state["done"] % 10000 == 0:
                        rate = state["done"] / (time.monotonic() - started)
                        print(f"{state['done']:,} inputs, {state['findings']} findings, {rate:,.0f} inputs/s",
                              flush=True)

    threads = [threading.Thread(target=lane) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    print(f"done: {state['done']:,} inputs in {elapsed:,.0f} s ({state['done'] / elapsed:,.0f} inputs/s), "
          f"{state['findings']} findings", flush=True)
    print("outcomes: " + ", ".join(f"{name} {n:,}" for name, n in sorted(outcomes.items(), key=lambda kv: -kv[1])),
          flush=True)
    return state["findings"]


def _record(findings: Path, index: int, seed: int, seed_name: str, mutations, problem: str, data: bytes) -> None:
    findings.mkdir(parents=True, exist_ok=True)
    stem = f"{index:09d}-{Path(seed_name).stem}"
    (findings / f"{stem}{Path(seed_name).suffix}").write_bytes(data)
    (findings / f"{stem}.json").write_text(json.dumps(
        {"index": index, "seed": seed, "seed_file": seed_name, "mutations": mutations, "problem": problem},
        indent=2) + "\n")
    print(f"FINDING {stem}: {problem.splitlines()[0] if problem else problem}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10000, help="how many inputs to check")
    parser.add_argument("--seed", type=int, default=0, help="input i is drawn from (seed, i)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="sandboxes at once")
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"), help="folder for findings")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per input")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.max_pixels, args.memory_mb)
        return 0
    found = run(args.inputs, args.seed, args.jobs, args.findings, max_pixels=args.max_pixels,
                memory_mb=args.memory_mb, timeout_s=args.timeout)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
