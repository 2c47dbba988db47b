"""Benchmark: `augkit.flow` with MixUp/CutMix on against the same flow without, in one run.

Work per image, identical on both sides: decode a ~500x375 JPEG (the set of augment_bench),
the standard recipe (recipes/standard.yaml), 224x224, ImageNet normalisation to float32,
batches of 32 in NCHW, 2 workers. The mixed side adds ``mixup=0.8, cutmix=1.0`` (timm's
ImageNet settings: every batch mixed, CutMix half the time) and ``label_smoothing=0.1``, so
every batch is mixed in its worker, in place in its shared-memory slot, with soft targets.

Sides, each in a fresh process, in pairs one after the other (alternating which goes first),
each run started once the machine is quiet: steady images/s from the end of the first batch
to the end of the epoch, and the CPU time the flow's processes (parent and workers) spent
per image meanwhile. A pair is kept only when other processes used less than
--max-background cores during both runs (the machine's CPU time less the flow's); the
medians are over the kept pairs. Goal: mixed >= 0.95x plain.

It also times, in this process and one thread, what a flow worker does per batch with
mixing and without (BatchTask on the same 32 images, the two sides interleaved batch by
batch so that both see the same load), and mixing alone (MixUp, CutMix, float32
32x3x224x224): on a shared machine, the figure that says what mixing adds.

    python benchmarks/mix_bench.py [--images 600] [--repeats 5] [--max-attempts 30]
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
from augment_bench import build_set, machine_info, wait_for_quiet  # noqa: E402

RECIPE = ROOT / "recipes" / "standard.yaml"
GOAL = 0.95
MIXED = dict(mixup=0.8, cutmix=1.0, label_smoothing=0.1)

SIDE = r'''
import json, os, sys, time
side, src, recipe, batch_size, mixed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
TICK = os.sysconf("SC_CLK_TCK")

def tree_cpu_s():
    """CPU seconds used so far by this process and its descendants alive (the workers)."""
    stats, children = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total

def machine_cpu_s():
    """Busy CPU seconds of the whole machine so far, every process's."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:8]]
    return (sum(fields[:3]) + sum(fields[5:7])) / TICK

start = time.perf_counter()
import augkit
options = mixed if side == "mixed" else {}
batches = augkit.flow(src, recipe, batch_size=batch_size, workers=2, preprocess="torch", channels_first=True,
                      size=224, shuffle=True, seed=0, **options)
iterator = iter(batches)
x, y = next(iterator)
first, cpu_first, machine_first = time.perf_counter(), tree_cpu_s(), machine_cpu_s()
count = 0
for _ in range(len(batches) - 1):  # not past the last batch: the flow's workers end with the epoch
    x, y = next(iterator)
    count += len(x)
end, cpu_end, machine_end = time.perf_counter(), tree_cpu_s(), machine_cpu_s()
assert next(iterator, None) is None
assert x.shape[1:] == (3, 224, 224) and (y.ndim == 2) == (side == "mixed"), (x.shape, y.shape)
others = ((machine_end - machine_first) - (cpu_end - cpu_first)) / (end - first)
print(json.dumps({"first_batch_s": first - start, "steady_images_per_s": count / (end - first),
                  "cpu_ms_per_image": 1000 * (cpu_end - cpu_first) / count, "others_busy_cores": others}))
'''


def run_side(side: str, src: Path, batch_size: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SIDE, side, str(src), str(RECIPE), str(batch_size), json.dumps(MIXED)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def clean_pairs(src: Path, args) -> tuple[list[tuple[dict, dict]], int]:
    """(plain, mixed) runs, one after the other in alternating order, kept only when other
    processes used less than --max-background cores during both steady phases; at most
    --max-attempts pairs are tried. Returns the pairs kept and how many were tried."""
    kept, tried = [], 0
    while len(kept) < args.repeats and tried < args.max_attempts:
        order = ("plain", "mixed") if tried % 2 == 0 else ("mixed", "plain")
        runs = {}
        for side in order:
            wait_for_quiet(args.quiet_wait, args.max_background)
            runs[side] = run_side(side, src, args.batch_size)
        tried += 1
        clean = max(r["others_busy_cores"] for r in runs.values()) < args.max_background
        kept += [(runs["plain"], runs["mixed"])] if clean else []
        print(f"pair {tried} ({'kept' if clean else 'contended'}): " + ", ".join(
            f"{side} {r['steady_images_per_s']:.0f} images/s, others {r['others_busy_cores']:.2f} cores"
            for side, r in runs.items()), flush=True)
    return kept, tried


def _mixup_whole_halves(x, lam: float) -> None:
    """The first way augkit mixed (kept to compare): the two halves of the batch at once,
    with a difference of half a batch that does not stay in the cache."""
    half = len(x) // 2
    a, b = x[:half], x[len(x) - half:][::-1]
    moved = a - b
    moved *= 1.0 - lam
    a -= moved
    b += moved


def worker_cost(src: Path, batch_size: int, batches: int) -> dict:
    """What a flow worker does per batch, with mixing and without, in this process and one
    thread, interleaved batch by batch (so both see the same load): BatchTask on the same
    samples, plain and with the mixer (the mixed side draws its mix as batch b of epoch 0).
    Also the mixing alone, MixUp and CutMix, and MixUp the first way (whole halves)."""
    import cv2

    from augkit.input.discovery import discover
    from augkit.recipes import load_recipe
    from augkit.stages.batches import BatchItem, BatchTask, SamplePipeline
    from augkit.stages.mixing import BatchMixer, MixDraw, MixOptions, mix_in_place

    cv2.setNumThreads(1)
    dataset = discover(src)
    index = dataset.class_to_index
    pipeline = SamplePipeline(load_recipe(RECIPE), seed=0, size=(224, 224), preprocess="torch", channels_first=True)
    plain = BatchTask(pipeline, (224, 224))
    mixed = BatchTask(pipeline, (224, 224), BatchMixer(MixOptions(**MIXED), 0, len(dataset.classes), True))
    times: dict[str, list[float]] = {"plain": [], "mixed": [], "mixup": [], "cutmix": [], "mixup_whole_halves": []}
    for b in range(batches):
        chosen = dataset.samples[(b * batch_size) % len(dataset):][:batch_size]
        item = BatchItem(0, b, tuple((s.path, s.key, index[s.label]) for s in chosen), None)
        for side, task in ((("plain", plain), ("mixed", mixed)) if b % 2 == 0 else (("mixed", mixed), ("plain", plain))):
            t0 = time.perf_counter()
            x = task(item).array
            times[side].append(time.perf_counter() - t0)
        for kind in ("mixup", "cutmix", "mixup_whole_halves"):
            t0 = time.perf_counter()
            if kind == "mixup_whole_halves":
                _mixup_whole_halves(x, 0.7)
            else:
                mix_in_place(x, MixDraw(0.7, (30, 152, 40, 162) if kind == "cutmix" else None), channels_first=True)
            times[kind].append(time.perf_counter() - t0)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    ms["plain_over_mixed"] = sum(times["plain"]) / sum(times["mixed"])
    ms["paired"] = statistics.median(p / m for p, m in zip(times["plain"], times["mixed"]))
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5, help="uncontended pairs to collect")
    parser.add_argument("--max-attempts", type=int, default=30, help="pairs to try at most")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--worker-batches", type=int, default=40, help="batches of the in-process comparison")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds to wait for a quiet machine per run")
    parser.add_argument("--max-background", type=float, default=0.25,
                        help="cores other processes may use during a kept run")
    args = parser.parse_args()
    src, _ = build_set(args.images)
    pairs, tried = clean_pairs(src, args)
    print(f"\nmachine: {json.dumps(machine_info())}; load (1, 5, 15 min) {os.getloadavg()}")
    if pairs:
        med = {s: statistics.median(pair[i]["steady_images_per_s"] for pair in pairs)
               for i, s in enumerate(("plain", "mixed"))}
        paired = statistics.median(m["steady_images_per_s"] / p["steady_images_per_s"] for p, m in pairs)
        cpu = {s: statistics.median(pair[i]["cpu_ms_per_image"] for pair in pairs)
               for i, s in enumerate(("plain", "mixed"))}
        print(f"{len(pairs)} uncontended pairs of {tried} tried")
        for s in ("plain", "mixed"):
            print(f"{s:<8}{med[s]:>10.1f} images/s, {cpu[s]:.2f} CPU ms per image (steady, median)")
        ratio = med["mixed"] / med["plain"]
        print(f"mixed / plain = {ratio:.3f} of the medians, {paired:.3f} the median of the pairs' ratios "
              f"(goal >= {GOAL}: {'met' if min(ratio, paired) >= GOAL else 'NOT met'})")
    else:
        print(f"no uncontended pair in {tried} tried: the end-to-end ratio could not be measured here")
    cost = worker_cost(src, args.batch_size, args.worker_batches)
    print(f"\na worker's batch of {args.batch_size}, one thread, {args.worker_batches} batches interleaved: plain "
          f"{cost['plain']:.1f} ms, mixed {cost['mixed']:.1f} ms (medians); plain / mixed = "
          f"{cost['plain_over_mixed']:.3f} of the sums, {cost['paired']:.3f} the median of the batches' ratios "
          f"(goal >= {GOAL}: {'met' if min(cost['plain_over_mixed'], cost['paired']) >= GOAL else 'NOT met'})")
    print(f"mixing alone: MixUp {cost['mixup']:.2f} ms, CutMix {cost['cutmix']:.2f} ms; MixUp on whole halves of the "
          f"batch (the first way) {cost['mixup_whole_halves']:.2f} ms")


if __name__ == "__main__":
    main()
