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
  uninterrupted run would. ``OUT/augkit-run.json`` records the settings and
  ``OUT/augkit-inputs.csv`` every input (size and mtime), both before any output; a rerun
  with other settings, or whose outputs would come from changed or removed inputs, is
  refused unless ``--overwrite``, which removes exactly what the recorded run may have
  written.
- Nothing outside OUT is ever written, and nothing inside it that augkit did not write:
  every output path is a plain relative path whose folders resolve inside OUT, and an OUT
  that holds files but no run record is refused, ``--overwrite`` or not.
- ``manifest.csv`` lists every output; ``failures.csv`` every input that failed, with its
  reason; ``summary.json`` the counts. None of them depends on timing or on resuming.
"""

from __future__ import annotations

import hashlib
import json
import ntpath  # a stem like 'C:x' would be drive-relative on Windows
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from augkit.errors import UsageError
from augkit.files import TEXT_ERRORS, csv_text, file_stamp, remove_temporaries, write_text_atomic
from augkit.seeds import SEEDING

RUN_FILE = "augkit-run.json"
INPUTS = "augkit-inputs.csv"
MANIFEST = "manifest.csv"
FAILURES = "failures.csv"
SUMMARY = "summary.json"
REPORTS = (RUN_FILE, INPUTS, MANIFEST, FAILURES, SUMMARY)
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
    to ``<label>/``. Deterministic: it depends only on the samples' keys and labels.
    Every name is a plain relative path (no ``..``, no root, no empty part), so joined to
    OUT it stays below OUT whatever a manifest says."""
    width = max(2, len(str(max(options.copies - 1, 0))))

    def folder_and_stem(sample) -> tuple[str, str]:
        key = PurePosixPath(sample.key)
        if not key.is_absolute() and ".." not in key.parts:
            parts = key.parent.parts  # () for a key without a folder
        else:  # outside the manifest's folder: the output goes to <label>/
            parts = (sample.label,) if sample.label else ()
        if not all(_plain_name(part) for part in parts) or ntpath.splitdrive(key.stem)[0]:
            raise UsageError(f"{sample.key}: its output path {'/'.join((*parts, key.stem))!r} would not be a plain "
                             f"path inside OUT; a label must be a folder name without '/', '\\' or '..'")
        return "/".join(parts), key.stem

    places = [folder_and_stem(s) for s in samples]
    taken = Counter((folder, stem.lower()) for folder, stem in places)
    jobs = []
    for sample, (folder, stem) in zip(samples, places):
        if taken[(folder, stem.lower())] > 1:  # a.jpg and a.png, or two manifest rows
            stem = f"{stem}-{hashlib.blake2b(sample.key.encode('utf-8', 'surrogateescape'), digest_size=3).hexdigest()}"
        prefix = f"{folder}/{stem}" if folder else stem
        outputs = [(f"{prefix}_{k:0{width}d}.{options.fmt}", k) for k in range(options.copies)]
        if options.include_original:
            outputs.insert(0, (f"{prefix}_orig.{options.fmt}", None))
        jobs.append(Job(sample.path, sample.key, sample.label, tuple(outputs)))
    return jobs


def _plain_name(part: str) -> bool:
    return part not in ("", ".", "..") and not any(c in part for c in "/\\\0") and part.isprintable()


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
    per folder here saves a stat and a mkdir per output in the workers. A folder that
    resolves outside OUT (a symlink inside it) is refused before anything is written."""
    folders = _folders(jobs)
    root = out.resolve()
    for folder in folders:
        path = out / folder
        path.mkdir(parents=True, exist_ok=True)
        if not _is_within(path.resolve(), root):
            raise UsageError(f"{path}: resolves to {path.resolve()}, outside OUT; augkit writes only inside OUT: "
                             f"remove the link or choose another OUT")
    _sweep(out, jobs)
    present = _listing(out, folders)
    return [replace(job, outputs=tuple(o for o in job.outputs if o[0] not in present),
                    present=tuple(o for o in job.outputs if o[0] in present)) for job in jobs]


def _sweep(out: Path, jobs: list[Job]) -> None:
    """Remove the temporaries a killed run left for these jobs' outputs (and only those)."""
    planned = {rel for job in jobs for rel, _ in job.outputs}
    for folder in _folders(jobs):
        prefix = f"{folder}/" if folder else ""
        remove_temporaries(out / folder, lambda name: prefix + name in planned)


def _folders(jobs: list[Job]) -> list[str]:
    return sorted({os.path.dirname(rel) for job in jobs for rel, _ in job.outputs})


def _listing(out: Path, folders: list[str]) -> set[str]:
    """The files in these folders of OUT, as paths relative to OUT."""
    present: set[str] = set()
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        try:
            present.update(prefix + entry.name for entry in os.scandir(out / folder) if entry.is_file())
        except (FileNotFoundError, NotADirectoryError):
            continue
    return present


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


# Settings that change the bytes of an output of the same name. Copies, originals and the
# format only change which outputs there are: adding copies (or originals) keeps every
# output valid, and what a rerun would no longer make is found as stale outputs.
_COMPARED = ("recipe_fingerprint", "seed", "seeding", "quality")

# One run plans every output name in memory (about 400 bytes each, measured with the rows
# the reports need): 10 million outputs is about 4 GB.
MAX_OUTPUTS = 10_000_000


@dataclass(frozen=True)
class RecordedInput:
    """An input as ``augkit-inputs.csv`` records it: enough to plan its outputs again and to
    tell whether its file changed since."""

    key: str
    label: str | None
    stamp: tuple[int, int] | None  # file_stamp: (size, mtime_ns), None when unreadable
    path: str = ""


def record_inputs(samples) -> list[RecordedInput]:
    return [RecordedInput(s.key, s.label, file_stamp(s.path), s.path) for s in samples]


def _inputs_text(inputs: list[RecordedInput]) -> str:
    rows = [[i.key, i.label or "", *(i.stamp or ("", ""))] for i in inputs]
    return csv_text(["key", "label", "size", "mtime_ns"], rows)


def _read_inputs(path: Path) -> list[RecordedInput] | None:
    import csv

    try:
        with open(path, newline="", encoding="utf-8", errors=TEXT_ERRORS) as f:
            rows = list(csv.DictReader(f))
        return [RecordedInput(r["key"], r["label"] or None,
                              (int(r["size"]), int(r["mtime_ns"])) if r["size"] else None) for r in rows]
    except (OSError, ValueError, KeyError, csv.Error):
        return None


def _previous_run(out: Path) -> tuple[dict[str, Any], list[RecordedInput] | None] | None:
    """The run recorded in OUT (settings, inputs), None for a new or empty OUT; an OUT that
    holds anything else is refused: augkit replaces and removes only what it wrote."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder; choose another OUT")
    run_file = out / RUN_FILE
    if run_file.is_file():
        try:
            settings = json.loads(run_file.read_text(encoding="utf-8"))
            if not isinstance(settings, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise UsageError(f"{run_file}: cannot be read ({exc}); it says which files augkit wrote in {out}, so "
                             f"nothing there is replaced without it: choose another OUT") from None
        return settings, _read_inputs(out / INPUTS)
    if out.is_dir():
        first = next(iter(sorted(p.name for p in out.iterdir())), None)
        if first is not None:
            raise UsageError(f"{out}: holds files augkit did not write (e.g. {first}) and no {RUN_FILE}; "
                             f"augkit writes only into a new or empty folder, or one `augkit augment` made, "
                             f"so nothing of yours is replaced: choose another OUT")
    return None


def _stale_outputs(out: Path, previous: dict[str, Any], recorded: list[RecordedInput], jobs: list[Job],
                   inputs: list[RecordedInput]) -> list[str]:
    """Outputs in OUT that this run would not make from the same file: of inputs removed or
    changed since, or named differently now (a new input made two stems collide)."""
    old_jobs = plan_jobs(recorded, _recorded_options(previous))
    now = {rel: job.key for job in jobs for rel, _ in job.outputs}
    stamps = {i.key: i.stamp for i in inputs}
    old_stamps = {i.key: i.stamp for i in recorded}
    present = _listing(out, _folders(old_jobs))
    return sorted(rel for job in old_jobs for rel, _ in job.outputs
                  if rel in present and (now.get(rel) != job.key or stamps.get(job.key) != old_stamps[job.key]))


def _recorded_options(previous: dict[str, Any]) -> AugmentOptions:
    return AugmentOptions(copies=previous.get("copies", 1), include_original=previous.get("include_original", False),
                          fmt=previous.get("format", "jpg"))


def _remove_run(out: Path, previous: dict[str, Any], recorded) -> None:
    """Remove what the recorded run may have written: its planned outputs and its reports."""
    for job in plan_jobs(recorded, _recorded_options(previous)):
        for rel, _ in job.outputs:
            path = out / rel
            if path.is_file() or path.is_symlink():
                path.unlink()
    for name in REPORTS:
        (out / name).unlink(missing_ok=True)


def prepare_out(out: Path, settings: dict[str, Any], jobs: list[Job], samples, overwrite: bool) -> None:
    """Refuse to mix runs; with ``overwrite``, remove what the earlier run wrote (and only that).
    Then record this run (settings and inputs) before any output is written."""
    recorded_run = _previous_run(out)
    inputs = record_inputs(samples)
    if recorded_run is not None:
        previous, recorded = recorded_run
        differs = [k for k in _COMPARED if previous.get(k) != settings[k]]
        what = ", ".join(f"{k} {previous.get(k)!r} -> {settings[k]!r}" for k in differs if k != "recipe_fingerprint")
        if "recipe_fingerprint" in differs:
            what = "the recipe" + (f", {what}" if what else "")
        if recorded is None:  # made by an augkit that recorded no inputs: nothing to compare
            what = what or f"no record of its inputs ({INPUTS})"
            recorded = samples
        elif not differs:
            stale = _stale_outputs(out, previous, recorded, jobs, inputs)
            if stale:
                what = (f"{len(stale)} of its outputs, e.g. {stale[0]}, would not be made again from the same "
                        f"file: fewer copies, no originals or another format now, or source files changed or "
                        f"removed since (source {previous.get('source')} -> {settings['source']})")
        if what and not overwrite:
            raise UsageError(f"{out}: holds a run with different settings or sources ({what}); "
                             f"use another OUT or --overwrite to replace it")
        if what:
            _remove_run(out, previous, recorded)
    out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out, lambda name: name in REPORTS)
    write_text_atomic(out / RUN_FILE, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    write_text_atomic(out / INPUTS, _inputs_text(inputs))


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
    if options.copies > MAX_OUTPUTS:  # before discovery: the product below could not be built
        raise UsageError(f"--copies {options.copies}: one run plans at most {MAX_OUTPUTS:,} outputs")
    started = time.perf_counter()
    out = Path(out)
    runner = get_engine(engine, **{"workers": workers, **(engine_options or {})})
    with runner:
        dataset = discover(src, split=split)
        check_paths(source_folders(dataset), out)
        recipe = load_recipe(recipe)  # after the engine: its workers import while we do
        recipe.require_image_output("drop {name}: images are written as 8-bit")
        if options.seed is None:
            options = replace(options, seed=recipe.seed or 0)
        planned = len(dataset.samples) * (options.copies + options.include_original)
        if planned > MAX_OUTPUTS:
            raise UsageError(f"{options.copies} copies of {len(dataset.samples):,} inputs is {planned:,} outputs; "
                             f"one run plans at most {MAX_OUTPUTS:,} (about 400 bytes of memory each): use fewer "
                             f"--copies, or split SRC into several runs, each with its own OUT")
        jobs = plan_jobs(dataset.samples, options)
        task = AugmentTask(recipe, str(out), options)
        prepare_out(out, run_settings(recipe, options, str(src)), jobs, dataset.samples, overwrite)
        jobs = prepare_jobs(out, jobs)
        summary = Summary(inputs=len(jobs), skipped_files=dict(dataset.skipped), out_dir=str(out))
        rows: list[dict[str, Any]] = []
        bar = _progress(sum(len(job.outputs) for job in jobs), progress)  # in outputs, as the summary counts
        try:
            for outcome in runner.map_unordered(task, jobs):
                job = jobs[outcome.index]
                if outcome.error is not None:
                    reason = "worker_crashed" if outcome.crashed else "task_error"
                    rows.append({"source": job.key, "label": job.label or "", "output": "", "copy": None,
                                 "status": "failed", "reason": reason, "message": f"{job.key}: {outcome.error}"})
                else:
                    rows.extend(outcome.value)
                bar.update(len(job.outputs))
        except BaseException:
            _sweep(out, jobs)
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

    return tqdm(total=total, unit="output", desc="augment", disable=not enabled, dynamic_ncols=True, leave=False)
