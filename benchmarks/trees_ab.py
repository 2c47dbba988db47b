#!/usr/bin/env python
"""Benchmark: the same commands on two source trees of augkit, alternated: is a change slower?

Issue 13 asks that a restructuring leave start-up and the benchmarks no slower. Each
benchmark compares augkit against a reference in one run; this one compares augkit against
an earlier augkit, on the same machine, in the same minutes:

- ``augment``: ``augkit augment recipes/standard.yaml SET OUT --copies 2 --workers 2``;
  steady outputs/s from the outputs' modification times (``augment_bench.measure``).
- ``flow``: ``augkit.flow(SET, standard, workers=2, size=224, preprocess="torch")``, one
  epoch in batches of 32; steady images/s after the first batch (``flow_bench``'s side).
- ``features``: ``augkit cache-features SET --weights M`` (a MobileNet v2-shaped model with
  random weights), its own defaults; ``steady_rows_per_s`` of ``--json``.
- ``help``: ``augkit --help``, wall time of the process.

Each tree runs in a fresh process with ``PYTHONPATH=TREE``; the order of the two trees
alternates from one repeat to the next, and before each run the harness waits for an idle
machine and marks a run during which other processes kept more than ``--max-background``
cores busy (left out of the medians unless every run was). It prints each run, the medians
and the ratio AFTER / BEFORE (above 1: the later tree is faster; for ``help``, BEFORE/AFTER
of the times). Exit code 0 whatever the figures: this is a measurement.

Make the earlier tree with ``git worktree add /tmp/before COMMIT``:

    python benchmarks/trees_ab.py --before /tmp/before [--after .] [--what augment,flow,features,help]
                                  [--images 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
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

from augment_bench import _become_subreaper, build_set, machine_info, measure, wait_for_quiet  # noqa: E402
from features_bench import build_model  # noqa: E402
from flow_bench import SIDE as FLOW_SIDE  # noqa: E402

RECIPE = ROOT / "recipes" / "standard.yaml"


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def _augkit(tree: Path) -> list[str]:
    return [sys.executable, "-m", "augkit"]  # the tree on PYTHONPATH is the one imported


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd``; return it, its wall time and the cores others kept busy meanwhile."""
    import resource

    from augment_bench import _machine_cpu_s, _reap_descendants

    cpu0, kids0 = _machine_cpu_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    _reap_descendants()  # flow's workers, orphaned to this subreaper: their CPU is the run's
    kids1, cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN), _machine_cpu_s()
    own = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done, wall, max(0.0, (cpu1 - cpu0 - own) / wall)


def run_once(what: str, tree: Path, src: Path, model: Path, scratch: Path) -> dict:
    env = _env(tree)
    if what == "augment":
        out = scratch / "augment-out"
        rec = measure("augment", [[*_augkit(tree), "augment", str(RECIPE), str(src), str(out), "--copies", "2",
                                   "--workers", "2", "--quiet"]], out, env)
        if rec["returncode"] != 0:
            raise SystemExit(f"augment on {tree} failed")
        return {"rate": rec.get("steady_rate"), "background_cores": rec["background_cores"]}
    if what == "flow":
        done, _, background = _timed([sys.executable, "-c", FLOW_SIDE, "flow", str(src), str(RECIPE), "32"], env, ROOT)
        return {"rate": json.loads(done.stdout.strip().splitlines()[-1])["steady_images_per_s"],
                "background_cores": background}
    if what == "features":
        out = scratch / "features-out"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        done, _, background = _timed([*_augkit(tree), "cache-features", str(src), "-o", str(out), "--weights", str(model),
                                      "--json"], env, ROOT)
        return {"rate": json.loads(done.stdout)["steady_rows_per_s"], "background_cores": background}
    if what == "help":
        walls = []
        for _ in range(5):
            _, wall, background = _timed([*_augkit(tree), "--help"], env, ROOT)
            walls.append(wall)
        return {"rate": 1.0 / min(walls), "seconds": min(walls), "background_cores": background}
    raise SystemExit(f"unknown measurement {what!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the earlier source tree (a checkout: TREE/augkit)")
    ap.add_argument("--after", type=Path, default=ROOT, help="the later tree (default: this checkout)")
    ap.add_argument("--what", default="augment,flow,features,help")
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=30.0)
    ap.add_argument("--max-background", type=float, default=0.15)
    ap.add_argument("--json", type=Path, default=HERE / "_work" / "trees_ab.json")
    args = ap.parse_args(argv)

    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, tree in trees.items():
        if not (tree / "augkit" / "__init__.py").is_file():
            raise SystemExit(f"--{name} {tree}: no augkit/ package there; give a checkout of augkit")
    _become_subreaper()
    src, _ = build_set(args.images)
    model = build_model()
    print(json.dumps(machine_info()))
    runs: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="augkit-ab-") as tmp:
        for what in args.what.split(","):
            runs[what] = {"before": [], "after": []}
            for repeat in range(args.repeats):
                order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
                for name in order:
                    wait_for_quiet(args.quiet_wait, args.max_background)
                    rec = run_once(what, trees[name], src, model, Path(tmp))
                    rec["contended"] = rec["background_cores"] > args.max_background
                    runs[what][name].append(rec)
                    print(f"{what:9s} {name:6s} rate {rec['rate']:.2f}/s  others {rec['background_cores']:.2f} cores"
                          f"{'  CONTENDED' if rec['contended'] else ''}", flush=True)
    print(f"\n| measurement | before | after | after / before |\n|---|---|---|---|")
    summary = {}
    for what, sides in runs.items():
        medians = {}
        for name, recs in sides.items():
            quiet = [r["rate"] for r in recs if not r["contended"] and r["rate"]] or [r["rate"] for r in recs if r["rate"]]
            medians[name] = statistics.median(quiet)
        ratio = medians["after"] / medians["before"]
        summary[what] = {**medians, "ratio": ratio}
        unit = "s" if what == "help" else "/s"
        show = (lambda v: f"{1 / v:.3f} s") if what == "help" else (lambda v: f"{v:.1f}{unit}")
        print(f"| {what} | {show(medians['before'])} | {show(medians['after'])} | **{ratio:.3f}** |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "runs": runs,
                                     "summary": summary, "machine": machine_info()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
