"""What augment may touch in OUT: only OUT, and in OUT only what augkit wrote.

Before any image, OUT records the run: ``augkit-run.json`` (its settings),
``augkit-inputs.csv`` (every input with its file's size and mtime) and
``augkit-written.txt``, to which a worker appends every output's name just before it
writes that output. So a rerun knows exactly which files augkit may have written, even
after kill -9, and:

- a file at an output's name that augkit did not write is never counted as done, replaced
  or removed: the run is refused, naming it;
- a rerun with other settings, or one that would not make some outputs there again from
  the same file (fewer copies, another format, an input changed or removed), is refused
  unless ``overwrite``, which removes exactly the files the record says augkit wrote;
- an OUT holding files but no record is refused, ``overwrite`` or not; every folder an
  output goes to must resolve inside OUT (no symlink out), checked before anything is
  written or removed; and one run at a time holds OUT (a lock, released when the process
  ends, however it ends).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from augkit.stages.augment_plan import AugmentOptions, Job, plan_jobs
from augkit.core.errors import UsageError
from augkit.core.files import (TEXT_ERRORS, csv_text, file_stamp, folder_lock, is_empty_folder, is_within,
                               remove_temporaries, write_text_atomic)
from augkit.core.runs import FINGERPRINT, UnreadableRecord, describe, differences, read_record, \
    refuse_unless_overwrite, write_record
from augkit.core.seeds import SEEDING
from augkit.core.words import plural
from augkit.stages.decode_size import NOT_RECORDED, decode_setting, recipe_hint

RUN_FILE = "augkit-run.json"
INPUTS = "augkit-inputs.csv"
WRITTEN = "augkit-written.txt"
MANIFEST = "manifest.csv"
FAILURES = "failures.csv"
SUMMARY = "summary.json"
SHARDS_RECORD = "augkit-shards.jsonl"  # each finished shard's rows (augkit.stages.augment_shards)
REPORTS = (RUN_FILE, INPUTS, WRITTEN, MANIFEST, FAILURES, SUMMARY, SHARDS_RECORD)

# Settings that change the bytes of an output of the same name. Copies, originals and the
# format only change which outputs there are: adding copies (or originals) keeps every
# output valid, and what a rerun would no longer make is found as stale outputs. Only a
# run into shards records the shard settings, so files and shards are told apart.
_COMPARED = (FINGERPRINT, "seed", "seeding", "quality", "decode", "output_format", "shard_size", "shard_samples")
# Settings that say which outputs there are: where each output depends on every input
# (shards), changing them changes every output.
_PLANNED = ("copies", "balance", "include_original", "format")


def run_settings(recipe, options: AugmentOptions, src: str) -> dict[str, Any]:
    return {
        "recipe": recipe.source,
        FINGERPRINT: recipe.fingerprint,
        "seed": options.seed,
        "seeding": SEEDING,
        "copies": options.copies,
        "balance": options.balance,
        "include_original": options.include_original,
        "format": options.fmt,
        "quality": options.quality,
        "source": os.path.abspath(src),
        **decode_setting(recipe_hint(recipe, options.reduced_decode)),
    }


# --- the record -------------------------------------------------------------------------------


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


def journal(out_dir: str, outputs: Iterable[str]) -> None:
    """Note that these outputs are about to be written: one append, so lines written by
    workers at the same time never interleave."""
    text = "".join(f"{json.dumps(rel)}\n" for rel in outputs).encode("utf-8")
    fd = os.open(os.path.join(out_dir, WRITTEN), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, text)
    finally:
        os.close(fd)


def settle_journal(out: Path) -> None:
    """At the end of a run: the journal as the sorted list of the outputs augkit wrote that
    are there, each with its size, so a finished OUT is the same bytes however its workers
    were scheduled, and a later run can tell an output someone changed since."""
    ours = _ours(out) or {}
    write_text_atomic(out / WRITTEN, "".join(f"{json.dumps([rel, ours[rel]])}\n" for rel in sorted(ours)))


def _journal(out: Path) -> dict[str, int | None] | None:
    """Output -> its size when a run ended (None: noted before writing, not yet settled);
    None for an OUT from before the journal."""
    try:
        with open(out / WRITTEN, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{out / WRITTEN}: cannot be read ({exc}); it lists the files augkit wrote in {out}, "
                         f"so nothing there is replaced without it: choose another OUT") from None
    journal: dict[str, int | None] = {}
    for entry in entries:
        rel, size = (entry, None) if isinstance(entry, str) else entry
        journal[rel] = size if size is not None else journal.get(rel)
    return journal


def _ours(out: Path) -> dict[str, int] | None:
    """The outputs in OUT that augkit wrote and nobody changed since (by size), with their
    sizes; None for an OUT from before the journal."""
    journal = _journal(out)
    if journal is None:
        return None
    sizes = _sizes(out, {os.path.dirname(rel) for rel in journal})
    return {rel: sizes[rel] for rel, size in journal.items() if rel in sizes and size in (None, sizes[rel])}


def previous_run(out: Path) -> tuple[dict[str, Any], list[RecordedInput] | None] | None:
    """The run recorded in OUT (settings, inputs), None for a new or empty OUT; an OUT that
    holds anything else is refused: augkit replaces and removes only what it wrote."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder; choose another OUT")
    run_file = out / RUN_FILE
    try:
        settings = read_record(run_file)
    except UnreadableRecord as exc:
        raise UsageError(f"{run_file}: cannot be read ({exc}); it says which files augkit wrote in {out}, so "
                         f"nothing there is replaced without it: choose another OUT") from None
    if settings is not None:
        return settings, _read_inputs(out / INPUTS)
    if out.is_dir() and not is_empty_folder(out):
        first = sorted(p.name for p in out.iterdir())[0]
        raise UsageError(f"{out}: holds files augkit did not write (e.g. {first}) and no {RUN_FILE}; "
                         f"augkit writes only into a new or empty folder, or one `augkit augment` made, "
                         f"so nothing of yours is replaced: choose another OUT")
    return None


@contextmanager
def holding(out: Path):
    """OUT for this run alone: a second run into it is refused until this one ends."""
    previous_run(out)  # refuse a folder of the user's before creating anything in it
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "OUT"):
        yield


def _recorded_options(previous: dict[str, Any]) -> AugmentOptions:
    return AugmentOptions(copies=previous.get("copies", 1), include_original=previous.get("include_original", False),
                          fmt=previous.get("format", "jpg"), seed=previous.get("seed"), balance=previous.get("balance"))


def _stale_outputs(out: Path, previous: dict[str, Any], recorded: list[RecordedInput], jobs: list[Job],
                   inputs: list[RecordedInput], options: AugmentOptions, ours: set[str]) -> tuple[list[str], str]:
    """The outputs augkit wrote in OUT that this run would not make again from the same
    file, and why: inputs removed or changed since, fewer copies, no originals, another
    format, or names that moved (a new input now shares a stem)."""
    old = _recorded_options(previous)
    now = {rel: job.key for job in jobs for rel, _ in job.outputs}
    stamps = {i.key: i.stamp for i in inputs}
    removed, changed, not_made = [], [], []
    for i, job in zip(recorded, plan_jobs(recorded, old)):
        for rel, _ in job.outputs:
            if rel not in ours:
                continue
            if job.key not in stamps:
                removed.append((rel, job.key))
            elif stamps[job.key] != i.stamp:
                changed.append((rel, job.key))
            elif now.get(rel) != job.key:
                not_made.append((rel, job.key))
    causes = []
    if removed:
        causes.append(f"{plural(len({k for _, k in removed}), 'source file')} removed since, e.g. {removed[0][1]}")
    if changed:
        causes.append(f"{plural(len({k for _, k in changed}), 'source file')} changed since, e.g. {changed[0][1]}")
    if not_made:
        why = [f"balance {old.balance} -> {options.balance}" if old.balance != options.balance else "",
               f"copies {old.copies} -> {options.copies}" if options.copies < old.copies and not options.balance else "",
               "no originals now" if old.include_original and not options.include_original else "",
               f"format {old.fmt} -> {options.fmt}" if old.fmt != options.fmt else ""]
        moved = ("copies spread anew over a class whose images changed" if options.balance
                 else "names that moved: a new input shares a stem")
        why = [w for w in why if w] or [moved]
        causes.append(f"{plural(len(not_made), 'output')} this run would not make ({', '.join(why)}), e.g. {not_made[0][0]}")
    stale = sorted(rel for rel, _ in removed + changed + not_made)
    return stale, "; ".join(causes)


def _refuse_foreign(out: Path, jobs: list[Job], ours: dict[str, int]) -> None:
    """A file at one of this run's output names that augkit did not write (or that changed
    since it did) is the user's: never counted as done, replaced or removed."""
    present = _sizes(out, _folders(jobs))
    foreign = sorted(rel for job in jobs for rel, _ in job.outputs if rel in present and rel not in ours)
    if foreign:
        raise UsageError(f"{out / foreign[0]}: augkit would write an output there but did not write this file, "
                         f"or it changed since ({plural(len(foreign), 'such file')}); it is never counted as done, "
                         f"replaced or removed: move it out of OUT")


def _remove_run(out: Path, previous: dict[str, Any], recorded, ours: dict[str, int] | None) -> None:
    """Remove what the recorded run wrote (its journal says which; before the journal, its
    planned outputs) and its reports. Every folder is checked to resolve inside OUT first."""
    paths = sorted(ours) if ours is not None else [rel for job in plan_jobs(recorded, _recorded_options(previous))
                                                    for rel, _ in job.outputs]
    _check_inside(out, {os.path.dirname(rel) for rel in paths})
    for rel in paths:
        path = out / rel
        if path.is_file() or path.is_symlink():
            path.unlink()
    for name in REPORTS:
        (out / name).unlink(missing_ok=True)


def _check_inside(out: Path, folders: Iterable[str]) -> None:
    """Each folder, or the part of it that exists already, resolves inside OUT."""
    root = out.resolve()
    for folder in sorted(folders):
        path = out / folder
        while not path.exists() and path != out:
            path = path.parent
        if not is_within(path.resolve(), root):
            raise UsageError(f"{path}: resolves to {path.resolve()}, outside OUT; augkit writes and removes only "
                             f"inside OUT: remove the link or choose another OUT")


def _describe(previous: dict[str, Any], settings: dict[str, Any], differs: list[str]) -> str:
    """What differs, in words; files against shards is said as that alone."""
    if "output_format" in differs:  # only shard runs record it: files is its absence
        differs = [k for k in differs if k not in ("shard_size", "shard_samples")]
        previous = {**previous, "output_format": previous.get("output_format", "files")}
        settings = {**settings, "output_format": settings.get("output_format", "files")}
    return describe(previous, settings, differs, missing=NOT_RECORDED)


def prepare_out(out: Path, settings: dict[str, Any], jobs: list[Job], samples, options: AugmentOptions,
                overwrite: bool, *, whole: Callable[[list[RecordedInput], list[RecordedInput]], str] | None = None) -> None:
    """Refuse to mix runs; with ``overwrite``, remove what the earlier run wrote (and only that).
    Then record this run (journal, settings, inputs) before any output is written.

    ``whole``: for outputs that each depend on every input (shards; ``jobs`` then name the
    shard files): ``whole(recorded, inputs)`` says what changed in SRC ('' if nothing), in
    place of the check per output, and the settings that plan the outputs are compared too."""
    recorded_run = previous_run(out)
    inputs = record_inputs(samples)
    if recorded_run is not None:
        previous, recorded = recorded_run
        ours = _ours(out)
        differs = differences(previous, settings, _COMPARED + (_PLANNED if whole else ()))
        what = _describe(previous, settings, differs)
        if recorded is None or ours is None:  # made by an augkit that recorded less: nothing to compare
            what = what or f"no record of its inputs and outputs ({INPUTS}, {WRITTEN}): made by an older augkit"
            recorded = recorded or samples
        elif not differs:
            if whole is not None:
                what = whole(recorded, inputs)
            else:
                stale, what = _stale_outputs(out, previous, recorded, jobs, inputs, options, set(ours))
            if what and previous.get("source") != settings["source"]:
                what += f"; the earlier run's SRC was {previous.get('source')}"
        if ours is not None:
            _refuse_foreign(out, jobs, ours)  # before anything is removed
        if refuse_unless_overwrite(out, what, overwrite, holds="a run", word="OUT"):
            _remove_run(out, previous, recorded, ours)
    out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out, lambda name: name in REPORTS)
    if not (out / WRITTEN).exists():
        write_text_atomic(out / WRITTEN, "")  # first: an OUT with a run file always has a journal
    write_record(out / RUN_FILE, settings)
    write_text_atomic(out / INPUTS, _inputs_text(inputs))


# --- the outputs still to write ---------------------------------------------------------------


def prepare_jobs(out: Path, jobs: list[Job]) -> list[Job]:
    """Make every output folder once, and split each job's outputs into those an earlier
    run already wrote (whole: writes are atomic) and those still to write. One listing
    per folder here saves a stat and a mkdir per output in the workers. A folder that
    resolves outside OUT (a symlink inside it) is refused before anything is written."""
    folders = _folders(jobs)
    _check_inside(out, folders)
    for folder in folders:
        (out / folder).mkdir(parents=True, exist_ok=True)
    sweep(out, jobs)
    present = set(_sizes(out, folders))
    return [replace(job, outputs=tuple(o for o in job.outputs if o[0] not in present),
                    present=tuple(o for o in job.outputs if o[0] in present)) for job in jobs]


def sweep(out: Path, jobs: list[Job]) -> None:
    """Remove the temporaries a killed run left for these jobs' outputs (and only those)."""
    planned = {rel for job in jobs for rel, _ in job.outputs}
    for folder in _folders(jobs):
        prefix = f"{folder}/" if folder else ""
        remove_temporaries(out / folder, lambda name: prefix + name in planned)


def _folders(jobs: list[Job]) -> list[str]:
    return sorted({os.path.dirname(rel) for job in jobs for rel, _ in job.outputs})


def _sizes(out: Path, folders: Iterable[str]) -> dict[str, int]:
    """The files in these folders of OUT (paths relative to OUT) and their sizes."""
    sizes: dict[str, int] = {}
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        try:
            entries = list(os.scandir(out / folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_file():
                sizes[prefix + entry.name] = entry.stat().st_size
    return sizes
