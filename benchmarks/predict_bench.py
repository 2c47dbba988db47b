#!/usr/bin/env python
"""Benchmark: ``augkit predict`` against pure ONNX Runtime inference of the same classifier.

What it does, in one run on one machine:

1. Builds (or reuses) the image set of ``augment_bench.py`` (N ImageNet-like JPEGs,
   median 500x375) and a classifier as ``augkit train-head`` writes it: a MobileNet v2
   1.0-shaped backbone with random weights (``tests/mobilenet_like.py``, 224x224, 1280
   features), a 10-class head with random weights and a softmax, preprocessing inside
   (``augkit.stages.head.export.classifier_model``).
2. Throughput, alternating ``--repeats`` times, each side a fresh process:
   - ``inference``: pure ONNX Runtime running that model.onnx on uint8 batches already
     decoded and cropped (in memory), with augkit's batch size and streams (one session
     and thread per core, each taking the next batch): the rate predict can at best reach.
   - ``predict``: ``augkit predict MODEL SET -o OUT.csv`` with its defaults (decoding and
     cropping in this process or workers, inference in the parent, the CSV written at the
     end). Its steady rate is images/s from the first batch done to the last
     (``steady_images_per_s`` of ``--json``); the end-to-end rate is reported too.
   The claim is the ratio of the two steady rates: goal >= 0.85 on 2 cores.
Exit code 0 whatever the figures: this is a measurement.

Usage:  python benchmarks/predict_bench.py [--images 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from augment_bench import _become_subreaper, build_set, machine_info  # noqa: E402
from features_bench import STREAMS, _augkit_cmd, build_model, run_uncontended  # noqa: E402

GOAL_RATIO = 0.85
CLASSES = 10

REFERENCE = r'''
import sys, time, json, threading, resource
from pathlib import Path
model_path, src, batch, threads, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
import numpy as np
from augkit.input.decoding import decode_image
from augkit.stages.classifier import read_model
from augkit.stages.features.inference import inference_plan, make_session
from augkit.stages.preprocess import crop_to_input
model = read_model(model_path)
streams, intra = inference_plan(threads)
sessions = [make_session(model, intra) for _ in range(streams)]
paths = sorted(str(p) for p in Path(src).rglob("*.jpg"))[: 4 * batch]
x = np.stack([crop_to_input(decode_image(p), model.preprocessing) for p in paths])
batches = [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(4)]
for s in sessions:
    s.run([model.output_name], {model.input_name: batches[0]})
def keep(out, n):
    pass  # predict's probabilities go to its CSV: nothing to convert
''' + STREAMS


def build_classifier() -> Path:
    """model.onnx as train-head writes it, on the random MobileNet v2-shaped backbone."""
    import numpy as np

    from augkit.stages.backbones import file_sha256, resolve_backbone
    from augkit.stages.head.export import classifier_model

    path = WORK / "predict-classifier.onnx"
    if path.exists():
        return path
    backbone_path = build_model(224)
    backbone = resolve_backbone("mobilenet_v2", weights=str(backbone_path))
    meta = {"backbone": "mobilenet_v2", "weights_sha256": file_sha256(backbone_path), "feature_node": "pooled",
            "feature_dim": 1280, "dtype": "float16", "preprocessing": backbone.preprocessing.as_dict()}
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.05, (CLASSES, 1280)).astype(np.float32)
    model = classifier_model(backbone_path, meta, weight, np.zeros(CLASSES, np.float32),
                             [f"class_{i}" for i in range(CLASSES)], {"benchmark": True})
    path.write_bytes(model)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads, both sides (default: one per core)")
    ap.add_argument("--quiet-wait", type=float, default=20.0)
    ap.add_argument("--max-background", type=float, default=0.15)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--json", type=Path, default=WORK / "predict_bench.json")
    args = ap.parse_args(argv)

    from augkit.engines.local import default_workers
    from augkit.stages.features.inference import batch_size_for

    _become_subreaper()
    info = machine_info()
    threads = args.threads or default_workers()
    batch = batch_size_for(threads)
    src, stats = build_set(args.images)
    model = build_classifier()
    print(f"machine: {info['cpu']}, {info['cores_usable']} usable cores; set: {stats['images']} JPEGs, median "
          f"{stats['median_width']:g}x{stats['median_height']:g}; classifier: MobileNet v2-shaped backbone + "
          f"{CLASSES}-class head; batch {batch}, {threads} ONNX Runtime threads")
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    out = WORK / "predict-out.csv"
    predict_cmd = _augkit_cmd() + ["predict", str(model), str(src), "-o", str(out), "--json", "--quiet",
                                   "--batch-size", str(batch), "--threads", str(threads), "--overwrite"]
    ref_cmd = [sys.executable, "-c", REFERENCE, str(model), str(src), str(batch), str(threads), str(args.images)]
    runs: dict[str, list[dict]] = {"inference": [], "predict": []}
    for r in range(args.repeats):
        ref = run_uncontended(ref_cmd, env, args)
        e2e = run_uncontended(predict_cmd, env, args)
        runs["inference"].append(ref)
        runs["predict"].append(e2e)
        ratio = (e2e.get("steady_images_per_s") or 0) / ref["rate"] if ref.get("rate") else 0.0
        print(f"  [{r + 1}/{args.repeats}] inference {ref.get('rate', 0):.0f} img/s | predict steady "
              f"{e2e.get('steady_images_per_s') or 0:.0f} img/s, {e2e.get('images', 0)} images in {e2e['wall_s']:.1f} s "
              f"wall | ratio {ratio:.3f}{' (contended)' if ref['contended'] or e2e['contended'] else ''}", flush=True)
    clean = [i for i in range(args.repeats) if not (runs["inference"][i]["contended"] or runs["predict"][i]["contended"])]
    if not clean:
        print("warning: every repeat was contended; the medians use them all", file=sys.stderr)
        clean = list(range(args.repeats))
    ref_rate = statistics.median(runs["inference"][i]["rate"] for i in clean)
    steady = statistics.median(runs["predict"][i]["steady_images_per_s"] for i in clean)
    e2e_rate = statistics.median(runs["predict"][i]["images"] / runs["predict"][i]["wall_s"] for i in clean)
    ratio = steady / ref_rate
    met = ratio >= GOAL_RATIO
    # CPU per image: less sensitive to other processes than rates (the whole run for predict,
    # start-up and CSV included; the timed loop for the reference).
    ref_cpu = statistics.median(runs["inference"][i]["cpu_ms_per_row"] for i in clean)
    e2e_cpu = statistics.median(1000 * runs["predict"][i]["process_cpu_s"] / runs["predict"][i]["images"] for i in clean)
    print(f"\nmedians of {len(clean)} uncontended repeat(s): inference {ref_rate:.0f} img/s; predict steady "
          f"{steady:.0f} img/s, end-to-end {e2e_rate:.0f} img/s (start-up included)")
    print(f"GOAL {'MET' if met else 'NOT MET'}: predict steady state is {ratio:.3f}x pure inference (goal >= "
          f"{GOAL_RATIO})")
    print(f"CPU per image: inference {ref_cpu:.2f} ms, predict {e2e_cpu:.2f} ms over the whole run "
          f"(inference / predict {ref_cpu / e2e_cpu:.3f})")
    out.unlink(missing_ok=True)
    saved = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": info, "threads": threads,
             "batch_size": batch, "set": stats, "runs": runs, "clean_repeats": clean, "inference_rate": ref_rate,
             "steady_rate": steady, "end_to_end_rate": e2e_rate, "ratio": ratio, "goal_met": met,
             "inference_cpu_ms_per_image": ref_cpu, "predict_cpu_ms_per_image": e2e_cpu}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"raw figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
