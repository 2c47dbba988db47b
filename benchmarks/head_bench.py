#!/usr/bin/env python
"""Benchmark: ``augkit train-head`` against scikit-learn's ``LogisticRegression`` on the
same 50,000 rows x 1,280 features: wall time, peak memory, accuracy.

What it does, in one run on one machine:

1. Builds (or reuses) two feature caches in augkit's format under ``benchmarks/_work/``:
   50,000 training rows and 10,000 validation rows of 1,280 float16 values, 10 classes,
   drawn like pooled CNN features (a class-dependent point in a 32-dimensional latent
   space, mapped to 1,280 values, noise, ReLU), hard enough that neither side is near
   100 % (about 89 % on validation). The caches name a MobileNet v2-shaped model with
   random weights (``tests/mobilenet_like.py``) as their backbone, so train-head writes a
   real ``model.onnx``.
2. Runs each side in a fresh process, ``--repeats`` times, alternating:
   - ``augkit``: ``train_head(train, HEAD, val=val, C=(C,))`` (one C, as the reference), the
     rows kept in memory (they fit). Wall time is the whole call: checking the caches,
     reading the rows, the fit, the metrics, and writing HEAD with ``model.onnx``.
   - ``augkit-streamed``: the same with ``memory=0``: every L-BFGS pass reads the rows
     again from the memory-mapped shards (what a cache larger than memory gets).
   - ``sklearn``: ``LogisticRegression(C=C, max_iter=1000)`` (lbfgs, the same objective and
     stopping rule) on the same training rows loaded with ``augkit.load_features``, then
     accuracy on the same validation rows.
   - once, for the record: ``augkit-search``: train-head's default search over 4 values of C.
   Peak memory is each process's peak RSS (``ru_maxrss``, pages of the memory-mapped
   shards it touched included), and its peak anonymous memory (``RssAnon``, sampled every
   20 ms: without file pages, which the kernel can drop); the RSS after imports is given too.
The claims: augkit's validation accuracy within 0.5 points of scikit-learn's; its time
and peak memory, and their ratios. Exit code 0 whatever the figures: this is a measurement.

Usage:  python benchmarks/head_bench.py [--rows 50000] [--val-rows 10000] [--C 1.0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from augment_bench import machine_info, wait_for_quiet  # noqa: E402
from features_bench import build_model  # noqa: E402

DIM, CLASSES, LATENT, SHARD = 1280, 10, 32, 4096
BUILDER_VERSION = 1

CHILD = r'''
import json, resource, sys, threading, time
side, train, val, head, C = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
peak_anon = [0]
def sample():  # anonymous memory (not the shards' file pages, which the kernel can drop at will)
    while True:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    peak_anon[0] = max(peak_anon[0], int(line.split()[1]))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
import numpy as np
import scipy.optimize
import augkit
from augkit.stages.head import HeadOptions, train_head
if side == "sklearn":
    from sklearn.linear_model import LogisticRegression
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if side == "sklearn":
    X, y, _, _ = augkit.load_features(train)
    Xv, yv, _, _ = augkit.load_features(val)
    model = LogisticRegression(C=C, max_iter=1000).fit(np.asarray(X), y)
    accuracy = float(model.score(np.asarray(Xv), yv))
    iterations = int(model.n_iter_[0])
else:
    options = HeadOptions(C=None if side == "augkit-search" else (C,), memory=0 if side == "augkit-streamed" else None)
    summary = train_head(train, head, val=val, options=options, overwrite=True)
    accuracy, iterations = summary.val_accuracy, sum(s["iterations"] for s in summary.search)
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
peak = usage.ru_maxrss
print(json.dumps({"side": side, "wall_s": wall, "peak_mb": peak / 1024, "baseline_mb": base / 1024,
                  "peak_anon_mb": peak_anon[0] / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "val_accuracy": accuracy, "iterations": iterations}))
'''


# One evaluation of the objective and its gradient on every training row, each side's own
# code, alternated: augkit's chunked float32 sums against scikit-learn's LinearModelLoss
# (float64, its Cython loss with n_threads=2), the function each L-BFGS step calls.
EVAL = r'''
import json, statistics, sys, time
import numpy as np
from augkit.stages.head import data, solver
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.linear_model._linear_loss import LinearModelLoss
cache = data.open_cache(sys.argv[1])
k, d, n = len(cache.classes), int(cache.meta["feature_dim"]), cache.rows
rows = data.Rows(cache, np.arange(n), cache.labels, np.ones(n), memory=1 << 40)
X = np.concatenate([x for x, _, _ in rows]).astype(np.float64)
y = cache.labels.astype(np.float64)
loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=k), fit_intercept=True)
theta = np.random.default_rng(0).normal(0, 0.01, k * (d + 1))
ours, theirs = [], []
for _ in range(7):
    t = time.perf_counter(); solver.loss_and_gradient(theta, rows, k, d, 1.0, float(n)); ours.append(time.perf_counter() - t)
    t = time.perf_counter(); loss.loss_gradient(theta, X, y, l2_reg_strength=1.0 / n, n_threads=2); theirs.append(time.perf_counter() - t)
print(json.dumps({"augkit_s": statistics.median(ours), "sklearn_s": statistics.median(theirs)}))
'''


def _rows(n: int, seed: int):
    """(features float16 (n, DIM), labels) drawn as the module docstring says; the
    structure (map, class centres) is shared by every set, the draws depend on ``seed``."""
    import numpy as np

    shared = np.random.default_rng(1234)
    A = shared.normal(0, 1 / np.sqrt(LATENT), (LATENT, DIM))
    b = shared.normal(-0.2, 0.3, DIM)
    centres = shared.normal(0, 0.55, (CLASSES, LATENT))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    for start in range(0, n, SHARD):
        part = y[start:start + SHARD]
        z = centres[part] + rng.normal(0, 1, (len(part), LATENT))
        x = np.maximum(z @ A + b + rng.normal(0, 0.3, (len(part), DIM)), 0)
        yield x.astype(np.float16), part


def build_cache(name: str, n: int, seed: int, model: Path) -> Path:
    """A complete feature cache of ``n`` rows in augkit's format (reused when already there)."""
    import numpy as np

    from augkit.stages.backbones import file_sha256, resolve_backbone

    dest = WORK / f"head-{name}-{n}"
    stamp = {"rows": n, "seed": seed, "version": BUILDER_VERSION}
    meta_path = dest / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("bench_stamp") == stamp:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shards, labels, manifest = [], [], ["path,label,view"]
    for i, (x, y) in enumerate(_rows(n, seed)):
        np.save(dest / f"features-{i:05d}.npy", x)
        shards.append({"file": f"features-{i:05d}.npy", "rows": len(x)})
        labels.append(y)
        manifest += [f"{name}/{c}/img_{i * SHARD + j:06d}.jpg,class_{c},0" for j, c in enumerate(y.tolist())]
    np.save(dest / "labels.npy", np.concatenate(labels).astype(np.int64))
    (dest / "manifest.csv").write_text("\n".join(manifest) + "\n")
    (dest / "failures.csv").write_text("path,reason,message\n")
    backbone = resolve_backbone("mobilenet_v2", weights=str(model))
    meta = {"complete": True, "backbone": "mobilenet_v2", "backbone_source": "registry",
            "weights_file": str(model), "weights_sha256": file_sha256(model),
            "preprocessing": backbone.preprocessing.as_dict(), "feature_node": "pooled", "recipe": None,
            "recipe_fingerprint": None, "seed": 0, "views": 1, "plain_first": False, "dtype": "float16",
            "source": f"synthetic-{name}", "classes": [f"class_{c}" for c in range(CLASSES)], "images": n, "rows": n,
            "feature_dim": DIM, "failed_images": 0, "failures": {}, "shards": shards, "bench_stamp": stamp}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return dest


def run_side(side: str, train: Path, val: Path, C: float, args) -> dict:
    if args.quiet_wait > 0:
        wait_for_quiet(args.quiet_wait, args.max_background)
    head = WORK / f"head-out-{side}"
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    done = subprocess.run([sys.executable, "-c", CHILD, side, str(train), str(val), str(head), str(C)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{side} failed")
    shutil.rmtree(head, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--val-rows", type=int, default=10_000)
    ap.add_argument("--C", type=float, default=1.0, help="the one C both sides fit (default 1.0, scikit-learn's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=20.0)
    ap.add_argument("--max-background", type=float, default=0.3)
    ap.add_argument("--json", type=Path, default=WORK / "head_bench.json")
    args = ap.parse_args(argv)

    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores_usable']} usable cores, {info['memory_gb']} GB")
    model = build_model(224)
    train = build_cache("train", args.rows, 1, model)
    val = build_cache("val", args.val_rows, 2, model)
    print(f"caches: {args.rows:,} training and {args.val_rows:,} validation rows x {DIM} float16, {CLASSES} classes; "
          f"C={args.C:g}")
    runs: dict[str, list[dict]] = {"augkit": [], "augkit-streamed": [], "sklearn": []}
    for r in range(args.repeats):
        for side in runs:
            rec = run_side(side, train, val, args.C, args)
            runs[side].append(rec)
            print(f"  [{r + 1}/{args.repeats}] {side:16s} {rec['wall_s']:7.1f} s ({rec['cpu_s']:.0f} CPU s), peak "
                  f"{rec['peak_mb']:6.0f} MB "
                  f"(anonymous {rec['peak_anon_mb']:.0f}; after imports {rec['baseline_mb']:.0f}), val accuracy "
                  f"{rec['val_accuracy']:.4f}, "
                  f"{rec['iterations']} iterations", flush=True)
    search = run_side("augkit-search", train, val, args.C, args)
    print(f"  once             augkit-search    {search['wall_s']:7.1f} s, peak {search['peak_mb']:6.0f} MB, val accuracy "
          f"{search['val_accuracy']:.4f}, {search['iterations']} iterations over 4 values of C")
    done = subprocess.run([sys.executable, "-c", EVAL, str(train)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"))
    per_eval = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    if per_eval:
        print(f"  one loss + gradient evaluation on the {args.rows:,} rows (median of 7, alternated): augkit "
              f"{per_eval['augkit_s']:.3f} s, scikit-learn {per_eval['sklearn_s']:.3f} s "
              f"({per_eval['sklearn_s'] / per_eval['augkit_s']:.2f}x)")
    med = {side: {k: statistics.median(r[k] for r in recs) for k in ("wall_s", "cpu_s", "peak_mb", "peak_anon_mb",
                                                                          "val_accuracy")}
           for side, recs in runs.items()}
    ref = med["sklearn"]
    points = 100 * (med["augkit"]["val_accuracy"] - ref["val_accuracy"])
    shown = {side: f"{m['wall_s']:.1f} s ({m['cpu_s']:.0f} CPU s) / {m['peak_mb']:.0f} MB (anonymous "
                   f"{m['peak_anon_mb']:.0f})"
             for side, m in med.items()}
    print(f"\nmedians of {args.repeats}: augkit {shown['augkit']}, streamed {shown['augkit-streamed']}, "
          f"scikit-learn {shown['sklearn']}")
    print(f"CPU time ratio (scikit-learn / augkit): {ref['cpu_s'] / med['augkit']['cpu_s']:.2f}x in memory, "
          f"{ref['cpu_s'] / med['augkit-streamed']['cpu_s']:.2f}x streamed")
    print(f"time ratio (scikit-learn / augkit): {ref['wall_s'] / med['augkit']['wall_s']:.2f}x in memory, "
          f"{ref['wall_s'] / med['augkit-streamed']['wall_s']:.2f}x streamed; peak memory ratio "
          f"{ref['peak_mb'] / med['augkit']['peak_mb']:.2f}x, {ref['peak_mb'] / med['augkit-streamed']['peak_mb']:.2f}x")
    met = abs(points) <= 0.5
    print(f"GOAL {'MET' if met else 'NOT MET'}: val accuracy {med['augkit']['val_accuracy']:.4f} vs scikit-learn "
          f"{ref['val_accuracy']:.4f} ({points:+.2f} points; goal within 0.5)")
    saved = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": info, "rows": args.rows,
             "val_rows": args.val_rows, "C": args.C, "runs": runs, "search": search, "medians": med,
             "per_evaluation": per_eval,
             "accuracy_points": points, "goal_met": met,
             "cache_sha": hashlib.sha256((train / "meta.json").read_bytes()).hexdigest()[:16]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"raw figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
