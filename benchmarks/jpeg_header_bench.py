"""What augkit's hand-written JPEG header walk (augkit.input.jpeg.jpeg_header) saves against
letting Pillow parse the header, for the job it does: decoding a JPEG with decode_bytes.

    python benchmarks/jpeg_header_bench.py [--photos DIR] [--rounds 7] [--json PATH]

For every real JPEG under --photos (default /work/photos/hymenoptera_data) and for damaged
copies of the first --damaged of them (cut in half, bytes inverted mid-scan, a chunk cut
from the scan, junk between header segments), in one process, one thread:

- ``walker``: ``decode_bytes(data)``, which tries the walk and, where it answers, decodes
  without Pillow (the fast path);
- ``pillow``: what decode_bytes would do without the walk: ``_decode_general`` (Pillow's
  Image.open, getexif, n_frames, then the same strict libjpeg-turbo decode);
- the header step alone: ``jpeg_header(data)`` against ``Image.open`` + size, mode,
  orientation (getexif) and n_frames, which is what _decode_general asks Pillow for.

Both paths must give the same pixels or the same DecodeError reason on every file (checked).
Each file is timed ``--rounds`` times per path, the paths alternating; a file's time is its
fastest round (the machine is shared: the minimum is the least disturbed). Printed: the
share of files the walk accepts, per-file medians, totals over the set, and the saving.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from augkit.input import decoding
from augkit.input.decode_error import DecodeError
from augkit.input.decoder_settings import augkit_settings
from augkit.input.jpeg import jpeg_header


def damaged(data: bytes) -> dict[str, bytes]:
    """Four kinds of damage a real JPEG meets, made from ``data``."""
    scan = data.index(b"\xff\xda")
    mid = scan + (len(data) - scan) // 2
    app0_end = 4 + int.from_bytes(data[4:6], "big") if data[2:4] == b"\xff\xe0" else 2
    return {
        "cut in half": data[: len(data) // 2],
        "bytes inverted mid-scan": data[:mid] + bytes(255 - b for b in data[mid : mid + 16]) + data[mid + 16 :],
        "chunk cut from the scan": data[:mid] + data[mid + 64 :],
        "junk between header segments": data[:app0_end] + b"\x00junk\x00" + data[app0_end:],
    }


def outcome(decode, data: bytes):
    try:
        return decode(data)[0]
    except DecodeError as error:
        return error.reason


def with_walker(data: bytes):
    return decoding.decode_bytes(data, name="x.jpg", max_pixels=0)


def pillow_only(data: bytes):
    with augkit_settings():
        return decoding._decode_general(data, "x.jpg", 0)


def pillow_header(data: bytes):
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size, img.mode, decoding._exif_orientation(img, data), getattr(img, "n_frames", 1)
    except Exception:  # noqa: BLE001 - a damaged header costs what it costs
        return None


def fastest(fn, data: bytes, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            fn(data)
        except DecodeError:
            pass
        best = min(best, time.perf_counter() - start)
    return best


def measure(files: dict[str, bytes], rounds: int) -> list[dict]:
    rows = []
    for name, data in files.items():
        a, b = outcome(with_walker, data), outcome(pillow_only, data)
        same = (a == b) if isinstance(a, str) or isinstance(b, str) else np.array_equal(a, b)
        if not same:
            raise SystemExit(f"{name}: the two paths disagree ({a if isinstance(a, str) else 'pixels'} vs "
                             f"{b if isinstance(b, str) else 'pixels'})")
        times = {"walker": [], "pillow": [], "walk": [], "pillow header": []}
        for _ in range(rounds):  # alternate, so that a busy moment hurts both paths alike
            times["walker"].append(fastest(with_walker, data, 1))
            times["pillow"].append(fastest(pillow_only, data, 1))
            times["walk"].append(fastest(jpeg_header, data, 3))
            times["pillow header"].append(fastest(pillow_header, data, 3))
        row = {k: min(v) * 1e3 for k, v in times.items()}  # ms
        row.update(name=name, accepted=jpeg_header(data) is not None, outcome=a if isinstance(a, str) else "image")
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in rows) for k in ("walker", "pillow", "walk", "pillow header")}
    total = {k: sum(r[k] for r in rows) for k in ("walker", "pillow")}
    saving = [r["pillow"] - r["walker"] for r in rows]
    return {
        "files": len(rows),
        "accepted by the walk": sum(r["accepted"] for r in rows),
        "outcomes": {o: sum(r["outcome"] == o for r in rows) for o in sorted({r["outcome"] for r in rows})},
        "median ms per file": med,
        "total ms": total,
        "median saving ms per file": statistics.median(saving),
        "total saving %": 100 * (total["pillow"] - total["walker"]) / total["pillow"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default="/work/photos/hymenoptera_data")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--damaged", type=int, default=50, help="damage copies of this many photos")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    paths = sorted(p for p in Path(args.photos).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    real = {str(p.relative_to(args.photos)): p.read_bytes() for p in paths}
    broken = {f"{name} ({kind})": bad for name in list(real)[: args.damaged] for kind, bad in damaged(real[name]).items()}
    bad_rows = measure(broken, args.rounds)
    result = {"real": summarize(measure(real, args.rounds)), "damaged": summarize(bad_rows),
              "damaged by kind": {kind: summarize([r for r in bad_rows if r["name"].endswith(f"({kind})")])
                                  for kind in damaged(next(iter(real.values())))}}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
