"""Benchmark: training batches from `augkit.flow` against a torch DataLoader, in one run.

Work per image, identical on every side: decode a ~500x375 JPEG, the standard recipe
(recipes/standard.yaml, ending at 224x224), ImageNet normalisation to float32, batches of
32 in NCHW. Sides, each in a fresh process, alternated, median of --repeats:

- loop:        a hand-written torch Dataset in a DataLoader with num_workers=0
- dataloader:  the same Dataset in a DataLoader with num_workers=2 (the usual recipe)
- flow:        augkit.flow(..., workers=2, preprocess="torch", channels_first=True)

Throughput is steady state: images per second from the end of the first batch to the end
of the epoch, so worker start-up is reported separately (time to the first batch). Goals
on 2 cores: flow >= 1.6x dataloader (issue #16; 1.15x before) and >= 1.8x loop.

``--set photos12``: the 12-megapixel JPEGs of ``photo_set.py`` instead (default 200), where
flow decodes each at 1/8 (the recipe's first step needs a shorter side of 256) and the
Dataset, like any plain loader, decodes it whole.

    python benchmarks/flow_bench.py [--images 600] [--repeats 3] [--set photos12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augment_bench import build_set  # noqa: E402  (the shared, deterministic image set)

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "standard.yaml"

SIDE = r'''
import json, os, sys, time
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
side, src, recipe_path, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
import numpy as np
if side == "flow":
    import augkit
    batches = augkit.flow(src, recipe_path, batch_size=batch_size, workers=2, preprocess="torch",
                          channels_first=True, size=224, shuffle=True, seed=0)
    iterator = iter(batches)
else:
    import cv2, random, torch
    import albumentations as A
    from augkit.recipes import load_recipe
    from augkit.input.discovery import discover
    from augkit.core.seeds import derive_seed
    cv2.setNumThreads(1)
    samples = discover(src).samples
    classes = {c: i for i, c in enumerate(sorted({s.label for s in samples}))}
    compose = A.Compose(list(load_recipe(recipe_path).compose.transforms) + [A.Normalize()])

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)
        def __getitem__(self, i):
            s = samples[i]
            image = cv2.cvtColor(cv2.imread(s.path), cv2.COLOR_BGR2RGB)
            seed = derive_seed(0, 0, s.key)  # one stream for the pipeline, as augkit seeds
            compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
            x = compose(image=image)["image"]
            return torch.from_numpy(x.transpose(2, 0, 1).copy()), classes[s.label]

    workers = 2 if side == "dataloader" else 0
    loader = torch.utils.data.DataLoader(Images(), batch_size=batch_size, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    iterator = iter(loader)
x, y = next(iterator)
first = time.perf_counter()
count = 0
for x, y in iterator:
    count += len(y)
end = time.perf_counter()
assert tuple(x.shape[1:]) == (3, 224, 224), x.shape
print(json.dumps({"first_batch_s": first - start, "steady_images_per_s": count / (end - first), "images": count}))
'''


def run_side(side: str, src: Path, batch_size: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SIDE, side, str(src), str(RECIPE), str(batch_size)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="default 600, or 200 for photos12")
    parser.add_argument("--set", dest="image_set", choices=("imagenet", "photos12"), default="imagenet")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.image_set == "photos12":
        from photo_set import build_photo_set

        src, stats = build_photo_set(args.images or 200)
        print(f"set: {src}: {stats}")
    else:
        src, _ = build_set(args.images or 600)
    sides = ("loop", "dataloader", "flow")
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(args.repeats):
        for side in sides:
            results[side].append(run_side(side, src, args.batch_size))
            print(f"repeat {r + 1} {side:<10} {results[side][-1]}", flush=True)
    med = {s: {k: statistics.median(run[k] for run in results[s]) for k in ("first_batch_s", "steady_images_per_s")}
           for s in sides}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"\nmachine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'side':<12}{'first batch (s)':>16}{'steady images/s':>18}")
    for s in sides:
        print(f"{s:<12}{med[s]['first_batch_s']:>16.2f}{med[s]['steady_images_per_s']:>18.1f}")
    vs_loader = med["flow"]["steady_images_per_s"] / med["dataloader"]["steady_images_per_s"]
    vs_loop = med["flow"]["steady_images_per_s"] / med["loop"]["steady_images_per_s"]
    print(f"\nflow / dataloader(2 workers) = {vs_loader:.2f}x (goal >= 1.6: {'met' if vs_loader >= 1.6 else 'NOT met'})")
    print(f"flow / single process       = {vs_loop:.2f}x (goal >= 1.8: {'met' if vs_loop >= 1.8 else 'NOT met'})")


if __name__ == "__main__":
    main()
