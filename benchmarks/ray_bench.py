"""Benchmark: what `--engine ray` costs against the local engine on one machine, in one run.

Runs `augkit augment recipes/standard.yaml SET OUT --copies 2` and `augkit cache-features
SET` (MobileNet v2-shaped model with random weights, built in code) with `--engine local`
and `--engine ray` (a local Ray started by the run, as a first-time user would), each in a
fresh process, alternated, and reports wall time and the ratio ray / local. On one
machine Ray can only add overhead (its start-up, object store, scheduling); the figure
says how much, i.e. from what size a cluster pays off.

    python benchmarks/ray_bench.py [--images 600] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
from augment_bench import build_set  # noqa: E402


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "AUGKIT_CACHE_DIR": tempfile.mkdtemp(prefix="augkit-cache-")}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    src, _ = build_set(args.images)
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    import mobilenet_like

    model = work / "mobilenetv2-random.onnx"
    mobilenet_like.save(mobilenet_like.full(seed=2), model)
    augkit = [sys.executable, "-m", "augkit"]
    jobs = {
        "augment": lambda out, engine: augkit + ["augment", "recipes/standard.yaml", str(src), str(out), "-k", "2",
                                                 "--quiet", "--engine", engine],
        "cache-features": lambda out, engine: augkit + ["cache-features", str(src), "-o", str(out), "--backbone",
                                                        str(model), "--quiet", "--engine", engine],
    }
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.repeats):
        for job, command in jobs.items():
            for engine in ("local", "ray"):
                out = work / f"{job}-{engine}-{r}"
                seconds = timed(command(out, engine))
                times.setdefault((job, engine), []).append(seconds)
                print(f"repeat {r + 1} {job:<15} {engine:<6} {seconds:6.1f} s", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"\nmachine: {cpu}, {os.cpu_count()} cores; {args.images} images")
    print(f"{'job':<16}{'local (s)':>10}{'ray (s)':>10}{'ray / local':>13}")
    for job in jobs:
        local, ray = statistics.median(times[(job, "local")]), statistics.median(times[(job, "ray")])
        print(f"{job:<16}{local:>10.1f}{ray:>10.1f}{ray / local:>12.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
