"""`augkit augment --output-format webdataset`: shards decided before the run, byte-identical
for any worker count and either engine, resumable after kill -9, readable by webdataset alone."""

from __future__ import annotations

import errno
import json
import signal
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import augkit
from augkit.input.decoding import decode_image
from imagefiles import bad_images, class_folders, tree_bytes, write_tree
from interrupting import run_interrupted, session_processes
from clirun import read_csv, run

RECIPE = """\
transforms:
  - HorizontalFlip: {p: 0.5}
  - RandomResizedCrop: {size: [32, 32], scale: [0.5, 1.0]}
  - RGBShift: {p: 0.5}
"""
SHARDS = ("--output-format", "webdataset")


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture
def dataset(tmp_path) -> Path:
    return class_folders(tmp_path / "data")  # 3 classes of 4 JPEGs


def members(shard: Path) -> list[str]:
    with tarfile.open(shard) as tar:
        return tar.getnames()


def shards_of(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))}


def test_the_plans_outputs_fill_shards_of_n_samples_in_order(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    result = run("augment", recipe, dataset, out, "-k", 2, *SHARDS, "--shard-size", 5, "-w", 2)
    assert "12 inputs -> 24 outputs" in result.output
    assert list(shards_of(out)) == [f"shard-{i:06d}.tar" for i in range(5)]  # 5, 5, 5, 5, 4
    first = members(out / "shard-000000.tar")
    assert first[:6] == ["cat/cat_0_00.jpg", "cat/cat_0_00.cls", "cat/cat_0_00.json",
                         "cat/cat_0_01.jpg", "cat/cat_0_01.cls", "cat/cat_0_01.json"]
    assert len(first) == 15 and len(members(out / "shard-000004.tar")) == 12
    manifest = read_csv(out / "manifest.csv")
    assert manifest[0] == {"path": "cat/cat_0_00.jpg", "source": "cat/cat_0.jpg", "label": "cat", "copy": "0",
                           "shard": "shard-000000.tar"}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["shards"], summary["outputs_per_class"]) == (5, {"cat": 8, "dog": 8, "owl": 8})


def test_each_sample_holds_its_image_class_index_and_where_it_came_from(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, *SHARDS, "--seed", 3, "-w", 0)
    with tarfile.open(out / "shard-000000.tar") as tar:
        cls = tar.extractfile("dog/dog_1_00.cls").read()
        meta = json.loads(tar.extractfile("dog/dog_1_00.json").read())
        image = tar.extractfile("dog/dog_1_00.jpg").read()
    assert cls == b"1"
    assert meta == {"source": "dog/dog_1.jpg", "label": "dog", "copy": 0, "seed": augkit_seed(3, "dog/dog_1.jpg", 0)}
    files = tmp_path / "files"
    run("augment", recipe, dataset, files, "--seed", 3, "-w", 0)
    assert image == (files / "dog" / "dog_1_00.jpg").read_bytes()  # the bytes the file would hold


def augkit_seed(seed: int, key: str, copy: int) -> int:
    from augkit.core.seeds import derive_seed

    return derive_seed(seed, key, copy)


@pytest.mark.parametrize("workers", [1, 2])
def test_shards_are_byte_identical_for_any_worker_count(recipe, dataset, tmp_path, workers):
    run("augment", recipe, dataset, tmp_path / "zero", "-k", 3, *SHARDS, "--shard-size", 7, "-w", 0)
    run("augment", recipe, dataset, tmp_path / "other", "-k", 3, *SHARDS, "--shard-size", 7, "-w", workers)
    assert tree_bytes(tmp_path / "zero") == tree_bytes(tmp_path / "other")


def test_shards_from_a_folder_flow_as_the_folder_of_the_same_outputs_does(recipe, dataset, tmp_path):
    """folder -> augment to shards; folder -> augment to files: flow gives the same samples from each."""
    run("augment", recipe, dataset, tmp_path / "shards", "-k", 2, *SHARDS, "--shard-size", 5, "-w", 2)
    run("augment", recipe, dataset, tmp_path / "files", "-k", 2, "-w", 2)
    from_shards = augkit.flow(tmp_path / "shards", recipe, batch_size=5, epochs=2, workers=2, seed=4)
    from_files = augkit.flow(tmp_path / "files", recipe, batch_size=5, epochs=2, workers=0, seed=4)
    assert from_shards.classes == from_files.classes == ["cat", "dog", "owl"]
    assert [s.key for s in from_shards.dataset.samples] == [s.key for s in from_files.dataset.samples]
    batches = list(zip(from_shards, from_files))
    assert len(batches) == 10
    for (x, y), (x_files, y_files) in batches:
        assert np.array_equal(x, x_files) and np.array_equal(y, y_files)


def test_webdataset_alone_reads_the_same_pixels_and_labels(recipe, dataset, tmp_path):
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-k", 2, *SHARDS, "--shard-size", 10, "--format", "png", "-w", 2)
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    read = {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb")}
    manifest = read_csv(out / "manifest.csv")
    assert sorted(read) == sorted(row["path"].removesuffix(".png") for row in manifest)
    mine = augkit.discover(out)
    for sample in mine.samples:
        got = read[sample.key.removesuffix(".png")]
        assert np.array_equal(np.rint(got["png"] * 255).astype(np.uint8), decode_image(sample.path))
        assert got["cls"] == mine.class_to_index[sample.label]
        assert got["json"]["label"] == sample.label


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_run_resumed_gives_the_same_shards_and_leaves_no_temporary(recipe, tmp_path, how):
    data = class_folders(tmp_path / "big", classes=("a", "b"), per_class=20, size=(120, 160))
    reference = tmp_path / "reference"
    run("augment", recipe, data, reference, "-k", 2, *SHARDS, "--shard-size", 8, "-w", 2)
    out = tmp_path / "out"

    status, stderr, session = run_interrupted(tmp_path, "augkit.stages.augment_shards.ShardTask", "shard-000003.tar",
                                              how, "augment", recipe, data, out, "-k", 2, *SHARDS, "--shard-size", 8,
                                              "-w", 2, "--quiet")

    assert status == (130 if how == signal.SIGINT else -signal.SIGKILL), stderr
    deadline = time.monotonic() + 30
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_processes(session) == [], "worker processes were left behind"
    assert "shard-000003.tar" not in tree_bytes(out) and "manifest.csv" not in tree_bytes(out)
    (out / ".shard-000004.tar.augkit-tmp-999-0").write_bytes(b"half a shard")  # as a kill mid-write leaves

    result = run("augment", recipe, data, out, "-k", 2, *SHARDS, "--shard-size", 8, "-w", 2)

    assert tree_bytes(out) == tree_bytes(reference)
    assert not list(out.glob(".*tmp*"))
    assert "already there" in result.output


def test_a_rerun_of_a_finished_run_writes_nothing_and_changes_no_byte(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 2)
    before = tree_bytes(out)
    result = run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 2)
    assert "(0 written, 12 already there" in result.output
    assert tree_bytes(out) == before


def test_a_shard_changed_since_it_was_written_is_never_replaced_and_the_run_refused(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 0)
    shard = out / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:1000])  # someone's, now: as for an output file changed since
    result = run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 0, expect=2)
    assert "shard-000001.tar: augkit would write an output there but did not write this file" in result.output
    assert len(shard.read_bytes()) == 1000


@pytest.mark.parametrize("change, words", [
    (lambda data: write_tree(data, {"cat/new.jpg": (data / "cat" / "cat_0.jpg").read_bytes()}), "1 source image added"),
    (lambda data: (data / "dog" / "dog_0.jpg").unlink(), "1 source image removed"),
])
def test_a_change_to_src_is_another_run_refused_unless_overwrite(recipe, dataset, tmp_path, change, words):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 0)
    change(dataset)
    result = run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 0, expect=2)
    assert words in result.output and "--overwrite" in result.output
    run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 0, "--overwrite")
    fresh = tmp_path / "fresh"
    run("augment", recipe, dataset, fresh, *SHARDS, "--shard-size", 5, "-w", 0)
    assert shards_of(out) == shards_of(fresh)


@pytest.mark.parametrize("second", [("--shard-size", 4), ("-k", 2), ()])
def test_other_shard_settings_or_files_into_an_out_of_shards_are_refused(recipe, dataset, tmp_path, second):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 0)
    options = (*SHARDS, *second) if second else ()  # (): files into an OUT of shards
    result = run("augment", recipe, dataset, out, *options, "-w", 0, expect=2)
    assert "other settings" in result.output


def test_shards_into_an_out_of_files_replace_them_only_with_overwrite(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0)
    assert "output_format" in run("augment", recipe, dataset, out, *SHARDS, "-w", 0, expect=2).output
    run("augment", recipe, dataset, out, *SHARDS, "-w", 0, "--overwrite")
    assert not list(out.rglob("*.jpg")) and len(augkit.discover(out)) == 12


def test_a_size_in_mb_sets_samples_per_shard_from_measured_outputs_the_same_for_any_workers(recipe, dataset,
                                                                                             tmp_path):
    run("augment", recipe, dataset, tmp_path / "a", "-k", 2, *SHARDS, "--shard-size", "0.01MB", "-w", 0)
    run("augment", recipe, dataset, tmp_path / "b", "-k", 2, *SHARDS, "--shard-size", "0.01MB", "-w", 2)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    per_shard = json.loads((tmp_path / "a" / "augkit-run.json").read_text())["shard_samples"]
    sizes = [len(data) for data in shards_of(tmp_path / "a").values()]
    assert 1 < per_shard < 24 and len(sizes) == -(-24 // per_shard)
    assert max(sizes[:-1]) < 2 * 10_000  # about 10 kB of members each (plus tar's 10 kB records)


@pytest.mark.parametrize("args, words", [(("--shard-size", 5), "--shard-size needs --output-format webdataset"),
                                         ((*SHARDS, "--shard-size", "five"), "give samples per shard"),
                                         ((*SHARDS, "--shard-size", 0), "give samples per shard")])
def test_bad_shard_options_are_usage_errors(recipe, dataset, tmp_path, args, words):
    assert words in run("augment", recipe, dataset, tmp_path / "out", *args, expect=2).output
    assert not (tmp_path / "out").exists()


def test_bad_inputs_are_failure_rows_and_their_shard_holds_the_rest(recipe, tmp_path):
    good = class_folders(tmp_path / "data", per_class=2)
    write_tree(good, {f"cat/{name}": data for name, (data, _) in bad_images().items()})
    out = tmp_path / "out"
    run("augment", recipe, good, out, *SHARDS, "--shard-size", 4, "-w", 2)
    failures = read_csv(out / "failures.csv")
    assert {row["source"] for row in failures} == {f"cat/{name}" for name in bad_images()}
    assert len(augkit.discover(out)) == 6
    rerun = run("augment", recipe, good, out, *SHARDS, "--shard-size", 4, "-w", 2)
    assert "(0 written, 6 already there" in rerun.output and read_csv(out / "failures.csv") == failures


def test_a_shard_that_cannot_be_written_is_write_error_rows(recipe, dataset, tmp_path, monkeypatch):
    import augkit.stages.augment_shards as shards

    def full_disk(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(shards, "write_atomic", full_disk)
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 5, "-w", 0, expect=1)
    failures = read_csv(out / "failures.csv")
    assert len(failures) == 12 and {row["reason"] for row in failures} == {"write_error"}
    assert "No space left on device" in failures[0]["message"]


def test_shards_augment_to_files_as_the_folder_of_the_same_outputs_does(recipe, dataset, tmp_path):
    run("augment", recipe, dataset, tmp_path / "shards", *SHARDS, "--shard-size", 5, "-w", 0)
    run("augment", recipe, dataset, tmp_path / "files", "-w", 0)
    run("augment", recipe, tmp_path / "shards", tmp_path / "again_from_shards", "-k", 2, "-w", 2)
    run("augment", recipe, tmp_path / "files", tmp_path / "again_from_files", "-k", 2, "-w", 2)
    images = lambda out: {k: v for k, v in tree_bytes(out).items() if k.endswith(".jpg")}  # noqa: E731
    assert images(tmp_path / "again_from_shards") == images(tmp_path / "again_from_files")
    assert len(images(tmp_path / "again_from_shards")) == 24


def test_a_bad_member_of_a_source_shard_is_a_failure_row(recipe, dataset, tmp_path):
    out = tmp_path / "shards"
    run("augment", recipe, dataset, out, *SHARDS, "--shard-size", 100, "-w", 0)
    shard = out / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    at = data.index(b"dog/dog_2_00.cls")
    data[at + 512:at + 513] = b"x"  # the class index becomes "x"
    shard.write_bytes(bytes(data))
    again = tmp_path / "again"
    run("augment", recipe, out, again, "-w", 0)
    failures = read_csv(again / "failures.csv")
    assert [(row["source"], row["reason"]) for row in failures] == [("dog/dog_2_00.jpg", "corrupt")]
    assert "not a class index" in failures[0]["message"]


def test_on_ray_the_shards_are_byte_identical_to_a_local_run(recipe, dataset, tmp_path):
    pytest.importorskip("ray")
    run("augment", recipe, dataset, tmp_path / "local", "-k", 2, *SHARDS, "--shard-size", 5, "-w", 2)
    run("augment", recipe, dataset, tmp_path / "ray", "-k", 2, *SHARDS, "--shard-size", 5, "-w", 2,
        "--engine", "ray")
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")
