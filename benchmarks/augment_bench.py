#!/usr/bin/env python
"""Benchmark: ``augkit augment`` against a plain single-process loop doing the same work.

What it does, in one run on one machine:

1. Builds (or reuses) a set of ImageNet-like JPEGs under ``benchmarks/_work/``: N images
   (default 1000), median 500x375, made deterministically from the 20 real photos of
   ``sample_data/`` by random crops, flips and rescales, JPEG quality 90, in class folders.
   With ``--set photos12``: N (default 200) 12-megapixel JPEGs built from real photo
   textures, a quarter with EXIF orientation 6 (``photo_set.py`` says how).
2. Measures, alternating, ``--repeats`` times (default 5):
   - ``loop``: a fresh ``python -c`` process that imports cv2 + albumentations and, per
     image, does cv2.imread -> BGR2RGB -> Compose (the standard recipe, built by hand)
     x2 copies, each seeded as augkit seeds it (one generator pair from
     ``derive_seed(0, key, k)`` for the whole pipeline) -> RGB2BGR ->
     cv2.imwrite(q95). One compute thread (cv2.setNumThreads(1) and
     OMP/BLAS=1), so it is a one-core reference.
   - ``loop-x2``: two such loops at once, each on every other image: what two processes
     do on this machine with no coordination at all (the practical ceiling for 2 workers).
   - ``augkit-w2``: ``augkit augment recipes/standard.yaml SET OUT --copies 2 --workers 2
     --quiet`` (the claim: ~2x the loop on 2 cores; the goal is >= 1.8x, the limit 2.0x).
   - ``augkit-w1``: the same with ``--workers 1`` (engine + task cost per core).
   - ``augkit-w0`` (optional, ``--configs``): ``--workers 0``, all in one process (task
     cost without the engine).
   - ``augkit-w2-exact`` (optional): ``--workers 2 --exact-decode``: every image decoded
     whole, so its outputs are byte-identical to the loop's; the default decodes a JPEG
     the recipe's first resize shrinks at 1/2-1/8, and the harness reports how far its
     outputs are from the loop's (mean absolute difference, grey levels).
   Every side is measured the same way, from outside the process:
   - before each run the harness waits (up to ``--quiet-wait`` s) for the machine to be
     idle; a run during which other processes kept more than ``--max-background`` cores
     busy (machine CPU from /proc/stat minus the run's own CPU, counted with getrusage
     over all its descendants) is marked contended, retried, and left out of the medians;
   - start-up = time from ``Popen`` to the first ``*.jpg`` output appearing (a thread
     polls OUT with os.scandir every 10 ms until the first file shows up, then stops);
   - steady-state = outputs per second between the output at 5 % of the run and the last
     output, using the outputs' modification times (written just before each file is
     complete), so no polling runs while the work runs;
   - total = wall time to process exit, and outputs / total.
3. Checks that augkit's outputs are byte-identical to the loop's (same work, same seeds),
   prints a table of medians, the ratios and whether the 1.8x goal was met, and saves the
   raw figures as JSON (benchmarks/_work/augment_bench.json). The exit code is 0 whatever
   the figures: this is a measurement, not a test.

Usage:  python benchmarks/augment_bench.py [--images 1000] [--repeats 5] [--scratch /dev/shm]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
RECIPE = ROOT / "recipes" / "standard.yaml"
SAMPLES = ROOT / "sample_data"
LIMIT = 2.0
GOALS = {"imagenet": 2.3, "photos12": 6.0}  # augkit --workers 2 / loop, steady state (issue #16)
WARMUP_FRACTION = 0.05  # steady-state starts after this fraction of the outputs
POLL_S = 0.010

# Bump when the set builder changes, so an old set is rebuilt rather than reused.
BUILDER_VERSION = 1
SET_SEED = 2026
SET_QUALITY = 90

# --------------------------------------------------------------------------------------
# The reference loop. Run as `python -c LOOP_CODE SRC OUT COPIES QUALITY SEED THREADS`.
# It builds by hand exactly the Compose of recipes/standard.yaml (every argument not
# written there is albumentations' default; the harness checks the outputs are
# byte-identical to augkit's), and seeds each copy as augkit does.
# --------------------------------------------------------------------------------------
LOOP_CODE = r'''
import os, sys, time, json
t_enter = time.time()
src, out = sys.argv[1], sys.argv[2]
copies, quality, seed, threads, shard, shards = (int(a) for a in sys.argv[3:9])
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
if threads > 0:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(threads)
import hashlib, random
import cv2
import numpy as np
import albumentations as A
if threads > 0:
    cv2.setNumThreads(threads)
t_imported = time.time()

compose = A.Compose([
    A.SmallestMaxSize(max_size=256),
    A.RandomCrop(height=224, width=224),
    A.HorizontalFlip(p=0.5),
    A.Affine(rotate=(-15, 15), scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), p=0.5),
    A.RGBShift(p=0.3),
    A.CLAHE(p=0.2),
    A.CoarseDropout(p=0.3),
], strict=True)

def derive_seed(*parts):  # identical to augkit.core.seeds.derive_seed
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1

keys = sorted(
    f"{c}/{f}"
    for c in os.listdir(src) if not c.startswith(".") and os.path.isdir(os.path.join(src, c))
    for f in os.listdir(os.path.join(src, c)) if not f.startswith(".") and f.lower().endswith((".jpg", ".jpeg"))
)[shard::shards]
params = [cv2.IMWRITE_JPEG_QUALITY, quality]
width = max(2, len(str(max(copies - 1, 0))))
made = set()
t_first = None
written = 0
for key in keys:
    cls, name = key.split("/")
    if cls not in made:
        os.makedirs(os.path.join(out, cls), exist_ok=True)
        made.add(cls)
    stem = os.path.splitext(name)[0]
    bgr = cv2.imread(os.path.join(src, key), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for k in range(copies):
        s = derive_seed(seed, key, k)  # seeded as augkit seeds: one stream for the pipeline
        compose.set_random_state(np.random.default_rng(s), random.Random(s))
        aug = compose(image=rgb)["image"]
        cv2.imwrite(os.path.join(out, cls, f"{stem}_{k:0{width}d}.jpg"), cv2.cvtColor(aug, cv2.COLOR_RGB2BGR), params)
        written += 1
        if t_first is None:
            t_first = time.time()
t_last = time.time()
print(json.dumps({"t_enter": t_enter, "t_imported": t_imported, "t_first": t_first, "t_last": t_last,
                  "written": written, "inputs": len(keys)}))
'''


# --------------------------------------------------------------------------------------
# The benchmark set
# --------------------------------------------------------------------------------------

# ImageNet-like shapes: most images are 500 px on the long side, 4:3, landscape.
_ASPECTS = [(4 / 3, 0.60), (3 / 2, 0.15), (5 / 4, 0.10), (1.0, 0.10), (16 / 9, 0.05)]


def _sources() -> list[Path]:
    paths = sorted(p for p in SAMPLES.glob("*/*.jpg") if not p.name.startswith("."))
    if not paths:
        sys.exit(f"no sample images found under {SAMPLES}")
    return paths


def build_set(n: int) -> tuple[Path, dict]:
    """The benchmark set for ``n`` images: reused when its stamp matches, else rebuilt."""
    import cv2
    import numpy as np

    sources = _sources()
    params = {
        "builder_version": BUILDER_VERSION, "images": n, "seed": SET_SEED, "quality": SET_QUALITY,
        "sources": [[p.relative_to(SAMPLES).as_posix(), p.stat().st_size] for p in sources],
    }
    dest = WORK / f"set-{n}"
    stamp = WORK / f"set-{n}.stamp.json"  # outside the set, so SRC holds only images
    if stamp.exists() and dest.is_dir():
        try:
            saved = json.loads(stamp.read_text())
        except ValueError:
            saved = {}
        if saved.get("params") == params:
            return dest, saved["stats"]
    shutil.rmtree(dest, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    decoded = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sources]
    aspects, weights = zip(*_ASPECTS)
    shapes, sizes = [], []
    for i in range(n):
        rng = np.random.default_rng([SET_SEED, i])
        idx = i % len(sources)
        src, cls = decoded[idx], sources[idx].parent.name
        # Target: long side 500 most of the time (as in ImageNet), else 400-499.
        long_side = 500 if rng.random() < 0.7 else int(rng.integers(400, 500))
        aspect = float(rng.choice(aspects, p=weights))
        short_side = int(round(long_side / aspect))
        landscape = rng.random() < 0.75
        tw, th = (long_side, short_side) if landscape else (short_side, long_side)
        # Crop: the target's aspect ratio, 55-100 % of the largest such window, anywhere.
        h0, w0 = src.shape[:2]
        r = tw / th
        cw, ch = (w0, int(w0 / r)) if w0 / h0 < r else (int(h0 * r), h0)
        scale = float(np.sqrt(rng.uniform(0.55, 1.0)))
        cw, ch = max(16, int(cw * scale)), max(16, int(ch * scale))
        x = int(rng.integers(0, w0 - cw + 1))
        y = int(rng.integers(0, h0 - ch + 1))
        crop = src[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        interp = cv2.INTER_CUBIC if tw > cw else cv2.INTER_AREA
        img = cv2.resize(np.ascontiguousarray(crop), (tw, th), interpolation=interp)
        out = dest / cls / f"{cls}_{i:04d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), img, [cv2.IMWRITE_JPEG_QUALITY, SET_QUALITY]):
            sys.exit(f"cannot write {out}")
        shapes.append((tw, th))
        sizes.append(out.stat().st_size)
    ws, hs = zip(*shapes)
    landscape_shapes = sorted(s for s in shapes if s[0] >= s[1])
    stats = {
        "images": n,
        "classes": sorted({p.parent.name for p in sources}),
        "median_width": statistics.median(ws), "median_height": statistics.median(hs),
        "median_landscape_shape": list(landscape_shapes[len(landscape_shapes) // 2]) if landscape_shapes else None,
        "landscape_fraction": round(sum(w >= h for w, h in shapes) / n, 3),
        "width_range": [min(ws), max(ws)], "height_range": [min(hs), max(hs)],
        "median_pixels": statistics.median(w * h for w, h in shapes),
        "mean_file_kb": round(statistics.mean(sizes) / 1024, 1),
        "total_mb": round(sum(sizes) / 2**20, 1),
    }
    stamp.write_text(json.dumps({"params": params, "stats": stats}, indent=2) + "\n")
    return dest, stats


# --------------------------------------------------------------------------------------
# Measuring one run
# --------------------------------------------------------------------------------------


def _first_output_present(out: str) -> bool:
    """True once any finished ``*.jpg`` is in a class folder of ``out``. Cheap: it
    returns at the first hit, and it only runs until the first output exists."""
    try:
        top = os.scandir(out)
    except FileNotFoundError:
        return False
    with top:
        for entry in top:
            if entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as sub:
                    for f in sub:
                        if f.name.endswith(".jpg") and not f.name.startswith("."):
                            return True
    return False


def _output_mtimes(out: Path) -> list[float]:
    times = []
    for cls in os.scandir(out):
        if cls.is_dir(follow_symlinks=False):
            for f in os.scandir(cls.path):
                if f.name.endswith(".jpg") and not f.name.startswith("."):
                    times.append(f.stat().st_mtime_ns / 1e9)
    return sorted(times)


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat): every
    process's, ours and anyone else's."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (fields + [0] * 7)[:7]
    return (user + nice + system + irq + softirq) / _CLK_TCK


def _busy_cores(window: float) -> float:
    """Average number of busy cores of the whole machine over ``window`` seconds."""
    c0, t0 = _machine_cpu_s(), time.monotonic()
    time.sleep(window)
    return (_machine_cpu_s() - c0) / (time.monotonic() - t0)


def wait_for_quiet(max_wait: float, threshold: float) -> float:
    """Wait (up to ``max_wait`` s) until other processes leave the cores idle: on a shared
    machine a run measured while something else computes says nothing about augkit.
    Returns the busy cores measured last."""
    deadline = time.monotonic() + max_wait
    busy = _busy_cores(0.5)
    while busy > threshold and time.monotonic() < deadline:
        busy = _busy_cores(0.5)
    return busy


def _become_subreaper() -> bool:
    """Make orphaned descendants (augkit's forkserver and its workers) our children, so
    that their CPU time is counted in getrusage(RUSAGE_CHILDREN) once we reap them."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_descendants(timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            time.sleep(0.01)


def measure(name: str, cmds: list[list[str]], out: Path, env: dict[str, str]) -> dict:
    """Run ``cmds`` at once (one process each), all writing into ``out``; time them."""
    shutil.rmtree(out, ignore_errors=True)
    os.sync()  # earlier runs' dirty pages are not flushed on this run's time
    time.sleep(0.2)
    first: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if _first_output_present(str(out)):
                first["t"] = time.time()
                return
            stop.wait(POLL_S)

    cpu0 = _machine_cpu_s()
    kids0, self0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.time()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT) for cmd in cmds]
    streams = [proc.communicate() for proc in procs]
    t_end = time.time()
    returncode = next((proc.returncode for proc in procs if proc.returncode != 0), 0)
    stop.set()
    poller.join()
    _reap_descendants()
    kids1, self1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    cpu1 = _machine_cpu_s()
    for proc, (_, stderr) in zip(procs, streams):
        if proc.returncode != 0:
            print(f"  {name}: exit code {proc.returncode}\n{stderr.decode(errors='replace')[-2000:]}", file=sys.stderr)
    mtimes = _output_mtimes(out) if out.is_dir() else []
    n = len(mtimes)
    wall = t_end - t0
    run_cpu = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    own_cpu = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    rec: dict = {"name": name, "returncode": returncode, "processes": len(procs), "outputs": n, "total_s": wall,
                 "cpu_s": run_cpu, "harness_cpu_s": own_cpu,
                 # other processes' load while this ran, in cores (0 = the machine was ours)
                 "background_cores": max(0.0, (cpu1 - cpu0 - run_cpu - own_cpu) / wall)}
    rec["startup_s"] = first["t"] - t0 if "t" in first else None  # polled
    if n >= 2:
        k = max(1, int(WARMUP_FRACTION * n))
        rec["startup_mtime_s"] = mtimes[0] - t0
        rec["first_to_last_s"] = mtimes[-1] - mtimes[0]
        rec["rate_first_to_last"] = (n - 1) / (mtimes[-1] - mtimes[0]) if mtimes[-1] > mtimes[0] else None
        rec["steady_rate"] = (n - 1 - k) / (mtimes[-1] - mtimes[k]) if mtimes[-1] > mtimes[k] else None
        rec["tail_s"] = t_end - mtimes[-1]  # last output -> process exit (reports, shutdown)
    rec["end_to_end_rate"] = n / rec["total_s"]
    if name == "loop":
        try:
            inner = json.loads(streams[0][0].decode().strip().splitlines()[-1])
            rec["loop_import_s"] = inner["t_imported"] - t0
            rec["loop_inner_rate"] = (inner["written"] - 1) / (inner["t_last"] - inner["t_first"])
        except (ValueError, IndexError, KeyError, ZeroDivisionError):
            pass
    return rec


def mean_difference(a: Path, b: Path, limit: int = 200) -> float | None:
    """Mean absolute difference (grey levels) between the same outputs of two runs, decoded."""
    import cv2
    import numpy as np

    names = sorted(set(_digests(a)) & set(_digests(b)))[:limit]
    diffs = [np.abs(cv2.imread(str(a / n)).astype(np.int16) - cv2.imread(str(b / n))).mean() for n in names]
    return float(np.mean(diffs)) if diffs else None


def _digests(out: Path) -> dict[str, str]:
    return {
        f"{cls.name}/{f.name}": hashlib.blake2b(Path(f.path).read_bytes(), digest_size=16).hexdigest()
        for cls in os.scandir(out) if cls.is_dir()
        for f in os.scandir(cls.path) if f.name.endswith(".jpg") and not f.name.startswith(".")
    }


def compare_outputs(a: Path, b: Path) -> dict:
    da, db = _digests(a), _digests(b)
    common = set(da) & set(db)
    differ = sum(da[k] != db[k] for k in common)
    return {"only_in_first": len(set(da) - set(db)), "only_in_second": len(set(db) - set(da)),
            "compared": len(common), "different": differ,
            "identical": differ == 0 and len(da) == len(db) == len(common) and len(common) > 0}


# --------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = "?"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "-"

    opencv = next((version(d) for d in ("opencv-python-headless", "opencv-python", "opencv-contrib-python")
                   if version(d) != "-"), "-")
    return {
        "cpu": cpu, "cores_usable": cores, "cpu_count": os.cpu_count(), "memory_gb": mem_gb,
        "simd": " ".join(f for f in ("sse4_2", "avx", "avx2", "avx512f") if f in flags),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "opencv": opencv, "albumentations": version("albumentations"), "numpy": version("numpy"),
        "pillow": version("pillow"), "augkit": version("augkit"),
    }


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def _augkit_cmd() -> list[str]:
    # The console script next to this interpreter (not a pyenv shim, which adds a shell).
    script = Path(sys.executable).parent / "augkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "augkit"]


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _pairs(runs_a: list[dict], runs_b: list[dict]):
    """(a, b) runs of the same repeat (the last attempt of each), both with a steady rate."""
    last_a = {x["repeat"]: x for x in runs_a if x.get("steady_rate")}
    last_b = {x["repeat"]: x for x in runs_b if x.get("steady_rate")}
    return [(last_a[r], last_b[r]) for r in sorted(set(last_a) & set(last_b))]


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="image_set", choices=sorted(GOALS), default="imagenet",
                    help="imagenet: ~500x375 JPEGs (default); photos12: 12-megapixel JPEGs from real photo textures")
    ap.add_argument("--photos", type=Path, default=None, help="real photos the photos12 set is built from "
                    "(default /work/photos/hymenoptera_data, else sample_data/)")
    ap.add_argument("--images", type=int, default=None,
                    help="images in the benchmark set (default 1000, or 200 for photos12; at least 500 for the imagenet claim)")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each side, alternating; medians are reported (default 5)")
    ap.add_argument("--copies", type=int, default=2, help="augmented copies per image (default 2)")
    ap.add_argument("--configs", default="loop,loop-x2,augkit-w2,augkit-w1",
                    help="comma-separated subset of loop, loop-x2 (two loops at once, each on half the images: "
                         "what 2 processes can do on this machine with no coordination at all), augkit-w2, "
                         "augkit-w1, augkit-w0, augkit-w2-exact (--exact-decode) (default: the first four)")
    ap.add_argument("--loop-threads", type=int, default=1,
                    help="OpenCV/OMP threads in the reference loop (default 1: a one-core reference; 0 = library default)")
    ap.add_argument("--json", type=Path, default=None, help="where to save raw figures (default benchmarks/_work/augment_bench.json)")
    ap.add_argument("--max-background", type=float, default=0.15,
                    help="other processes' load (busy cores) above which a run counts as contended (default 0.15)")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="seconds to wait, before each run, for the machine to be idle (default 30)")
    ap.add_argument("--retries", type=int, default=2, help="reruns of a contended run (default 2)")
    ap.add_argument("--scratch", type=Path, default=None,
                    help="folder for the outputs (default benchmarks/_work/runs); e.g. /dev/shm to take the disk "
                         "out of the measurement")
    ap.add_argument("--keep", action="store_true", help="keep the output folders of the last runs")
    args = ap.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    known = {"loop", "loop-x2", "augkit-w2", "augkit-w1", "augkit-w0", "augkit-w2-exact"}
    if not configs or set(configs) - known:
        ap.error(f"--configs: choose from {', '.join(sorted(known))}")
    if args.images is None:
        args.images = 200 if args.image_set == "photos12" else 1000
    goal = GOALS[args.image_set]
    if args.images < 1 or args.repeats < 1 or args.copies < 1:
        ap.error("--images, --repeats and --copies must be at least 1")

    subreaper = _become_subreaper()
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores_usable']} usable cores, {info['memory_gb']} GB, {info['simd']}")
    print(f"software: Python {info['python']}, OpenCV {info['opencv']}, albumentations {info['albumentations']}, "
          f"NumPy {info['numpy']}, Pillow {info['pillow']}, augkit {info['augkit']}, {info['os']}")
    t_build = time.time()
    if args.image_set == "photos12":
        from photo_set import build_photo_set

        src, set_stats = build_photo_set(args.images, args.photos)
        print(f"set: {src.relative_to(ROOT)}: {set_stats} ({time.time() - t_build:.1f} s to build or check)")
    else:
        src, set_stats = build_set(args.images)
        print(f"set: {src.relative_to(ROOT)}: {set_stats['images']} JPEGs q{SET_QUALITY}, median "
              f"{set_stats['median_width']:g}x{set_stats['median_height']:g} (landscape median "
              f"{set_stats['median_landscape_shape']}), mean {set_stats['mean_file_kb']} KB "
              f"({time.time() - t_build:.1f} s to build or check)")

    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    loop_env = dict(env)
    runs_dir = args.scratch / f"augment-bench-runs-{os.getpid()}" if args.scratch else WORK / "runs"
    outs = {c: runs_dir / c for c in configs}

    def loop_cmd(shard: int, shards: int, out: Path) -> list[str]:
        return [sys.executable, "-c", LOOP_CODE, str(src), str(out), str(args.copies), "95", "0",
                str(args.loop_threads), str(shard), str(shards)]

    cmds: dict[str, list[list[str]]] = {}
    for c in configs:
        if c == "loop":
            cmds[c] = [loop_cmd(0, 1, outs[c])]
        elif c == "loop-x2":
            cmds[c] = [loop_cmd(0, 2, outs[c]), loop_cmd(1, 2, outs[c])]
        else:
            workers = c.removeprefix("augkit-w").removesuffix("-exact")
            cmds[c] = [_augkit_cmd() + ["augment", str(RECIPE), str(src), str(outs[c]), "--copies", str(args.copies),
                                        "--workers", workers, "--quiet"] + (["--exact-decode"] * c.endswith("-exact"))]
    expected = args.images * args.copies

    # Untimed warm-up: the interpreter, cv2 and albumentations files in the page cache.
    subprocess.run([sys.executable, "-c", "import cv2, albumentations, augkit.recipes"], env=env, check=False)

    results: dict[str, list[dict]] = {c: [] for c in configs}
    identity: dict[str, dict] = {}
    print(f"\n{args.repeats} repeat(s) of {', '.join(configs)}; {args.images} inputs x {args.copies} copies "
          f"= {expected} outputs per run; a run during which other processes kept more than "
          f"{args.max_background} core(s) busy is marked contended and retried (up to {args.retries}x)")
    for r in range(args.repeats):
        for c in configs:
            for attempt in range(args.retries + 1):
                idle_before = wait_for_quiet(args.quiet_wait, args.max_background)
                rec = measure(c, cmds[c], outs[c], loop_env if c.startswith("loop") else env)
                rec.update(repeat=r, attempt=attempt, busy_cores_before=idle_before,
                           contended=rec["background_cores"] > args.max_background)
                results[c].append(rec)
                bad = rec["outputs"] != expected or rec["returncode"] != 0
                flag = f"  !! {rec['outputs']}/{expected} outputs" if bad else ""
                flag += "  (contended)" if rec["contended"] else ""
                print(f"  [{r + 1}/{args.repeats}] {c:10s} start-up {_fmt(rec['startup_s'], '.2f')} s, "
                      f"steady {_fmt(rec.get('steady_rate'), '.0f')} out/s, total {rec['total_s']:.2f} s, "
                      f"CPU {rec['cpu_s']:.1f} s, background {rec['background_cores']:.2f} cores{flag}", flush=True)
                if not rec["contended"] or bad:
                    break
        if r == 0 and "loop" in configs:
            for c in configs:
                if c != "loop":
                    identity[c] = compare_outputs(outs["loop"], outs[c])
                    if not identity[c]["identical"] and c.startswith("augkit"):
                        identity[c]["mean_abs_difference"] = mean_difference(outs["loop"], outs[c])

    # Medians over the uncontended runs (all runs of a config if none was uncontended).
    used: dict[str, list[dict]] = {}
    for c in configs:
        ok = [x for x in results[c] if x["returncode"] == 0 and x["outputs"] == expected]
        clean = [x for x in ok if not x["contended"]]
        used[c] = clean or ok or results[c]
        if not clean:
            print(f"warning: every run of {c} was contended or failed; its figures are unreliable", file=sys.stderr)

    # ---- report
    med = {c: {key: _median(x.get(key) for x in used[c])
               for key in ("startup_s", "startup_mtime_s", "steady_rate", "rate_first_to_last", "total_s",
                           "end_to_end_rate", "cpu_s", "tail_s", "loop_import_s", "loop_inner_rate",
                           "background_cores")}
           for c in configs}
    print(f"\nmedians of the uncontended runs ({', '.join(f'{c} {len(used[c])}' for c in configs)}), "
          f"{expected} outputs per run:")
    header = f"{'config':10s} {'start-up s':>10s} {'steady out/s':>12s} {'first->last out/s':>17s} " \
             f"{'total s':>8s} {'end-to-end out/s':>16s} {'CPU s':>6s} {'CPU ms/out':>10s} {'others':>6s}"
    print(header)
    print("-" * len(header))
    for c in configs:
        m = med[c]
        cpu_per = 1000 * m["cpu_s"] / expected if m["cpu_s"] else None
        print(f"{c:10s} {_fmt(m['startup_s'], '.2f'):>10s} {_fmt(m['steady_rate'], '.0f'):>12s} "
              f"{_fmt(m['rate_first_to_last'], '.0f'):>17s} {_fmt(m['total_s'], '.2f'):>8s} "
              f"{_fmt(m['end_to_end_rate'], '.0f'):>16s} {_fmt(m['cpu_s'], '.1f'):>6s} {_fmt(cpu_per, '.2f'):>10s} "
              f"{_fmt(m['background_cores'], '.2f'):>6s}")
    print("(CPU: all processes of the run, start-up included; others: cores other processes kept busy meanwhile)")
    if "loop" in configs and med["loop"]["loop_import_s"] is not None:
        print(f"(loop: imports done {med['loop']['loop_import_s']:.2f} s after start; its own steady rate "
              f"{med['loop']['loop_inner_rate']:.0f} out/s)")

    ratios: dict[str, dict] = {}
    verdict = None
    if "loop" in configs and med["loop"]["steady_rate"]:
        loop_rate = med["loop"]["steady_rate"]
        print("\nratios against the loop (steady-state; the paired per-repeat median in brackets):")
        for c in configs:
            if c == "loop" or not med[c]["steady_rate"]:
                continue
            paired = _median(
                a.get("steady_rate") / b["steady_rate"]
                for a, b in _pairs(used[c], used["loop"]))
            e2e = med[c]["end_to_end_rate"] / med["loop"]["end_to_end_rate"]
            ratios[c] = {"steady": med[c]["steady_rate"] / loop_rate, "steady_paired": paired, "end_to_end": e2e}
            same = identity.get(c, {}).get("identical")
            apart = identity.get(c, {}).get("mean_abs_difference")
            apart = f" (mean |difference| {apart:.2f} grey levels)" if apart is not None else ""
            print(f"  {c:10s} steady {ratios[c]['steady']:.2f}x ({_fmt(paired, '.2f')}x), end-to-end {e2e:.2f}x, "
                  f"start-up {_fmt(med[c]['startup_s'], '.2f')} s vs loop {_fmt(med['loop']['startup_s'], '.2f')} s; "
                  f"outputs byte-identical to the loop's: {'yes' if same else 'NO' if same is False else '-'}{apart}")
        if "augkit-w2" in ratios:
            ratio = ratios["augkit-w2"]["steady"]
            verdict = ratio >= goal
            cores = info["cores_usable"]
            note = "" if cores == 2 else f" (NOTE: this machine has {cores} usable cores, the goal is stated for 2)"
            if "loop-x2" in ratios:
                print(f"augkit --workers 2 reaches {med['augkit-w2']['steady_rate'] / med['loop-x2']['steady_rate']:.2f}x "
                      f"of two uncoordinated loops (loop-x2: {ratios['loop-x2']['steady']:.2f}x the loop on this machine)")
            few = min(len([x for x in used[c] if not x["contended"]]) for c in ("loop", "augkit-w2"))
            if few < 3:
                print(f"caution: only {few} uncontended run(s) on one side; on a busy machine rerun with more --repeats")
            unsure = " (UNRELIABLE: no uncontended run on one side)" if few == 0 else ""
            print(f"\nGOAL {'MET' if verdict else 'NOT MET'}{unsure}: augkit --workers 2 steady-state is {ratio:.2f}x the "
                  f"single-process loop on the {args.image_set} set (goal >= {goal}; {LIMIT} is the limit for equal "
                  f"work per output, and augkit does less: a recipe's deterministic head runs once per input, and a "
                  f"JPEG it shrinks is decoded at 1/2-1/8){note}")
    for c, d in identity.items():
        reduced = args.image_set == "photos12" and c in ("augkit-w2", "augkit-w1", "augkit-w0")  # may differ
        if not d["identical"] and not reduced:
            print(f"warning: {c} outputs differ from the loop's: {d}", file=sys.stderr)

    saved = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/augment_bench.py"] + (argv if argv is not None else sys.argv[1:])),
        "machine": info, "set": set_stats, "images": args.images, "copies": args.copies, "repeats": args.repeats,
        "loop_threads": args.loop_threads, "outputs_in": str(runs_dir), "cpu_counts_descendants": subreaper,
        "max_background": args.max_background, "runs": results, "medians": med, "ratios": ratios,
        "identical_to_loop": identity, "set_name": args.image_set, "goal": goal, "goal_met": verdict,
        "commands": {c: [[a if a != LOOP_CODE else "<LOOP_CODE>" for a in cmd] for cmd in cmd_list]
                     for c, cmd_list in cmds.items()},
    }
    path = args.json or WORK / "augment_bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"raw figures: {path}")
    if not args.keep:
        shutil.rmtree(runs_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
