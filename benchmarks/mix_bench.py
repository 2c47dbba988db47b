"""Benchmark: `augkit.flow` with MixUp/CutMix on against the same flow without, in one run.

Work per image, identical on both sides: decode a ~500x375 JPEG (the set of augment_bench),
the standard recipe (recipes/standard.yaml), 224x224, ImageNet normalisation to float32,
batches of 32 in NCHW, 2 workers. The mixed side adds ``mixup=0.8, cutmix=1.0`` (timm's
ImageNet settings: every batch mixed, CutMix half the time) and ``label_smoothing=0.1``, so
every batch is mixed in its worker, in place in its shared-memory slot, with soft targets.

Sides, each in a fresh process, alternated, median of --repeats, each run started once the
machine is quiet (other processes leave the cores idle) and the machine's busy cores
recorded: steady images/s from the end of the first batch to the end of the epoch. Goal:
mixed >= 0.95x plain.

It also times, in this process and one thread, what mixing one batch costs (MixUp and
CutMix, float32 32x3x224x224) against what building that batch costs (BatchTask on 32
images): the part of the work mixing adds, whatever the machine's load.

    python benchmarks/mix_bench.py [--images 600] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from augment_bench import _busy_cores, build_set, machine_info, wait_for_quiet  # noqa: E402

RECIPE = ROOT / "recipes" / "standard.yaml"
GOAL = 0.95
MIXED = dict(mixup=0.8, cutmix=1.0, label_smoothing=0.1)

SIDE = r'''
import json, sys, time
side, src, recipe, batch_size, mixed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
start = time.perf_counter()
import augkit
options = mixed if side == "mixed" else {}
batches = augkit.flow(src, recipe, batch_size=batch_size, workers=2, preprocess="torch", channels_first=True,
                      size=224, shuffle=True, seed=0, **options)
iterator = iter(batches)
x, y = next(iterator)
first = time.perf_counter()
count = 0
for x, y in iterator:
    count += len(x)
end = time.perf_counter()
assert x.shape[1:] == (3, 224, 224) and (y.ndim == 2) == (side == "mixed"), (x.shape, y.shape)
print(json.dumps({"first_batch_s": first - start, "steady_images_per_s": count / (end - first)}))
'''


def run_side(side: str, src: Path, batch_size: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    c0, t0 = _machine_busy()
    done = subprocess.run([sys.executable, "-c", SIDE, side, str(src), str(RECIPE), str(batch_size), json.dumps(MIXED)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    c1, t1 = _machine_busy()
    result["machine_busy_cores"] = (c1 - c0) / (t1 - t0)  # ours (2 workers + the parent) and anyone else's
    return result


def _machine_busy() -> tuple[float, float]:
    from augment_bench import _machine_cpu_s

    return _machine_cpu_s(), time.monotonic()


def _mixup_whole_halves(x, lam: float) -> None:
    """The first way augkit mixed (kept to compare): the two halves of the batch at once,
    with a difference of half a batch that does not stay in the cache."""
    half = len(x) // 2
    a, b = x[:half], x[len(x) - half:][::-1]
    moved = a - b
    moved *= 1.0 - lam
    a -= moved
    b += moved


def mixing_cost(src: Path, batch_size: int, repeats: int) -> dict:
    """ms per batch: building it (BatchTask, one thread) and mixing it (MixUp, CutMix)."""
    import cv2
    import numpy as np

    from augkit.input.discovery import discover
    from augkit.recipes import load_recipe
    from augkit.stages.batches import BatchItem, BatchTask, SamplePipeline
    from augkit.stages.mixing import MixDraw, mix_in_place

    cv2.setNumThreads(1)
    dataset = discover(src)
    index = dataset.class_to_index
    samples = tuple((s.path, s.key, index[s.label]) for s in dataset.samples[:batch_size])
    task = BatchTask(SamplePipeline(load_recipe(RECIPE), seed=0, size=(224, 224), preprocess="torch",
                                    channels_first=True), (224, 224))
    build, mixup, cutmix, halves = [], [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        x = task(BatchItem(0, r, samples, None)).array
        build.append(time.perf_counter() - t0)
        for kind, times in (("mixup", mixup), ("cutmix", cutmix), ("halves", halves)):
            draw = MixDraw(0.7, (30, 152, 40, 162) if kind == "cutmix" else None)
            t0 = time.perf_counter()
            if kind == "halves":
                _mixup_whole_halves(x, 0.7)
            else:
                mix_in_place(x, draw, channels_first=True)
            times.append(time.perf_counter() - t0)
    ms = {k: 1000 * statistics.median(v) for k, v in (("build", build), ("mixup", mixup), ("cutmix", cutmix),
                                                       ("mixup_whole_halves", halves))}
    ms["mixup_share"] = ms["mixup"] / ms["build"]
    ms["cutmix_share"] = ms["cutmix"] / ms["build"]
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds to wait for a quiet machine per run")
    parser.add_argument("--max-background", type=float, default=0.3, help="busy cores that count as quiet")
    args = parser.parse_args()
    src, _ = build_set(args.images)
    sides = ("plain", "mixed")
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(args.repeats):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            before = wait_for_quiet(args.quiet_wait, args.max_background)
            results[side].append({**run_side(side, src, args.batch_size), "busy_before": before})
            print(f"repeat {r + 1} {side:<6} {json.dumps(results[side][-1])}", flush=True)
    cost = mixing_cost(src, args.batch_size, max(3, args.repeats))
    med = {s: statistics.median(run["steady_images_per_s"] for run in results[s]) for s in sides}
    ratio = med["mixed"] / med["plain"]
    # Runs of one repeat follow each other, so their ratio shares the machine's load of the moment.
    paired = statistics.median(m["steady_images_per_s"] / p["steady_images_per_s"]
                               for p, m in zip(results["plain"], results["mixed"]))
    info = machine_info()
    print(f"\nmachine: {json.dumps(info)}; load (1, 5, 15 min) {os.getloadavg()}; "
          f"busy cores during the runs {statistics.median(r['machine_busy_cores'] for s in sides for r in results[s]):.2f}")
    for s in sides:
        print(f"{s:<8}{med[s]:>10.1f} images/s (steady, median of {args.repeats})")
    print(f"\nmixed / plain = {ratio:.3f} of the medians, {paired:.3f} the median of the repeats' ratios "
          f"(goal >= {GOAL}: {'met' if min(ratio, paired) >= GOAL else 'NOT met'})")
    print(f"one batch of {args.batch_size}, one thread: built in {cost['build']:.0f} ms; MixUp {cost['mixup']:.1f} ms "
          f"({100 * cost['mixup_share']:.1f} %), CutMix {cost['cutmix']:.2f} ms ({100 * cost['cutmix_share']:.2f} %); "
          f"MixUp on whole halves of the batch (the first way) {cost['mixup_whole_halves']:.1f} ms")


if __name__ == "__main__":
    main()
