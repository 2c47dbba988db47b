"""Augment into WebDataset tar shards: ``OUT/shard-000000.tar``, ... (``--output-format webdataset``).

The plan decides everything before the run. The outputs, in the plan's order (inputs
sorted by key, each input's original then its copies), are cut into shards of
``--shard-size`` samples; for a size in MB, of as many samples as fill it on average, as
measured before the run on the outputs of :data:`PILOT_INPUTS` inputs spread over the plan.
Each shard is one task (one Ray task): decode each input once, make its outputs
(:mod:`augkit.stages.augment_copies`, as for files), encode them, and write the shard whole
(a temporary name, then a rename). A tar's headers depend only on the members' names and
sizes (:class:`augkit.input.shards.ShardWriter`), so shards are byte-identical for any
worker count and either engine; the driver sees rows, never pixels.

A sample is ``KEY.jpg`` (``png``, ``webp``: ``--format``), ``KEY.cls`` (the class index,
for a labelled input) and ``KEY.json`` (source, label, copy, seed), where ``KEY`` is the
name the output would have as a file, without its extension
(:func:`augkit.input.shards.member_keys`): reading the shards back gives the keys, hence
the seeds, a folder of the same outputs gives.

OUT is guarded as for files (:mod:`augkit.stages.augment_out`): the journal notes each
shard before it is written. The parent appends each finished shard's rows and size to
``augkit-shards.jsonl``; a rerun keeps the shards whose file and record agree and redoes
the others (a killed shard's temporary is swept). Every shard depends on the whole plan,
so a rerun with other settings, or after an image of SRC was added, removed or edited,
is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.core.files import remove_temporaries, write_atomic, write_text_atomic
from augkit.core.progress import progress_bar
from augkit.core.words import plural
from augkit.engines.contract import failure_of
from augkit.stages.augment_copies import Copies, copy_seed
from augkit.stages.augment_out import SHARDS_RECORD, journal, prepare_out, run_settings
from augkit.stages.augment_plan import AugmentOptions, Job

OUTPUT_FORMATS = ("files", "webdataset")
DEFAULT_SHARD_SIZE = "1000"
PILOT_INPUTS = 16  # inputs whose outputs are measured to size shards given in MB
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(kb|mb|gb)?\s*", re.IGNORECASE)
_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9}


@dataclass(frozen=True)
class Sharding:
    """``--shard-size``: ``samples`` per shard, or a target of ``bytes`` per shard."""

    text: str  # as recorded: "1000", "100MB"
    samples: int | None = None
    bytes: int | None = None


def parse_sharding(output_format: str, shard_size: int | str | None) -> Sharding | None:
    """The shard settings of ``--output-format`` and ``--shard-size`` (None: files)."""
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown --output-format {output_format!r}; use one of: {', '.join(OUTPUT_FORMATS)}")
    if output_format == "files":
        if shard_size is not None:
            raise UsageError("--shard-size needs --output-format webdataset")
        return None
    text = str(DEFAULT_SHARD_SIZE if shard_size is None else shard_size)
    match = _SIZE.fullmatch(text)
    unit = (match.group(2) or "").lower() if match else ""
    if match is None or (not unit and "." in match.group(1)) or float(match.group(1)) <= 0:
        raise UsageError(f"--shard-size {text!r}: give samples per shard (1000) or a size (100MB, 1GB)")
    if not unit:
        return Sharding(str(int(match.group(1))), samples=int(match.group(1)))
    size = int(float(match.group(1)) * _UNITS[unit])
    return Sharding(f"{match.group(1)}{unit.upper()}", bytes=size)


@dataclass(frozen=True)
class ShardEntry:
    """One input and its outputs in a shard: (sample key in the shard, copy or None)."""

    path: str
    key: str
    label: str | None
    outputs: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True)
class ShardJob:
    name: str  # shard-000000.tar
    entries: tuple[ShardEntry, ...]
    measure: bool = False  # only count the bytes its samples would take (the pilot)

    @property
    def key(self) -> str:  # what interrupting tests and messages name an item by
        return self.name

    @property
    def outputs(self) -> int:
        return sum(len(entry.outputs) for entry in self.entries)


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def plan_shards(jobs: list[Job], per_shard: int, fmt: str) -> list[ShardJob]:
    """The plan's outputs, in order, ``per_shard`` to a shard; an input whose outputs
    straddle two shards is an entry of each (decoded in both)."""
    from augkit.input.shards import member_keys

    stems = [rel[: -len(fmt) - 1] for job in jobs for rel, _ in job.outputs]
    keys = member_keys(stems)
    flat = [(job, keys[rel[: -len(fmt) - 1]], k) for job in jobs for rel, k in job.outputs]
    shards = []
    for start in range(0, len(flat), per_shard):
        entries: list[ShardEntry] = []
        for job, key, k in flat[start:start + per_shard]:
            if entries and entries[-1].key == job.key:
                entries[-1] = ShardEntry(job.path, job.key, job.label, (*entries[-1].outputs, (key, k)))
            else:
                entries.append(ShardEntry(job.path, job.key, job.label, ((key, k),)))
        shards.append(ShardJob(shard_name(len(shards)), tuple(entries)))
    return shards


class ShardTask:
    """Per shard: make every output of its entries and write the shard whole. Returns
    ``{"rows": [...], "size": bytes of the shard, or None when it could not be written}``."""

    def __init__(self, recipe, out_dir: str, options: AugmentOptions, class_index: dict[str, int]):
        self.copies = Copies(recipe, options)
        self.out_dir = out_dir
        self.options = options
        self.class_index = class_index

    def __call__(self, shard: ShardJob) -> dict[str, Any]:
        from augkit.input.shards import ShardWriter

        rows: list[dict[str, Any]] = []
        if shard.measure:
            counter = ShardWriter(None)
            self._fill(counter, shard, rows)
            return {"rows": rows, "size": counter.size}
        journal(self.out_dir, [shard.name])  # before writing: see augkit.stages.augment_out
        path = os.path.join(self.out_dir, shard.name)

        def write(f) -> None:
            with ShardWriter(f) as writer:
                self._fill(writer, shard, rows)

        try:
            write_atomic(path, write)
        except OSError as exc:
            return {"rows": _not_written(shard, rows, self.options.fmt, f"{shard.name}: cannot write: {exc}"),
                    "size": None}
        return {"rows": rows, "size": os.path.getsize(path)}

    def _fill(self, writer, shard: ShardJob, rows: list[dict[str, Any]]) -> None:
        from augkit.input.encoding import encode_image

        opts = self.options
        for entry in shard.entries:
            base = {"source": entry.key, "label": entry.label or "", "shard": shard.name}
            for key, k, image, failure in self.copies(entry.path, entry.key, entry.outputs):
                row = {**base, "output": f"{key}.{opts.fmt}" if key else "", "copy": k}
                if failure is not None:
                    rows.append({**row, "status": "failed", **failure})
                    continue
                try:
                    data = encode_image(image, opts.fmt, opts.quality)
                except ValueError as exc:
                    rows.append({**row, "status": "failed", "reason": "write_error",
                                 "message": f"{row['output']}: cannot encode: {exc}"})
                    continue
                writer.add(row["output"], data)
                if entry.label is not None:
                    writer.add(f"{key}.cls", str(self.class_index[entry.label]).encode())
                meta = {"source": entry.key, "label": entry.label, "copy": k,
                        "seed": None if k is None else copy_seed(opts.seed, entry.key, k)}
                writer.add(f"{key}.json", json.dumps(meta, sort_keys=True).encode())
                rows.append({**row, "status": "written"})


def _not_written(shard: ShardJob, rows: list[dict[str, Any]], fmt: str, message: str) -> list[dict[str, Any]]:
    """The rows of a shard that could not be written: its failures as they were, and a
    write_error for every other output (written into the temporary, or never reached)."""
    failed = [r for r in rows if r["status"] == "failed"]
    unreadable = {r["source"] for r in failed if not r["output"]}
    done = {(r["source"], r["copy"]) for r in failed}
    lost = [{"source": e.key, "label": e.label or "", "shard": shard.name, "output": f"{key}.{fmt}",
             "copy": k, "status": "failed", "reason": "write_error", "message": message}
            for e in shard.entries if e.key not in unreadable for key, k in e.outputs if (e.key, k) not in done]
    return failed + lost


# --- the run in the parent ------------------------------------------------------------------


def write_shards(runner, recipe, out: Path, jobs: list[Job], dataset, options: AugmentOptions, sharding: Sharding,
                 overwrite: bool, progress: bool, src: str) -> list[dict[str, Any]]:
    """Plan, guard OUT, write the shards still to write; every shard's rows (those a
    previous run finished as ``exists``). OUT is held by the caller."""
    task = ShardTask(recipe, str(out), options, dataset.class_to_index)
    per_shard = sharding.samples or _measured(runner, task, jobs, sharding.bytes)
    shards = plan_shards(jobs, per_shard, options.fmt)
    settings = {**run_settings(recipe, options, src), "output_format": "webdataset", "shard_size": sharding.text,
                "shard_samples": per_shard}
    shard_jobs = [Job("", s.name, None, ((s.name, None),)) for s in shards]  # what OUT holds: shard files
    prepare_out(out, settings, shard_jobs, dataset.samples, options, overwrite, whole=inputs_changed)
    names = {s.name for s in shards}
    remove_temporaries(out, names.__contains__)
    finished = _finished(out, names)
    rows = [{**row, "status": "exists" if row["status"] == "written" else row["status"]}
            for name in sorted(finished) for row in finished[name]]
    todo = [s for s in shards if s.name not in finished]
    rows += _run(runner, task, out, todo, progress)
    _settle(out, names)
    return rows


def _measured(runner, task: ShardTask, jobs: list[Job], target: int) -> int:
    """Samples per shard to fill ``target`` bytes on average: the encoded outputs of inputs
    spread evenly over the plan, measured (not written) by the engine's workers."""
    if not jobs:
        return 1
    picks = sorted({i * len(jobs) // min(PILOT_INPUTS, len(jobs)) for i in range(min(PILOT_INPUTS, len(jobs)))})
    pilot = [ShardJob(f"pilot-{i}", plan_shards([jobs[i]], 1 << 30, task.options.fmt)[0].entries, measure=True)
             for i in picks]
    size = samples = 0
    for outcome in runner.map(task, pilot):
        if outcome.error is None:
            size += outcome.value["size"]
            samples += sum(row["status"] == "written" for row in outcome.value["rows"])
    if not samples:  # not one of them could be read: a guess the run does not depend on for its bytes
        return int(DEFAULT_SHARD_SIZE)
    return max(1, int(target // (size / samples)))


def inputs_changed(recorded, inputs) -> str:
    """What changed in SRC since the recorded run, in words ('' when nothing did): every
    shard depends on every input, so any change is another run."""
    before = {i.key: (i.label, i.stamp) for i in recorded}
    now = {i.key: (i.label, i.stamp) for i in inputs}
    added = [k for k in now if k not in before]
    removed = [k for k in before if k not in now]
    changed = [k for k in now if k in before and now[k] != before[k]]
    causes = [f"{plural(len(keys), 'source image')} {what} since, e.g. {keys[0]}"
              for keys, what in ((added, "added"), (removed, "removed"), (changed, "changed")) if keys]
    return "; ".join(causes) + ("; shards depend on every input" if causes else "")


def _run(runner, task: ShardTask, out: Path, todo: list[ShardJob], progress: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bar = progress_bar(sum(s.outputs for s in todo), unit="output", desc="augment", enabled=progress)
    try:
        for outcome in runner.map_unordered(task, todo):
            shard = todo[outcome.index]
            if outcome.error is not None:
                rows += [{"source": e.key, "label": e.label or "", "output": "", "copy": None, "shard": shard.name,
                          "status": "failed", **failure_of(outcome, e.key, died="the worker died writing its shard")}
                         for e in shard.entries]
            else:
                rows += outcome.value["rows"]
                if outcome.value["size"] is not None:
                    _record(out, shard.name, outcome.value)
            bar.update(shard.outputs)
    except BaseException:
        remove_temporaries(out, {s.name for s in todo}.__contains__)
        raise
    finally:
        bar.close()
    return rows


# --- the record of finished shards ----------------------------------------------------------


def _record(out: Path, name: str, result: dict[str, Any]) -> None:
    """Note a finished shard, its size and its rows: one append by the parent alone."""
    line = json.dumps({"shard": name, "size": result["size"], "rows": result["rows"]}, sort_keys=True) + "\n"
    fd = os.open(out / SHARDS_RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def _read_record(out: Path) -> dict[str, dict[str, Any]]:
    """Shard -> its last record; a line a kill cut short is ignored (its shard is redone)."""
    try:
        with open(out / SHARDS_RECORD, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    records = {}
    for line in lines:
        try:
            entry = json.loads(line)
            records[entry["shard"]] = entry
        except (ValueError, KeyError, TypeError):
            continue
    return records


def _finished(out: Path, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Shard -> its rows, for the shards of this plan that a run finished: the file is there
    with the size recorded when it was written."""
    records = _read_record(out)
    finished = {}
    for name in names:
        entry = records.get(name)
        try:
            whole = entry is not None and os.path.getsize(out / name) == entry["size"]
        except OSError:
            whole = False
        if whole:
            finished[name] = entry["rows"]
    return finished


def _settle(out: Path, names: Iterable[str]) -> None:
    """The record as the finished shards' entries sorted by name: the same bytes however the
    run was scheduled or resumed."""
    records = _read_record(out)
    done = _finished(out, names)
    text = "".join(json.dumps(records[name], sort_keys=True) + "\n" for name in sorted(done))
    write_text_atomic(out / SHARDS_RECORD, text)
