"""Augment: write K augmented copies of every image of a source into an output folder.

Stages: discovery (parent) -> plan the outputs (parent, :mod:`augkit.stages.augment_plan`) -> hold
and check OUT (parent, :mod:`augkit.stages.augment_out`) -> decode, augment, encode and write
(engine workers, one :class:`AugmentTask` call per input) -> reports (parent).

What a user can rely on:
- Copy ``k`` of an input is seeded with ``derive_seed(seed, key, k)``: byte-identical for
  any worker count and any rerun.
- Every file appears whole or not at all (temporary name, then ``os.replace``). A rerun
  of an interrupted run writes only what is missing (and retries what failed), so it ends
  exactly where an uninterrupted run would.
- Nothing outside OUT is ever written, and nothing inside it that augkit did not write
  (:mod:`augkit.stages.augment_out` says how).
- ``manifest.csv`` lists every output; ``failures.csv`` every input that failed, with its
  reason; ``summary.json`` the counts. None of them depends on timing or on resuming.
- ``output_format="webdataset"`` writes the same images into WebDataset tar shards instead
  (:mod:`augkit.stages.augment_shards`), with the same promises, shard by shard.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from augkit.stages.augment_out import (FAILURES, MANIFEST, SUMMARY, holding, journal, prepare_jobs, prepare_out,
                                       run_settings, settle_journal, sweep)
from augkit.stages.augment_plan import AugmentOptions, Job, balance_plan, check_options, plan_jobs
from augkit.core.errors import UsageError
from augkit.core.files import check_paths, csv_text, write_text_atomic
from augkit.core.progress import progress_bar
from augkit.core.seeds import run_seed
from augkit.engines.contract import failure_of
from augkit.stages.augment_copies import Copies
from augkit.stages.augment_shards import parse_sharding, write_shards

__all__ = ["AugmentOptions", "AugmentTask", "Job", "Summary", "augment", "plan_jobs", "prepare_jobs"]


class AugmentTask:
    """Per input: decode once, then write each missing output. Returns result rows."""

    def __init__(self, recipe, out_dir: str, options: AugmentOptions):
        self.copies = Copies(recipe, options)  # decode, original, copies: as for shards
        self.out_dir = out_dir
        self.options = options

    def __call__(self, job: Job) -> list[dict[str, Any]]:
        from augkit.input.encoding import write_image_atomic

        opts = self.options
        base = {"source": job.key, "label": job.label or ""}
        rows = [{**base, "output": rel, "copy": k, "status": "exists"} for rel, k in job.present]
        noted = False
        for rel, k, result, failure in (self.copies(job.path, job.key, job.outputs) if job.outputs else ()):
            row = {**base, "output": rel, "copy": k}
            if failure is not None:
                rows.append({**row, "status": "failed", **failure})
                continue
            if not noted:  # before writing: see augkit.stages.augment_out
                journal(self.out_dir, (rel for rel, _ in job.outputs))
                noted = True
            try:
                write_image_atomic(os.path.join(self.out_dir, rel), result, fmt=opts.fmt, quality=opts.quality,
                                   parents=False)  # made by prepare_jobs
            except (OSError, ValueError) as exc:
                rows.append({**row, "status": "failed", "reason": "write_error", "message": f"{rel}: cannot write: {exc}"})
                continue
            rows.append({**row, "status": "written"})
        return rows


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
    balance: dict[str, Any] | None = None  # --balance: the target and the plan and outcome per class

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_reports(out: Path, rows: list[dict[str, Any]], summary: Summary, classes: list[str]) -> None:
    done = sorted((r for r in rows if r["status"] in ("written", "exists")), key=lambda r: r["output"])
    shards = sorted({r["shard"] for r in rows if "shard" in r})  # into shards: the member's name and its shard
    manifest = [[r["output"], r["source"], r["label"], "" if r["copy"] is None else r["copy"],
                 *([r["shard"]] if shards else [])] for r in done]
    write_text_atomic(out / MANIFEST, csv_text(["path", "source", "label", "copy", *(["shard"] if shards else [])],
                                               manifest))
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
    if summary.balance is not None:
        stable["balance"] = summary.balance
    if shards:
        stable["shards"] = len(shards)
    write_text_atomic(out / SUMMARY, json.dumps(stable, indent=2) + "\n")


def augment(recipe, src, out, *, options: AugmentOptions = AugmentOptions(), workers: int | None = None,
            overwrite: bool = False, split: str | None = None, progress: bool = False, engine: str = "local",
            engine_options: dict[str, Any] | None = None, output_format: str = "files",
            shard_size: int | str | None = None) -> Summary:
    """Run the whole augmentation; returns the :class:`Summary`. Raises UsageError for bad usage.

    ``output_format="webdataset"``: WebDataset tar shards of ``shard_size`` samples (default
    1000), or of about a size ("100MB"), instead of files: :mod:`augkit.stages.augment_shards`."""
    from augkit.input.discovery import discover
    from augkit.engines import get_engine
    from augkit.recipes import load_recipe

    from augkit.input.decoding import resolve_max_pixels

    check_options(options)  # before discovery: an absurd --copies is refused at once
    sharding = parse_sharding(output_format, shard_size)
    if sharding is not None:  # one shard is one task: shards are what the workers share out
        engine_options = {"chunk_size": 1, **(engine_options or {})}
    resolve_max_pixels(options.max_pixels)  # a bad AUGKIT_MAX_IMAGE_PIXELS: one usage error, not a row per image
    started = time.perf_counter()
    out = Path(out)
    runner = get_engine(engine, workers=workers, preload=(__name__,), **(engine_options or {}))
    with runner:
        dataset = discover(src, split=split)
        check_paths(dataset.source_folders(), out)
        check_options(options, len(dataset.samples), len(dataset.classes))
        if options.balance is not None:
            _require_labels(dataset)
        recipe = load_recipe(recipe)  # after the engine: its workers import while we do
        recipe.require_image_output("drop {name}: images are written as 8-bit")
        options = replace(options, seed=run_seed(options.seed, recipe))
        jobs = plan_jobs(dataset.samples, options)
        with holding(out):
            if sharding is None:
                prepare_out(out, run_settings(recipe, options, str(src)), jobs, dataset.samples, options, overwrite)
                jobs = prepare_jobs(out, jobs)
                rows = _run(runner, AugmentTask(recipe, str(out), options), out, jobs, progress)
            else:
                rows = write_shards(runner, recipe, out, jobs, dataset, options, sharding, overwrite, progress, str(src))
            summary = _summary(rows, len(jobs), dataset, out)
            if options.balance is not None:
                summary.balance = balance_report(dataset.samples, options, rows)
            write_reports(out, rows, summary, dataset.classes)
            settle_journal(out)
    summary.seconds = time.perf_counter() - started
    return summary


def _require_labels(dataset) -> None:
    unlabelled = [s.key for s in dataset.samples if s.label is None]
    if unlabelled:
        raise UsageError(f"--balance plans outputs per class, but {len(unlabelled)} of the {len(dataset.samples)} "
                         f"images have no class (e.g. {unlabelled[0]}); use a folder of class folders or a manifest "
                         f"with a label for every image")


def balance_report(samples, options: AugmentOptions, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``--balance``'s plan per class and what came of it, for summary.json and the command's
    report: a class that ends short of the target (images that could not be read), or with
    no output at all (none of its images readable), says so."""
    done = Counter(r["label"] for r in rows if r["status"] in ("written", "exists"))
    failed = Counter(r["label"] for r in rows if r["status"] == "failed" and not r["output"])
    per_class = {}
    for label, plan in balance_plan(samples, options)[1].items():
        per_class[label] = {"images": plan.images, "originals": plan.originals, "copies": plan.copies,
                            "copies_per_image": [plan.least, plan.most], "planned": plan.planned,
                            "outputs": done.get(label, 0), "unreadable_images": failed.get(label, 0)}
    return {"target": options.balance, "per_class": per_class}


def _run(runner, task: AugmentTask, out: Path, jobs: list[Job], progress: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # in outputs, as the summary counts
    bar = progress_bar(sum(len(job.outputs) for job in jobs), unit="output", desc="augment", enabled=progress)
    try:
        for outcome in runner.map_unordered(task, jobs):
            job = jobs[outcome.index]
            if outcome.error is not None:
                rows.append({"source": job.key, "label": job.label or "", "output": "", "copy": None,
                             "status": "failed", **failure_of(outcome, job.key)})
            else:
                rows.extend(outcome.value)
            bar.update(len(job.outputs))
    except BaseException:
        sweep(out, jobs)
        raise
    finally:
        bar.close()
    return rows


def _summary(rows: list[dict[str, Any]], inputs: int, dataset, out: Path) -> Summary:
    summary = Summary(inputs=inputs, skipped_files=dict(dataset.skipped), out_dir=str(out))
    for row in rows:
        if row["status"] == "written":
            summary.written += 1
        elif row["status"] == "exists":
            summary.existing += 1
        else:
            summary.failures[row["reason"]] = summary.failures.get(row["reason"], 0) + 1
    summary.outputs = summary.written + summary.existing
    summary.failed_inputs = len({r["source"] for r in rows if r["status"] == "failed"})
    return summary
