"""Augment: write K augmented copies of every image of a source into an output folder.

Stages: discovery (parent) -> plan the outputs (parent) -> decode, augment, encode and
write (engine workers, one :class:`AugmentTask` call per input) -> reports (parent).

What a user can rely on:
- Output ``OUT/<class>/<stem>_<copy>.<ext>`` for copy ``k`` of ``<class>/<stem>.<ext>``
  (``<stem>_orig.<ext>`` for ``--include-original``; a ``-<hash>`` is added to the stem
  only when two inputs would share a name). Copy ``k`` of an input is seeded with
  ``derive_seed(seed, key, k)``: byte-identical for any worker count and any rerun.
- Every file appears whole or not at all (temporary name, then ``os.replace``). A rerun
  of an interrupted run writes only what is missing, so it ends exactly where an
  uninterrupted run would. ``OUT/augkit-run.json`` records the settings; a rerun with
  other settings is refused unless ``--overwrite``.
- ``manifest.csv`` lists every output; ``failures.csv`` every input that failed, with its
  reason; ``summary.json`` the counts. None of them depends on timing or on resuming.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from augkit.errors import UsageError
from augkit.files import csv_text, remove_temporaries, write_text_atomic
from augkit.seeds import SEEDING

RUN_FILE = "augkit-run.json"
MANIFEST = "manifest.csv"
FAILURES = "failures.csv"
SUMMARY = "summary.json"
REPORTS = (RUN_FILE, MANIFEST, FAILURES, SUMMARY)
FORMATS = ("jpg", "png", "webp")


@dataclass(frozen=True)
class AugmentOptions:
    copies: int = 1
    seed: int | None = None  # None: the recipe's seed, else 0
    include_original: bool = False
    fmt: str = "jpg"
    quality: int = 95
    max_pixels: int | None = None


@dataclass(frozen=True)
class Job:
    """One input and the outputs to make from it: (path relative to OUT, copy or None)."""

    path: str
    key: str
    label: str | None
    outputs: tuple[tuple[str, int | None], ...]  # still to write
    present: tuple[tuple[str, int | None], ...] = ()  # written by an earlier run


def plan_jobs(samples, options: AugmentOptions) -> list[Job]:
    """Output names for every input. Class folders are mirrored; a manifest's images go
    to ``<label>/``. Deterministic: it depends only on the samples' keys and labels."""
    width = max(2, len(str(max(options.copies - 1, 0))))

    def folder_and_stem(sample) -> tuple[str, str]:
        key = PurePosixPath(sample.key)
        inside = not key.is_absolute() and ".." not in key.parts
        parent = key.parent.as_posix() if inside else (sample.label or "")
        return ("" if parent == "." else parent), key.stem

    places = [folder_and_stem(s) for s in samples]
    taken = Counter((folder, stem.lower()) for folder, stem in places)
    jobs = []
    for sample, (folder, stem) in zip(samples, places):
        if taken[(folder, stem.lower())] > 1:  # a.jpg and a.png, or two manifest rows
            stem = f"{stem}-{hashlib.blake2b(sample.key.encode(), digest_size=3).hexdigest()}"
        prefix = f"{folder}/{stem}" if folder else stem
        outputs = [(f"{prefix}_{k:0{width}d}.{options.fmt}", k) for k in range(options.copies)]
        if options.include_original:
            outputs.insert(0, (f"{prefix}_orig.{options.fmt}", None))
        jobs.append(Job(sample.path, sample.key, sample.label, tuple(outputs)))
    return jobs


class AugmentTask:
    """Per input: decode once, then write each missing output. Returns result rows."""

    def __init__(self, recipe, out_dir: str, options: AugmentOptions):
        self.recipe = recipe
        self.out_dir = out_dir
        self.options = options

    def __call__(self, job: Job) -> list[dict[str, Any]]:
        from augkit.decoding import DecodeError, decode_image, write_image_atomic

        opts = self.options
        base = {"source": job.key, "label": job.label or ""}
        rows = [{**base, "output": rel, "copy": k, "status": "exists"} for rel, k in job.present]
        if not job.outputs:
            return rows
        try:
            image = decode_image(job.path, max_pixels=opts.max_pixels)
        except DecodeError as exc:
            return [{**base, "output": "", "copy": None, "status": "failed", "reason": exc.reason, "message": str(exc)}]
        augment = self.recipe.for_image(image)  # a deterministic head (resize) runs once for all copies
        for rel, k in job.outputs:
            row = {**base, "output": rel, "copy": k}
            try:
                result = image if k is None else augment(_copy_seed(opts.seed, job.key, k))
            except Exception as exc:  # noqa: BLE001 - one transform failure is one row
                rows.append({**row, "status": "failed", "reason": "transform_error", "message": f"{job.key}: copy {k}: {type(exc).__name__}: {exc}"})
                continue
            try:
                write_image_atomic(os.path.join(self.out_dir, rel), result, fmt=opts.fmt, quality=opts.quality,
                                   parents=False)  # made by prepare_jobs
            except (OSError, ValueError) as exc:
                rows.append({**row, "status": "failed", "reason": "write_error", "message": f"{rel}: cannot write: {exc}"})
                continue
            rows.append({**row, "status": "written"})
        return rows


def prepare_jobs(out: Path, jobs: list[Job]) -> list[Job]:
    """Make every output folder once, and split each job's outputs into those an earlier
    run already wrote (whole: writes are atomic) and those still to write. One listing
    per folder here saves a stat and a mkdir per output in the workers."""
    folders = sorted({os.path.dirname(rel) for job in jobs for rel, _ in job.outputs})
    present: set[str] = set()
    for folder in folders:
        path = out / folder
        path.mkdir(parents=True, exist_ok=True)
        prefix = f"{folder}/" if folder else ""
        present.update(prefix + entry.name for entry in os.scandir(path) if entry.is_file())
    return [replace(job, outputs=tuple(o for o in job.outputs if o[0] not in present),
                    present=tuple(o for o in job.outputs if o[0] in present)) for job in jobs]


def _copy_seed(seed: int, key: str, copy: int) -> int:
    from augkit.seeds import derive_seed

    return derive_seed(seed, key, copy)


# --- the run in the parent ----------------------------------------------------------------


@dataclass
class Summary:
    inputs: int = 0
    outputs: int = 0
    written: int = 0
    existing: int = 0
    failed_inputs: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_files: dict[str, int] = field(default_factory=dict)
    out_dir: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def source_folders(dataset) -> list[Path]:
    """The folders whose contents are the source: the folder itself, or for a manifest
    the folders its images are in (the CSV's own folder may well hold OUT too)."""
    if dataset.kind != "manifest":
        return [dataset.root]
    return sorted({Path(s.path).parent for s in dataset.samples})


def check_paths(src_folders: list[Path], out: Path) -> None:
    out_real = out.resolve()
    for folder in src_folders:
        src_real = folder.resolve()
        if _is_within(out_real, src_real):
            raise UsageError(f"{out}: OUT is inside SRC ({folder}); choose an output folder outside the source")
        if _is_within(src_real, out_real):
            raise UsageError(f"{out}: SRC ({folder}) is inside OUT; choose an output folder that does not contain the source")


def run_settings(recipe, options: AugmentOptions, src: str) -> dict[str, Any]:
    return {
        "recipe": recipe.source,
        "recipe_fingerprint": recipe.fingerprint,
        "seed": options.seed,
        "seeding": SEEDING,
        "copies": options.copies,
        "include_original": options.include_original,
        "format": options.fmt,
        "quality": options.quality,
        "source": os.path.abspath(src),
    }


_COMPARED = ("recipe_fingerprint", "seed", "seeding", "copies", "include_original", "format", "quality")


def prepare_out(out: Path, settings: dict[str, Any], jobs: list[Job], samples, overwrite: bool) -> None:
    """Refuse to mix runs; with ``overwrite``, remove what the earlier run wrote (and only that)."""
    run_file = out / RUN_FILE
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder; choose another OUT")
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        differs = [k for k in _COMPARED if previous.get(k) != settings[k]]
        if differs and not overwrite:
            what = ", ".join(f"{k} {previous.get(k)!r} -> {settings[k]!r}" for k in differs if k != "recipe_fingerprint")
            if "recipe_fingerprint" in differs:
                what = "the recipe" + (f", {what}" if what else "")
            raise UsageError(f"{out}: holds a run with different settings ({what}); use another OUT or --overwrite to replace it")
        if differs:
            old = AugmentOptions(copies=previous.get("copies", 1), include_original=previous.get("include_original", False),
                                 fmt=previous.get("format", "jpg"))
            for job in plan_jobs(samples, old):
                for rel, _ in job.outputs:
                    (out / rel).unlink(missing_ok=True)
            for name in REPORTS:
                (out / name).unlink(missing_ok=True)
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out}: is not empty and was not written by `augkit augment`; use an empty OUT or --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)
    write_text_atomic(out / RUN_FILE, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def write_reports(out: Path, rows: list[dict[str, Any]], summary: Summary, classes: list[str]) -> None:
    done = sorted((r for r in rows if r["status"] in ("written", "exists")), key=lambda r: r["output"])
    manifest = [[r["output"], r["source"], r["label"], "" if r["copy"] is None else r["copy"]] for r in done]
    write_text_atomic(out / MANIFEST, csv_text(["path", "source", "label", "copy"], manifest))
    failed = sorted((r for r in rows if r["status"] == "failed"), key=lambda r: (r["source"], r["output"]))
    failures = [[r["source"], r["output"], r["reason"], r["message"]] for r in failed]
    write_text_atomic(out / FAILURES, csv_text(["source", "output", "reason", "message"], failures))
    stable = {
        "inputs": summary.inputs,
        "outputs": summary.outputs,
        "failed_inputs": summary.failed_inputs,
        "failures": dict(sorted(summary.failures.items())),
        "skipped_files": dict(sorted(summary.skipped_files.items())),
        "classes": classes,
        "outputs_per_class": dict(sorted(Counter(r["label"] for r in done).items())),
    }
    write_text_atomic(out / SUMMARY, json.dumps(stable, indent=2) + "\n")


def augment(recipe, src, out, *, options: AugmentOptions = AugmentOptions(), workers: int | None = None,
            overwrite: bool = False, split: str | None = None, progress: bool = False, engine: str = "local",
            engine_options: dict[str, Any] | None = None) -> Summary:
    """Run the whole augmentation; returns the :class:`Summary`. Raises UsageError for bad usage."""
    from augkit.discovery import discover
    from augkit.engine import get_engine
    from augkit.recipes import load_recipe

    if options.fmt not in FORMATS:
        raise UsageError(f"unknown output format {options.fmt!r}; use one of: {', '.join(FORMATS)}")
    if options.copies < 0 or (options.copies == 0 and not options.include_original):
        raise UsageError("--copies must be at least 1 (or 0 with --include-original)")
    started = time.perf_counter()
    out = Path(out)
    runner = get_engine(engine, **{"workers": workers, **(engine_options or {})})
    with runner:
        dataset = discover(src, split=split)
        check_paths(source_folders(dataset), out)
        recipe = load_recipe(recipe)  # after the engine: its workers import while we do
        if options.seed is None:
            options = replace(options, seed=recipe.seed or 0)
        jobs = plan_jobs(dataset.samples, options)
        task = AugmentTask(recipe, str(out), options)
        prepare_out(out, run_settings(recipe, options, str(src)), jobs, dataset.samples, overwrite)
        jobs = prepare_jobs(out, jobs)
        summary = Summary(inputs=len(jobs), skipped_files=dict(dataset.skipped), out_dir=str(out))
        rows: list[dict[str, Any]] = []
        bar = _progress(len(jobs), progress)
        try:
            for outcome in runner.map_unordered(task, jobs):
                job = jobs[outcome.index]
                if outcome.error is not None:
                    reason = "worker_crashed" if outcome.crashed else "task_error"
                    rows.append({"source": job.key, "label": job.label or "", "output": "", "copy": None,
                                 "status": "failed", "reason": reason, "message": f"{job.key}: {outcome.error}"})
                else:
                    rows.extend(outcome.value)
                bar.update(1)
        except BaseException:
            remove_temporaries(out)
            raise
        finally:
            bar.close()
    for row in rows:
        if row["status"] == "written":
            summary.written += 1
        elif row["status"] == "exists":
            summary.existing += 1
        else:
            summary.failures[row["reason"]] = summary.failures.get(row["reason"], 0) + 1
    summary.outputs = summary.written + summary.existing
    summary.failed_inputs = len({r["source"] for r in rows if r["status"] == "failed"})
    write_reports(out, rows, summary, dataset.classes)
    summary.seconds = time.perf_counter() - started
    return summary


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="augment", disable=not enabled, dynamic_ncols=True, leave=False)
