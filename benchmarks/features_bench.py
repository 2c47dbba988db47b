#!/usr/bin/env python
"""Benchmark: ``augkit cache-features`` against pure ONNX Runtime inference, and its memory.

What it does, in one run on one machine:

1. Builds (or reuses) the benchmark image set of ``augment_bench.py`` (N ImageNet-like
   JPEGs, median 500x375) and a model with MobileNet v2 1.0's exact structure and random
   weights (``tests/mobilenet_like.py``: 224x224, ~300 M multiply-adds, 1280 features;
   the same parameter count as the zoo's ``mobilenetv2-12.onnx``).
2. Throughput, alternating ``--repeats`` times (default 5), each side a fresh process:
   - ``inference``: pure ONNX Runtime on batches that are already decoded and
     preprocessed (in memory), the same cut graph, batch size and thread count as
     augkit uses (one thread per core): the rate augkit can at best approach.
   - ``cache-features``: ``augkit cache-features SET -o OUT --weights MODEL`` with its
     defaults (the mobilenet_v2 entry's preprocessing: decode, resize 256, crop 224,
     normalise in the workers; inference in the parent). Its steady rate is rows/s from
     the first batch done to the last (``steady_rows_per_s`` of ``--json``); the
     end-to-end rate (rows / process wall time, start-up included) is reported too.
   The claim is the ratio of the two steady rates: goal >= 0.85 on 2 cores.
3. Memory: ``cache-features`` on 1,000 and on 10,000 small images (64x48 JPEGs, the same
   model structure at a 64x64 input so the run is short), sampling every 20 ms the
   proportional set size (PSS, shared pages counted once) of the whole process tree
   (command, forkserver, workers) and the parent's own peak (VmHWM). Goal: 10,000-image
   peak <= 1.2x the 1,000-image peak.
Prints a table and the verdicts, saves raw figures as JSON. Exit code 0 whatever the
figures: this is a measurement.

Usage:  python benchmarks/features_bench.py [--images 1000] [--repeats 5] [--skip-memory]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

# The same image set, machine description and shared-machine guards as augment_bench.py.
from augment_bench import (_become_subreaper, _machine_cpu_s, _reap_descendants, build_set,  # noqa: E402
                           machine_info, wait_for_quiet)

GOAL_RATIO, GOAL_MEMORY = 0.85, 1.2
MODEL_SEED = 0

# Pure inference, run as `python -c REFERENCE MODEL SET BATCH THREADS ROWS MODE`: the cut
# graph as augkit cuts it, fed float32 batches normalised before the clock starts (so the
# reference does not even pay the normalisation augkit does in the graph). MODE "streams"
# runs it exactly as augkit does (augkit.stages.features.inference.inference_plan: one thread and session
# per stream, each taking the next batch); "intra" is the usual single session with
# THREADS intra-op threads.
# The timed part of a pure-inference reference (shared with predict_bench.py): ``rows``
# rows in batches of ``batch`` over the prepared ``batches``, one thread per session, each
# taking the next batch, as augkit's streams do; ``keep(out, n)`` is what is done with a
# batch's output. Prints the rate and CPU per row as JSON.
STREAMS = r'''
lock = threading.Lock()
todo = [min(batch, rows - start) for start in range(0, rows, batch)]
def stream(session):
    i = 0
    while True:
        with lock:
            if not todo:
                return
            n = todo.pop()
        keep(session.run([model.output_name], {model.input_name: batches[i % 4][:n]})[0], n)
        i += 1
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
workers = [threading.Thread(target=stream, args=(s,)) for s in sessions]
for w in workers:
    w.start()
for w in workers:
    w.join()
elapsed = time.perf_counter() - t0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
print(json.dumps({"rows": rows, "seconds": elapsed, "rate": rows / elapsed, "cpu_ms_per_row": 1000 * cpu / rows}))
'''

REFERENCE = r'''
import sys, time, json, threading, resource
from pathlib import Path
model_path, src, batch, threads, rows, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
import numpy as np
from augkit.stages.backbones import resolve_backbone, feature_model
from augkit.input.decoding import decode_image
from augkit.stages.features import to_input
from augkit.stages.features.inference import inference_plan, make_session
backbone = resolve_backbone("mobilenet_v2", weights=model_path)
model = feature_model(model_path, backbone)
streams, intra = inference_plan(threads) if mode == "streams" else (1, threads)
sessions = [make_session(model, intra) for _ in range(streams)]
paths = sorted(str(p) for p in Path(src).rglob("*.jpg"))[: 4 * batch]
x = np.stack([to_input(decode_image(p), backbone.preprocessing) for p in paths])
batches = [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(4)]
for s in sessions:
    s.run([model.output_name], {model.input_name: batches[0]})  # warm-up, as augkit's first batch
def keep(out, n):
    out.reshape(n, -1).astype(np.float16)  # augkit stores float16 by default
''' + STREAMS


def _augkit_cmd() -> list[str]:
    script = Path(sys.executable).parent / "augkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "augkit"]


def build_model(input_size: int = 224) -> Path:
    import mobilenet_like

    path = WORK / f"mobilenetv2-random-{input_size}.onnx"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        mobilenet_like.save(mobilenet_like.full(seed=MODEL_SEED, input_size=input_size), path)
    return path


def build_small_set(n: int) -> Path:
    """n small JPEGs (64x48, 4 classes), deterministic; reused when already there."""
    import cv2
    import numpy as np

    dest = WORK / f"small-{n}"
    if dest.is_dir() and sum(1 for _ in dest.rglob("*.jpg")) == n:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for i in range(n):
        image = np.roll(base, i % 64, axis=1) // 2 + np.uint8(i % 128)
        out = dest / f"class{i % 4}" / f"img_{i:05d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return dest


# --- measuring -----------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict[str, str], sample_memory: bool) -> dict:
    """Run ``cmd``; its JSON output, wall time, CPU (its whole process tree, once reaped)
    and the cores other processes kept busy meanwhile (``background_cores``)."""
    peak = {"tree_pss_kb": 0, "parent_hwm_kb": 0}
    stop = threading.Event()
    machine0 = _machine_cpu_s()
    kids0, self0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)

    def sample() -> None:
        while not stop.is_set():
            pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in _tree(proc.pid))
            peak["tree_pss_kb"] = max(peak["tree_pss_kb"], pss)
            peak["parent_hwm_kb"] = max(peak["parent_hwm_kb"], _kb(f"/proc/{proc.pid}/status", "VmHWM:"))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    if sample_memory:
        sampler.join()
    _reap_descendants()
    kids1, self1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    machine1 = _machine_cpu_s()
    if proc.returncode != 0:
        print(f"  exit code {proc.returncode}: {' '.join(cmd[:3])}...\n{stderr.decode(errors='replace')[-2000:]}", file=sys.stderr)
    try:
        result = json.loads(stdout.decode())
    except ValueError:
        result = {}
    cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    own = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    return {"wall_s": wall, "process_cpu_s": cpu, "background_cores": max(0.0, (machine1 - machine0 - cpu - own) / wall),
            "returncode": proc.returncode, **result, **(peak if sample_memory else {})}


def run_uncontended(cmd: list[str], env: dict[str, str], args, sample_memory: bool = False) -> dict:
    """``run_measured`` after waiting for a quiet machine; a run during which others kept
    more than ``--max-background`` cores busy is retried (``--retries`` times) and marked."""
    for attempt in range(args.retries + 1):
        if args.quiet_wait > 0:
            wait_for_quiet(args.quiet_wait, args.max_background)
        rec = run_measured(cmd, env, sample_memory)
        rec["contended"] = rec["background_cores"] > args.max_background
        rec["attempts"] = attempt + 1
        if not rec["contended"]:
            break
    return rec


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=None, help="images of the throughput set (default 1000; 200 for photos12)")
    ap.add_argument("--set", dest="image_set", choices=("imagenet", "photos12"), default="imagenet",
                    help="photos12: the 12-megapixel JPEGs of photo_set.py (goal >= 0.9, issue #16)")
    ap.add_argument("--repeats", type=int, default=5, help="alternating runs of each side (default 5)")
    ap.add_argument("--batch-size", type=int, default=None, help="both sides (default: cache-features' own)")
    ap.add_argument("--workers", type=int, default=None, help="cache-features --workers (default: its own)")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads, both sides (default: one per core)")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="before each run, wait up to this many seconds for an idle machine (default 20; 0: never)")
    ap.add_argument("--max-background", type=float, default=0.15,
                    help="a run while other processes kept more cores busy is contended: retried, left out of medians")
    ap.add_argument("--retries", type=int, default=2, help="retries of a contended run (default 2)")
    ap.add_argument("--memory-images", default="1000,10000", help="the two dataset sizes of the memory test")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--json", type=Path, default=WORK / "features_bench.json")
    args = ap.parse_args(argv)

    from augkit.engines.local import default_workers

    saved_subreaper = _become_subreaper()  # augkit's forkserver and workers count in the CPU figures
    info = machine_info()
    cores = info["cores_usable"]
    threads = args.threads or default_workers()
    print(f"machine: {info['cpu']}, {cores} usable cores, {info['memory_gb']} GB, {info['simd']}")
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", AUGKIT_CACHE_DIR=str(WORK / "augkit-cache"))
    saved: dict = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": info, "threads": threads,
                   "cpu_counts_descendants": saved_subreaper, "max_background": args.max_background}
    try:
        import onnxruntime

        saved["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass

    if not args.skip_throughput:
        from augkit.stages.features.inference import batch_size_for

        batch = args.batch_size or batch_size_for(threads)
        if args.image_set == "photos12":
            from photo_set import build_photo_set

            args.images = args.images or 200
            src, stats = build_photo_set(args.images)
            described = f"{stats['images']} 12-megapixel JPEGs, {stats['mean_mb']} MB on average"
        else:
            args.images = args.images or 1000
            src, stats = build_set(args.images)
            described = f"{stats['images']} JPEGs, median {stats['median_width']:g}x{stats['median_height']:g}"
        model = build_model(224)
        print(f"set: {src.relative_to(ROOT)}: {described}; model: {model.relative_to(ROOT)} (MobileNet v2 1.0 "
              f"structure, random weights); batch {batch}, {threads} ONNX Runtime threads")
        out = WORK / "features-out"
        extra = ["--workers", str(args.workers)] if args.workers is not None else []
        e2e_cmd = _augkit_cmd() + ["cache-features", str(src), "-o", str(out), "--weights", str(model), "--json",
                                   "--quiet", "--batch-size", str(batch), "--threads", str(threads), *extra]
        ref_cmds = {mode: [sys.executable, "-c", REFERENCE, str(model), str(src), str(batch), str(threads),
                           str(args.images), mode] for mode in ("streams", "intra")}
        runs: dict[str, list[dict]] = {"inference": [], "inference-intra": [], "cache-features": []}
        for r in range(args.repeats):
            recs = {}
            for side in ("inference", "cache-features", "inference-intra"):
                if side == "cache-features":
                    shutil.rmtree(out, ignore_errors=True)
                    recs[side] = run_uncontended(e2e_cmd, env, args)
                else:
                    recs[side] = run_uncontended(ref_cmds["streams" if side == "inference" else "intra"], env, args)
                runs[side].append(recs[side])
            ref, e2e, intra = recs["inference"], recs["cache-features"], recs["inference-intra"]
            ratio = (e2e.get("steady_rows_per_s") or 0) / ref["rate"] if ref.get("rate") else 0.0
            print(f"  [{r + 1}/{args.repeats}] inference {ref.get('rate', 0):.0f} img/s (one session, intra-op: "
                  f"{intra.get('rate', 0):.0f}) | cache-features steady {e2e.get('steady_rows_per_s') or 0:.0f} rows/s, "
                  f"{e2e.get('rows', 0)} rows in {e2e['wall_s']:.1f} s wall (first batch at "
                  f"{e2e.get('first_batch_s') or 0:.1f} s, workers {e2e.get('workers')}) | ratio {ratio:.3f}"
                  f"{' (contended)' if any(x['contended'] for x in recs.values()) else ''}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        # Medians over the repeats where no side was contended (all of them if none was clean).
        clean = [i for i in range(args.repeats) if not any(runs[side][i]["contended"] for side in runs)]
        if not clean:
            print("warning: every repeat was contended; the medians use them all", file=sys.stderr)
            clean = list(range(args.repeats))
        runs_all, runs = runs, {side: [recs[i] for i in clean] for side, recs in runs.items()}
        ref_rate = _median(r.get("rate") for r in runs["inference"])
        intra_rate = _median(r.get("rate") for r in runs["inference-intra"])
        steady = _median(r.get("steady_rows_per_s") for r in runs["cache-features"])
        e2e_rate = _median(r.get("rows", 0) / r["wall_s"] for r in runs["cache-features"])
        ref_cpu = _median(r.get("cpu_ms_per_row") for r in runs["inference"])
        e2e_cpu = _median(1000 * r["process_cpu_s"] / r["rows"] for r in runs["cache-features"] if r.get("rows"))
        paired = _median((e.get("steady_rows_per_s") or 0) / r["rate"]
                         for r, e in zip(runs["inference"], runs["cache-features"]) if r.get("rate"))
        ratio = steady / ref_rate if steady and ref_rate else None
        best_ref = max(ref_rate or 0, intra_rate or 0)
        goal = 0.9 if args.image_set == "photos12" else GOAL_RATIO
        met = ratio is not None and ratio >= goal
        note = "" if cores == 2 else f" (NOTE: {cores} usable cores; the goal is stated for 2)"
        print(f"\nmedians of {len(clean)} uncontended repeat(s): inference {ref_rate:.0f} img/s as augkit runs it ({intra_rate:.0f} as one intra-op session), "
              f"{ref_cpu:.2f} CPU ms/img; cache-features steady {steady:.0f} rows/s, end-to-end {e2e_rate:.0f} rows/s "
              f"(start-up included), {e2e_cpu:.2f} CPU ms/row over the whole run")
        print(f"GOAL {'MET' if met else 'NOT MET'}: cache-features steady state is {ratio:.3f}x pure inference "
              f"(paired median {paired:.3f}x; {steady / best_ref:.3f}x the faster of the two references; "
              f"goal >= {goal}){note}")
        saved["throughput"] = {"set": stats, "batch_size": batch, "runs": runs_all, "clean_repeats": clean,
                               "inference_rate": ref_rate,
                               "inference_intra_rate": intra_rate, "steady_rate": steady, "end_to_end_rate": e2e_rate,
                               "inference_cpu_ms_per_row": ref_cpu, "cache_features_cpu_ms_per_row": e2e_cpu,
                               "ratio": ratio, "paired_ratio": paired, "ratio_to_best_reference": steady / best_ref,
                               "goal_met": met,
                               "commands": {"cache-features": e2e_cmd,
                                            "inference": ref_cmds["streams"][:2] + ["<REFERENCE>"] + ref_cmds["streams"][3:]}}

    if not args.skip_memory:
        small_model = build_model(64)
        sizes = [int(s) for s in args.memory_images.split(",")]
        print(f"\nmemory: cache-features on {' and '.join(f'{n:,}' for n in sizes)} images of 64x48, model input 64x64")
        mem = {}
        for n in sizes:
            src = build_small_set(n)
            out = WORK / f"features-mem-{n}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = _augkit_cmd() + ["cache-features", str(src), "-o", str(out), "--weights", str(small_model),
                                   "--input-size", "64", "--json", "--quiet"]
            rec = run_uncontended(cmd, env, args, sample_memory=True)
            shutil.rmtree(out, ignore_errors=True)
            mem[n] = rec
            print(f"  {n:>6,} images: {rec.get('rows', 0):,} rows in {rec['wall_s']:.1f} s; peak PSS of the process tree "
                  f"{rec['tree_pss_kb'] / 1024:.0f} MB, parent peak RSS {rec['parent_hwm_kb'] / 1024:.0f} MB", flush=True)
        small, large = mem[sizes[0]], mem[sizes[-1]]
        tree_ratio = large["tree_pss_kb"] / small["tree_pss_kb"]
        parent_ratio = large["parent_hwm_kb"] / small["parent_hwm_kb"]
        met = max(tree_ratio, parent_ratio) <= GOAL_MEMORY
        print(f"GOAL {'MET' if met else 'NOT MET'}: peak memory {sizes[-1]:,} vs {sizes[0]:,} images: process tree "
              f"{tree_ratio:.3f}x, parent {parent_ratio:.3f}x (goal <= {GOAL_MEMORY})")
        saved["memory"] = {"runs": {str(k): v for k, v in mem.items()}, "tree_ratio": tree_ratio,
                           "parent_ratio": parent_ratio, "goal_met": met}

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"raw figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
