"""The figures that code comments used to carry, measured again in one run.

    python benchmarks/comment_figures.py [--photos DIR] [--json PATH]

Comments now say why and point at benchmarks/RESULTS.md ("Figures behind code comments");
this script measures what they point at:

- ``albumentations import``: seconds and peak memory of importing albumentations in a
  fresh interpreter, as a user's script does and as augkit does (without its torch bridge,
  augkit.core._albu.defer_torch_bridge); median of 3 processes each.
- ``pixel moments``: augkit.core.rgb_pca.pixel_moments of a 500x375 RGB image, median of
  500 calls, with the channel planes given (``augkit stats`` splits them once for its
  histograms too) and without (PCAColor's ``image`` mode), one OpenCV thread.
- ``recipe YAML``: augkit.recipes.source.parse_yaml with libyaml scanning and parsing
  against the pure-Python loader, on a 1,000-step recipe; median of 5.
- ``planned outputs``: memory per output of augment's plan and its report rows
  (plan_jobs for 50,000 inputs x 2 copies, and the rows AugmentTask returns), tracemalloc.
- ``stats in-process vs pool``: ``compute_stats`` of --stats-images real photos with
  workers=0 (in the process) and workers=2 (a pool), each run in a fresh interpreter as a
  command runs, 3 each, alternating; the pool's fixed cost is its time less half the
  in-process time (the per-image work split over two workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

IMPORT_CODE = """
import resource, sys, time
start = time.perf_counter()
if sys.argv[1] == "augkit":
    from augkit.core._albu import albumentations, defer_torch_bridge
    defer_torch_bridge()
    albumentations()
else:
    import albumentations
took = time.perf_counter() - start
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def albumentations_import() -> dict:
    out = {}
    for how in ("plain", "augkit"):
        runs = []
        for _ in range(3):
            done = subprocess.run([sys.executable, "-c", IMPORT_CODE, how], capture_output=True, text=True, check=True,
                                  env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
            seconds, mb = map(float, done.stdout.split())
            runs.append((seconds, mb))
        out[how] = {"seconds": statistics.median(r[0] for r in runs), "peak MB": statistics.median(r[1] for r in runs)}
    return out


def pixel_moments_cost() -> dict:
    import cv2

    from augkit.core.rgb_pca import pixel_moments

    cv2.setNumThreads(1)  # as in a worker
    image = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    planes = cv2.split(image)
    out = {}
    for name, call in (("planes given (augkit stats)", lambda: pixel_moments(image, planes)),
                       ("split first (PCAColor image mode)", lambda: pixel_moments(image))):
        times = []
        for _ in range(500):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times) * 1e3
    return {"ms per 500x375 image": out}


def recipe_yaml() -> dict:
    import yaml

    from augkit.recipes import source

    text = "transforms:\n" + "".join(f"  - Affine: {{rotate: [-{i % 30}, {i % 30}], p: 0.5}}\n" for i in range(1000))
    out = {}
    for name, loader in (("libyaml", source._LOADERS[0]), ("pure Python", source._LineLoader)):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            yaml.load(text, Loader=loader)  # noqa: S506 - augkit's bounded safe loaders
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times) * 1e3
    out["ratio"] = out["pure Python"] / out["libyaml"]
    return {"ms for 1,000 steps": out}


def planned_outputs(inputs: int = 50_000, copies: int = 2) -> dict:
    from augkit.input.discovery import Sample
    from augkit.stages.augment_plan import AugmentOptions, plan_jobs

    samples = [Sample(f"/data/train/class_{i % 100:03d}/image_{i:08d}.jpg", f"class_{i % 100:03d}/image_{i:08d}.jpg",
                      f"class_{i % 100:03d}") for i in range(inputs)]
    tracemalloc.start()
    jobs = plan_jobs(samples, AugmentOptions(copies=copies))
    planned = tracemalloc.get_traced_memory()[0]
    rows = [{"source": j.key, "label": j.label, "output": rel, "copy": k, "status": "written"}
            for j in jobs for rel, k in j.outputs]
    total = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    outputs = inputs * copies
    assert len(rows) == outputs
    return {"bytes per output (plan)": planned / outputs, "bytes per output (plan + rows)": total / outputs,
            "GB for 10 million outputs": total / outputs * 1e7 / 1e9}


STATS_CODE = """
import sys, time
from augkit.stages.stats import compute_stats
start = time.perf_counter()
compute_stats(sys.argv[1], workers=int(sys.argv[2]))
print(time.perf_counter() - start)
"""


def stats_pool(photos: Path, images: int) -> dict:
    """Each run in a fresh interpreter, as a command runs (a pool's forkserver starts once per process)."""
    paths = sorted(p for p in photos.rglob("*.jpg"))[:images]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "x").mkdir()
        for p in paths:
            shutil.copy(p, Path(tmp) / "x" / p.name)
        runs: dict[int, list[float]] = {0: [], 2: []}
        for workers in (0, 2, 0, 2, 0, 2):
            done = subprocess.run([sys.executable, "-c", STATS_CODE, tmp, str(workers)], capture_output=True,
                                  text=True, check=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
            runs[workers].append(float(done.stdout.split()[-1]))
    here, pool = statistics.median(runs[0]), statistics.median(runs[2])
    return {"images": len(paths), "in this process s": runs[0], "pool of 2 s": runs[2],
            "images per second, one core": len(paths) / here, "pool fixed cost s": pool - here / 2}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default="/work/photos/hymenoptera_data")
    parser.add_argument("--stats-images", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = {
        "albumentations import": albumentations_import(),
        "pixel moments": pixel_moments_cost(),
        "recipe YAML": recipe_yaml(),
        "planned outputs": planned_outputs(),
        "stats in-process vs pool": stats_pool(Path(args.photos), args.stats_images),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
