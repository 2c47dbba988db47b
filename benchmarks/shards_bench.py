#!/usr/bin/env python
"""Benchmark: WebDataset tar shards against one file per image, on the same images, in one run.

Two questions, each side a fresh process, sides alternated, median of --repeats:

1. **augment writing shards vs writing files**: ``augkit augment recipes/standard.yaml SET
   OUT --copies 2 --workers 2 --quiet``, with and without ``--output-format webdataset
   --shard-size 50`` (600 outputs of 300 images: 12 shards, 6 a worker; a shard is the
   unit of work, so with fewer the last one keeps a worker busy while the other idles,
   which a real run of thousands of shards never sees). Whole-command wall time and
   outputs per second; the ratio shards/files (goal: >= 0.95, shards cost no more than
   files).
2. **flow reading shards vs reading files**: the set's JPEGs packed unchanged into tar
   shards of 100 samples (``augkit.input.shards.ShardWriter``, with ``cls``), and
   ``augkit.flow(SRC, recipe, batch_size=32, size=224, workers=2)`` over one epoch from
   the folder and from the shards. Two recipes: ``standard`` (the usual training
   pipeline) and ``none`` (decode and resize only, where reading weighs most). Steady
   images per second (end of the first batch to the end of the epoch), and the time to
   the first batch (discovery, for shards the index of every member, plus start-up).
   Goal: shards >= 0.95x files.
   Wall figures move with whatever else the machine runs; each question is also measured
   with everything in one process (``--workers 0``), as CPU time per image, which they do not.
3. **indexing shards**: what discovery costs per sample on a set of 10 shards of 10,000
   samples (a 2 kB ``jpg``, a ``cls`` and a ``json`` each), in this process, alternated:
   tarfile reading every header (``_index_tarfile``) against the direct ustar header
   reads augkit uses (``_index_ustar``), and the whole ``discover`` (labels and json
   names included).

The set is augment_bench's (``benchmarks/_work/set-N``, N = --images, default 300).

    python benchmarks/shards_bench.py [--images 300] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augment_bench import WORK, build_set  # noqa: E402  (the shared, deterministic image set)

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "standard.yaml"
SHARD_SIZE = 100  # samples per shard of the set flow reads
AUGMENT_SHARD_SIZE = 50

FLOW = r'''
import json, os, sys, time
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
src, recipe, workers = sys.argv[1], (None if sys.argv[2] == "none" else sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
import augkit
batches = iter(augkit.flow(src, recipe, batch_size=32, size=224, workers=workers, shuffle=True, seed=0))
x, y = next(batches)
first, cpu = time.perf_counter(), time.process_time()
count = 0
for x, y in batches:
    count += len(y)
end = time.perf_counter()
print(json.dumps({"first_batch_s": first - start, "steady_images_per_s": count / (end - first),
                  "cpu_ms_per_image": (time.process_time() - cpu) / count * 1e3}))
'''


def pack_shards(src: Path, dest: Path) -> Path:
    """The set's files, bytes unchanged, in tar shards of SHARD_SIZE samples (key: the path)."""
    from augkit.input.discovery import discover
    from augkit.input.shards import ShardWriter

    stamp = dest.with_name(dest.name + ".stamp.json")
    wanted = {"source": str(src), "files": sorted(p.name for p in src.rglob("*.jpg")), "per_shard": SHARD_SIZE}
    if dest.is_dir() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    dataset = discover(src)
    index = dataset.class_to_index
    for start in range(0, len(dataset.samples), SHARD_SIZE):
        with open(dest / f"shard-{start // SHARD_SIZE:06d}.tar", "wb") as f, ShardWriter(f) as writer:
            for s in dataset.samples[start:start + SHARD_SIZE]:
                writer.add(s.key, Path(s.path).read_bytes())
                writer.add(s.key.rsplit(".", 1)[0] + ".cls", str(index[s.label]).encode())
    stamp.write_text(json.dumps(wanted))
    return dest


def index_set(dest: Path, shards: int = 10, per_shard: int = 10_000) -> Path:
    """Shards of many small samples: what indexing costs, with no image work around it."""
    from augkit.input.shards import ShardWriter

    if len(list(dest.glob("shard-*.tar"))) == shards:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with open(dest / f"shard-{s:06d}.tar", "wb") as f, ShardWriter(f) as writer:
            for i in range(per_shard):
                key = f"c{i % 10}/img{s}_{i:05d}"
                writer.add(f"{key}.jpg", b"\xff\xd8" + bytes(2000))
                writer.add(f"{key}.cls", str(i % 10).encode())
                writer.add(f"{key}.json", json.dumps({"label": f"c{i % 10}"}).encode())
    return dest


def index_side(side: str, folder: Path) -> dict:
    from augkit.input.discovery import discover
    from augkit.input.shards import _index_tarfile, _index_ustar

    started = time.perf_counter()
    if side == "discover":
        samples = len(discover(folder))
    else:
        index = _index_tarfile if side == "tarfile" else _index_ustar
        samples = sum(len(index(str(p), frozenset({"cls", "json"})).members) for p in sorted(folder.glob("*.tar")))
        samples //= 3
    return {"us_per_sample": (time.perf_counter() - started) / samples * 1e6}


def augment_side(side: str, src: Path, out: Path, workers: int = 2) -> dict:
    """Wall time with 2 workers; with 0, the CPU time of the one process (what contention
    from other processes on the machine does not change)."""
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--output-format", "webdataset", "--shard-size", str(AUGMENT_SHARD_SIZE)] if side == "shards" else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "augkit", "augment", str(RECIPE), str(src), str(out), "--copies", "2",
                    "--workers", str(workers), "--quiet", *extra], check=True, capture_output=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    outputs = sum(1 for line in open(out / "manifest.csv")) - 1
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"seconds": seconds, "outputs_per_s": outputs / seconds, "outputs": outputs,
            "cpu_ms_per_output": cpu / outputs * 1e3}


def flow_side(src: Path, recipe: str, workers: int = 2) -> dict:
    done = subprocess.run([sys.executable, "-c", FLOW, str(src), recipe, str(workers)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    src, _ = build_set(args.images)
    shards = pack_shards(src, WORK / f"shards-{args.images}")
    scratch = WORK / "shards-bench-out"
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for side in ("files", "shards"):
            runs.setdefault(f"augment-{side}", []).append(augment_side(side, src, scratch / side))
            runs.setdefault(f"augment-w0-{side}", []).append(augment_side(side, src, scratch / side, workers=0))
        for recipe in ("standard", "none"):
            for side, where in (("files", src), ("shards", shards)):
                path = str(RECIPE) if recipe == "standard" else "none"
                runs.setdefault(f"flow-{recipe}-{side}", []).append(flow_side(where, path))
                runs.setdefault(f"flow-w0-{recipe}-{side}", []).append(flow_side(where, path, workers=0))
        for side in ("tarfile", "ustar", "discover"):
            runs.setdefault(f"index-{side}", []).append(index_side(side, index_set(WORK / "shards-index")))
    shutil.rmtree(scratch, ignore_errors=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "images": args.images, "repeats": args.repeats, "load_after": os.getloadavg()[0], "runs": runs}
    files, sharded = runs["augment-files"], runs["augment-shards"]
    print(f"augment --copies 2 -w 2, {args.images} images ({report['machine']}):")
    print(f"  files   {median(files, 'seconds'):6.2f} s  {median(files, 'outputs_per_s'):6.1f} outputs/s")
    print(f"  shards  {median(sharded, 'seconds'):6.2f} s  {median(sharded, 'outputs_per_s'):6.1f} outputs/s"
          f"   ratio {median(sharded, 'outputs_per_s') / median(files, 'outputs_per_s'):.2f}x")
    files, sharded = runs["augment-w0-files"], runs["augment-w0-shards"]
    print(f"  -w 0, CPU per output: files {median(files, 'cpu_ms_per_output'):.2f} ms, shards "
          f"{median(sharded, 'cpu_ms_per_output'):.2f} ms, ratio files/shards "
          f"{median(files, 'cpu_ms_per_output') / median(sharded, 'cpu_ms_per_output'):.2f}x")
    for recipe in ("standard", "none"):
        f, s = runs[f"flow-{recipe}-files"], runs[f"flow-{recipe}-shards"]
        print(f"flow, recipe {recipe}, workers 2, batches of 32 at 224:")
        for name, side in (("files", f), ("shards", s)):
            print(f"  {name:<7} {median(side, 'steady_images_per_s'):6.1f} images/s steady, "
                  f"first batch {median(side, 'first_batch_s'):.2f} s")
        print(f"  ratio shards/files {median(s, 'steady_images_per_s') / median(f, 'steady_images_per_s'):.2f}x")
        f, s = runs[f"flow-w0-{recipe}-files"], runs[f"flow-w0-{recipe}-shards"]
        print(f"  workers 0, CPU per image: files {median(f, 'cpu_ms_per_image'):.2f} ms, shards "
              f"{median(s, 'cpu_ms_per_image'):.2f} ms, ratio files/shards "
              f"{median(f, 'cpu_ms_per_image') / median(s, 'cpu_ms_per_image'):.2f}x")
    print("indexing 10 shards of 10,000 samples (3 members each), per sample:")
    for side in ("tarfile", "ustar", "discover"):
        print(f"  {side:<9} {median(runs[f'index-{side}'], 'us_per_sample'):6.1f} us")
    print(f"load average after: {report['load_after']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
