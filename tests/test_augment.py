"""`augkit augment`: multiply a dataset on disk, reproducibly, resumably, safely."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from augkit.input.decoding import decode_image
from augkit.recipes import load_recipe
from augkit.core.seeds import derive_seed
from interrupting import run_interrupted, session_processes
from imagefiles import bad_images, class_folders, encoded, good_images, tree_bytes, write_tree
from conftest import make_structured_rgb
from clirun import read_csv, run

RECIPE = """\
transforms:
  - HorizontalFlip: {p: 0.5}
  - RandomResizedCrop: {size: [32, 32], scale: [0.5, 1.0]}
  - RGBShift: {p: 0.5}
  - CoarseDropout: {p: 0.3}
"""


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture
def dataset(tmp_path) -> Path:
    return class_folders(tmp_path / "data")


def test_writes_k_copies_mirroring_the_class_layout(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    result = run("augment", recipe, dataset, out, "--copies", 3, "--workers", 2)
    assert "12 inputs -> 36 outputs" in result.output
    assert sorted(p.name for p in (out / "cat").iterdir()) == [f"cat_{i}_{k:02d}.jpg" for i in range(4) for k in range(3)]
    manifest = read_csv(out / "manifest.csv")
    assert len(manifest) == 36
    assert manifest[0] == {"path": "cat/cat_0_00.jpg", "source": "cat/cat_0.jpg", "label": "cat", "copy": "0"}
    assert all((out / row["path"]).is_file() for row in manifest)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs_per_class"] == {"cat": 12, "dog": 12, "owl": 12}
    assert read_csv(out / "failures.csv") == []


@pytest.mark.parametrize("workers", [1, 3])
def test_outputs_are_byte_identical_for_any_worker_count(recipe, dataset, tmp_path, workers):
    run("augment", recipe, dataset, tmp_path / "two", "-k", 2, "-w", 2)
    run("augment", recipe, dataset, tmp_path / "other", "-k", 2, "-w", workers)
    assert tree_bytes(tmp_path / "two") == tree_bytes(tmp_path / "other")


def test_same_seed_same_output_other_seed_other_output(recipe, dataset, tmp_path):
    run("augment", recipe, dataset, tmp_path / "a", "--seed", 1, "-w", 0)
    run("augment", recipe, dataset, tmp_path / "b", "--seed", 1, "-w", 0)
    run("augment", recipe, dataset, tmp_path / "c", "--seed", 2, "-w", 0)
    a, b, c = (tree_bytes(tmp_path / n) for n in "abc")
    assert a == b
    images = [k for k in a if k.endswith(".jpg")]
    assert sum(a[k] != c[k] for k in images) >= len(images) // 2


def test_copies_of_one_image_differ(recipe, dataset, tmp_path):
    run("augment", recipe, dataset, tmp_path / "out", "-k", 4, "-w", 0)
    copies = {(tmp_path / "out" / "cat" / f"cat_0_{k:02d}.jpg").read_bytes() for k in range(4)}
    assert len(copies) == 4


def test_copy_k_is_the_recipe_seeded_with_the_run_seed_key_and_k(tmp_path):
    # The documented formula, with a recipe whose deterministic head (the resize) augkit runs
    # once per input rather than once per copy: the outputs do not show it.
    dataset = class_folders(tmp_path / "data", per_class=2)
    recipe = tmp_path / "head.yaml"
    recipe.write_text("transforms:\n  - SmallestMaxSize: {max_size: 40}\n  - RandomCrop: {height: 32, width: 32}\n"
                      "  - HorizontalFlip: {p: 0.5}\n  - RGBShift: {p: 0.5}\n")
    run("augment", recipe, dataset, tmp_path / "out", "-k", 3, "--seed", 9, "--format", "png", "-w", 0)

    loaded = load_recipe(recipe)
    for row in read_csv(tmp_path / "out" / "manifest.csv"):
        image = decode_image(dataset / row["source"])
        expected = loaded(image, seed=derive_seed(9, row["source"], int(row["copy"])))
        assert np.array_equal(decode_image(tmp_path / "out" / row["path"]), expected), row["path"]


def test_a_mix_of_good_and_bad_images_finishes_and_reports_every_bad_one(recipe, tmp_path):
    good = good_images()
    bad = bad_images()
    src = write_tree(tmp_path / "src", {**{f"ok/{n}": d for n, d in good.items()},
                                       **{f"broken/{n}": d for n, (d, _) in bad.items()}})
    out = tmp_path / "out"
    result = run("augment", recipe, src, out, "-k", 2, "-w", 2)
    assert f"{len(bad)} inputs failed" in result.output
    written = {row["source"] for row in read_csv(out / "manifest.csv")}
    assert written == {f"ok/{n}" for n in good}
    failures = {row["source"]: row for row in read_csv(out / "failures.csv")}
    assert {s: r["reason"] for s, r in failures.items()} == {f"broken/{n}": reason for n, (_, reason) in bad.items()}
    assert all(f"broken/{n}" in failures[f"broken/{n}"]["message"] for n in bad)
    assert json.loads((out / "summary.json").read_text())["failures"] == {r: 1 for _, r in bad.values()}


def test_strict_exits_1_when_an_input_failed(recipe, tmp_path):
    src = write_tree(tmp_path / "src", {"a/fine.png": encoded(make_structured_rgb(40, 40), "PNG"), "a/empty.jpg": b""})
    run("augment", recipe, src, tmp_path / "out", "--strict", "-w", 0, expect=1)
    run("augment", recipe, src, tmp_path / "out2", "-w", 0, expect=0)


def test_json_summary(recipe, dataset, tmp_path):
    result = run("augment", recipe, dataset, tmp_path / "out", "-k", 2, "--json", "-w", 0)
    summary = json.loads(result.output)
    assert summary["inputs"] == 12 and summary["outputs"] == 24 and summary["written"] == 24


def test_include_original_and_png_output(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-k", 1, "--include-original", "--format", "png", "-w", 0)
    assert sorted(p.name for p in (out / "dog").iterdir())[:2] == ["dog_0_00.png", "dog_0_orig.png"]
    originals = [r for r in read_csv(out / "manifest.csv") if r["copy"] == ""]
    assert len(originals) == 12


def test_flat_folder_and_colliding_stems(recipe, tmp_path):
    image = make_structured_rgb(40, 50)
    src = write_tree(tmp_path / "flat", {"a.jpg": encoded(image, "JPEG"), "a.png": encoded(image, "PNG"), "b.jpg": encoded(image, "JPEG")})
    out = tmp_path / "out"
    run("augment", recipe, src, out, "-w", 0)
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".jpg")
    assert len(names) == 3 and "b_00.jpg" in names
    assert all(n.startswith("a-") for n in names if n != "b_00.jpg")


def test_a_split_manifest_as_source(recipe, dataset, tmp_path):
    manifest = dataset / "split.csv"
    manifest.write_text("path,label,split\ncat/cat_0.jpg,cat,train\ncat/cat_1.jpg,cat,val\ndog/dog_0.jpg,dog,train\n")
    out = tmp_path / "out"
    run("augment", recipe, manifest, tmp_path / "out", "--split", "train", "-w", 0)
    assert {r["source"] for r in read_csv(out / "manifest.csv")} == {"cat/cat_0.jpg", "dog/dog_0.jpg"}


# --- safety -------------------------------------------------------------------------------


def test_out_inside_src_or_equal_is_refused_and_src_untouched(recipe, dataset):
    before = tree_bytes(dataset)
    for out in (dataset, dataset / "augmented", dataset / "cat"):
        result = run("augment", recipe, dataset, out, expect=2)
        assert "inside SRC" in result.output
    assert tree_bytes(dataset) == before


def test_src_inside_out_is_refused(recipe, dataset):
    result = run("augment", recipe, dataset, dataset.parent, expect=2)
    assert "SRC" in result.output and "inside OUT" in result.output


def test_a_different_seed_or_recipe_into_an_existing_out_is_refused_unless_overwrite(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-k", 2, "-w", 0)
    result = run("augment", recipe, dataset, out, "-k", 2, "--seed", 9, "-w", 0, expect=2)
    assert "seed 0 -> 9" in result.output and "--overwrite" in result.output
    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.replace("p: 0.3", "p: 0.4"))
    assert "the recipe" in run("augment", other, dataset, out, "-k", 2, "-w", 0, expect=2).output
    run("augment", recipe, dataset, out, "-k", 1, "--seed", 9, "--overwrite", "-w", 0)
    assert len(list((out / "cat").iterdir())) == 4  # the earlier run's second copies are gone
    fresh = tmp_path / "fresh"
    run("augment", recipe, dataset, fresh, "-k", 1, "--seed", 9, "-w", 0)
    assert tree_bytes(out) == tree_bytes(fresh)


def test_an_out_seeded_the_old_way_is_not_resumed_into(recipe, dataset, tmp_path):
    # Runs before "one-stream" seeding recorded none; their copies would not match new ones.
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-k", 2, "-w", 0)
    settings = json.loads((out / "augkit-run.json").read_text())
    del settings["seeding"]
    (out / "augkit-run.json").write_text(json.dumps(settings))
    (out / "cat" / "cat_0_01.jpg").unlink()  # as if interrupted

    result = run("augment", recipe, dataset, out, "-k", 2, "-w", 0, expect=2)

    assert "seeding per-transform -> 'one-stream'" in result.output and "--overwrite" in result.output
    run("augment", recipe, dataset, out, "-k", 2, "-w", 0, "--overwrite")
    run("augment", recipe, dataset, tmp_path / "fresh", "-k", 2, "-w", 0)
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh")


def test_a_non_empty_folder_not_written_by_augkit_is_refused_even_with_overwrite(recipe, dataset, tmp_path):
    out = tmp_path / "mine"
    files = {"notes.txt": b"keep me", ".notes.tmp-draft": b"a draft", "cat/cat_0_00.jpg": b"my own picture"}
    write_tree(out, files)
    for extra in ([], ["--overwrite"]):
        result = run("augment", recipe, dataset, out, "-w", 0, *extra, expect=2)
        assert "holds files augkit did not write" in result.output and "choose another OUT" in result.output
    assert tree_bytes(out) == files  # nothing deleted, adopted or replaced


def test_rerun_of_a_finished_run_writes_nothing(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0)
    before = tree_bytes(out)
    assert "0 written, 12 already there" in run("augment", recipe, dataset, out, "-w", 0).output
    assert tree_bytes(out) == before


# --- interruption ---------------------------------------------------------------------------

@pytest.fixture
def bigger_dataset(tmp_path) -> Path:
    return class_folders(tmp_path / "big", classes=("a", "b"), per_class=40, size=(120, 160))


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_run_resumed_equals_an_uninterrupted_one(recipe, bigger_dataset, tmp_path, how):
    reference = tmp_path / "reference"
    run("augment", recipe, bigger_dataset, reference, "-k", 3, "-w", 2)
    out = tmp_path / "out"

    status, stderr, session = run_interrupted(tmp_path, "augkit.stages.augment.AugmentTask", "b/b_9.jpg", how, "augment",
                                              recipe, bigger_dataset, out, "-k", 3, "-w", 2, "--quiet")

    if how == signal.SIGINT:
        assert status == 130
        assert "rerun the same command" in stderr and "Traceback" not in stderr
    else:
        assert status == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.05)  # orphaned workers notice their parent is gone within a second
    assert session_processes(session) == [], "worker processes were left behind"
    partial = tree_bytes(out)
    assert "b/b_9_00.jpg" not in partial and "augkit-run.json" in partial
    assert "manifest.csv" not in partial  # reports are written last: an unfinished run has none

    run("augment", recipe, bigger_dataset, out, "-k", 3, "-w", 2)

    assert tree_bytes(out) == tree_bytes(reference)
    assert not list(out.rglob(".*tmp*"))


def test_a_manifest_in_the_working_folder_may_write_next_to_itself(recipe, dataset, tmp_path):
    manifest = tmp_path / "split.csv"  # beside data/ and out/, as `augkit split -o split.csv` leaves it
    manifest.write_text("path,label,split\ndata/cat/cat_0.jpg,cat,train\ndata/dog/dog_0.jpg,dog,train\n")
    run("augment", recipe, manifest, tmp_path / "out", "--split", "train", "-w", 0)
    assert len(read_csv(tmp_path / "out" / "manifest.csv")) == 2
    assert "inside SRC" in run("augment", recipe, manifest, dataset / "cat" / "out", "--split", "train", "-w", 0,
                               expect=2).output
    assert "inside SRC" in run("augment", recipe, manifest, dataset / "out", "--split", "train", "-w", 0,
                               expect=2).output  # the folder of both classes is the dataset's


def test_out_inside_the_dataset_folder_of_its_split_manifest_is_refused(recipe, dataset, tmp_path):
    manifest = dataset / "split.csv"  # where `augkit split data` writes it
    manifest.write_text("path,label,split\ncat/cat_0.jpg,cat,train\ndog/dog_0.jpg,dog,train\ncat/cat_1.jpg,cat,val\n")
    result = run("augment", recipe, manifest, dataset / "aug", "--split", "train", "-w", 0, expect=2)
    assert result.output == (f"Error: {dataset / 'aug'}: OUT is inside SRC ({dataset}); choose an output folder "
                             f"outside the source\n")
    assert not (dataset / "aug").exists()


# --- what augkit may touch: only OUT, and in OUT only what it wrote ---------------------------


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below root (links not followed) with its content and mtime."""
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


HOSTILE_LABELS = ["/ABS", "../../escaped", "..", ".", "a/../../escaped", "cat/../..", "a\\..\\..\\x", "ok/../../up"]


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_a_manifest_label_never_makes_augkit_write_outside_out(recipe, tmp_path, label):
    work = tmp_path / "work"
    class_folders(work / "data", classes=("cat",), per_class=2)
    label = label.replace("/ABS", str(work / "data" / "cat"))  # the source images' own folder
    manifest = work / "lists" / "m.csv"
    manifest.parent.mkdir()
    rows = "".join(f'../data/cat/cat_{i}.jpg,"{label}"\n' for i in range(2))
    manifest.write_text("path,label\n" + rows)
    out = work / "deep" / "er" / "out"
    before = snapshot(work)

    for extra in ([], ["--overwrite"]):
        result = run("augment", recipe, manifest, out, "-w", 0, "-k", 2, *extra, expect=2)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1

    assert snapshot(work) == before
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_output_names_stay_inside_out_even_from_the_library(label):
    from augkit.stages.augment import AugmentOptions, plan_jobs
    from augkit.input.discovery import Sample
    from augkit.core.errors import UsageError

    with pytest.raises(UsageError, match="would not be a plain path inside OUT"):
        plan_jobs([Sample("/x/y.jpg", "../y.jpg", label)], AugmentOptions(copies=2))


def test_a_class_folder_in_out_that_links_outside_is_refused(recipe, dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0)
    for p in (out / "cat").iterdir():
        p.unlink()
    (out / "cat").rmdir()
    (out / "cat").symlink_to(elsewhere, target_is_directory=True)

    assert "outside OUT" in run("augment", recipe, dataset, out, "-w", 0, expect=2).output
    assert list(elsewhere.iterdir()) == []


def test_temporaries_swept_are_only_augkits_own_for_this_runs_outputs(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0)
    (out / "cat" / "cat_0_00.jpg").unlink()  # as if killed while writing it
    ours = out / "cat" / ".cat_0_00.jpg.augkit-tmp-123-0"
    ours.write_bytes(b"half a jpeg")
    lookalikes = {"cat/.notes.tmp-draft": b"a draft", "cat/.cat_0_00.jpg.tmp-123-0": b"old-style name",
                  "cat/.mine.jpg.augkit-tmp-1-1": b"not an output of this run"}
    write_tree(out, lookalikes)

    run("augment", recipe, dataset, out, "-w", 0)

    assert not ours.exists() and (out / "cat" / "cat_0_00.jpg").is_file()
    assert {k: v for k, v in tree_bytes(out).items() if k in lookalikes} == lookalikes


def test_the_same_out_for_another_source_is_refused_unless_overwrite(recipe, tmp_path):
    first = class_folders(tmp_path / "first")
    second = write_tree(tmp_path / "second", {k: encoded(make_structured_rgb(60, 80, 900 + i), "JPEG")
                                              for i, k in enumerate(sorted(tree_bytes(first)))})
    out = tmp_path / "out"
    run("augment", recipe, first, out, "-w", 0)

    result = run("augment", recipe, second, out, "-w", 0, expect=2)

    assert "12 source files changed since" in result.output and "--overwrite" in result.output
    run("augment", recipe, second, out, "-w", 0, "--overwrite")
    run("augment", recipe, second, tmp_path / "fresh", "-w", 0)
    fresh, redone = tree_bytes(tmp_path / "fresh"), tree_bytes(out)
    assert {k: v for k, v in redone.items() if k.endswith(".jpg")} == {k: v for k, v in fresh.items() if k.endswith(".jpg")}


def test_a_source_file_edited_since_the_run_is_refused_unless_overwrite(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0)
    (dataset / "dog" / "dog_1.jpg").write_bytes(encoded(make_structured_rgb(60, 80, 77), "JPEG"))

    result = run("augment", recipe, dataset, out, "-w", 0, expect=2)

    assert "1 source file changed since, e.g. dog/dog_1.jpg" in result.output
    run("augment", recipe, dataset, out, "-w", 0, "--overwrite")
    run("augment", recipe, dataset, tmp_path / "fresh", "-w", 0)
    assert tree_bytes(out) == {**tree_bytes(tmp_path / "fresh"),
                               "augkit-run.json": (out / "augkit-run.json").read_bytes()}


def test_images_added_to_the_source_are_written_on_rerun_and_nothing_else_changes(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0)
    before = tree_bytes(out)
    write_tree(dataset, {"owl/owl_new.jpg": encoded(make_structured_rgb(60, 80, 55), "JPEG")})

    assert "1 written, 12 already there" in run("augment", recipe, dataset, out, "-w", 0).output

    after = tree_bytes(out)
    assert {k: after[k] for k in before if k.endswith(".jpg")} == {k: v for k, v in before.items() if k.endswith(".jpg")}
    assert "owl/owl_new_00.jpg" in after


def test_a_fixed_input_that_had_failed_is_retried_without_overwrite(recipe, dataset, tmp_path):
    good = (dataset / "cat" / "cat_2.jpg").read_bytes()
    (dataset / "cat" / "cat_2.jpg").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    assert "1 input failed" in run("augment", recipe, dataset, out, "-w", 0).output
    (dataset / "cat" / "cat_2.jpg").write_bytes(good)

    result = run("augment", recipe, dataset, out, "-w", 0)

    assert "1 written, 11 already there" in result.output
    assert read_csv(out / "failures.csv") == []


def test_a_recipe_that_does_not_return_uint8_images_is_refused_before_anything_is_written(dataset, tmp_path):
    recipe = tmp_path / "normalized.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n  - Normalize: {}\n")
    out = tmp_path / "out"
    result = run("augment", recipe, dataset, out, "-w", 0, expect=2)
    assert "Normalize" in result.output and "8-bit" in result.output
    assert not out.exists()


def test_a_run_where_every_input_failed_exits_1_after_writing_its_reports(recipe, tmp_path):
    data = write_tree(tmp_path / "bad", {f"cat/{name}": content for name, (content, _) in bad_images().items()})
    out = tmp_path / "out"
    result = run("augment", recipe, data, out, "-w", 0, expect=1)
    assert "none of the 4 inputs gave an output" in result.output and "failures.csv" in result.output
    assert len(read_csv(out / "failures.csv")) == 4


def test_any_file_name_round_trips_through_the_reports_and_a_split_manifest(recipe, tmp_path):
    image = encoded(make_structured_rgb(60, 80, 5), "JPEG")
    names = ["carriage\rreturn", "line\nfeed", os.fsdecode(b"not_utf8_\xff\xfe"), "=1+2", "comma, here"]
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    for i, name in enumerate(names):
        with open(os.fsencode(data / "cat" / f"{name}.jpg"), "wb") as f:
            f.write(image[: len(image) // 2] if i == 0 else image)  # the first one is a failure row
    out = tmp_path / "out"

    run("augment", recipe, data, out, "-w", 0)

    with open(out / "manifest.csv", newline="", encoding="utf-8", errors="surrogateescape") as f:
        sources = sorted(r["source"] for r in csv.DictReader(f))
    with open(out / "failures.csv", newline="", encoding="utf-8", errors="surrogateescape") as f:
        failed = [r["source"] for r in csv.DictReader(f)]
    assert sources == sorted(f"cat/{n}.jpg" for n in names[1:]) and failed == [f"cat/{names[0]}.jpg"]
    for row in sources:
        assert os.path.exists(os.fsencode(out / row.replace(".jpg", "_00.jpg")))

    run("split", data, "--val", 0, "--test", 0)  # data/split.csv: the same keys, so the same seeds
    run("augment", recipe, data / "split.csv", tmp_path / "again", "--split", "train", "-w", 0)
    assert tree_bytes(tmp_path / "again" / "cat") == tree_bytes(out / "cat")


def test_more_copies_later_adds_only_the_new_ones_and_equals_a_run_with_them_all(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-k", 2, "-w", 0)

    assert "12 written, 24 already there" in run("augment", recipe, dataset, out, "-k", 3, "-w", 0).output
    assert "12 written" in run("augment", recipe, dataset, out, "-k", 3, "--include-original", "-w", 0).output

    run("augment", recipe, dataset, tmp_path / "fresh", "-k", 3, "--include-original", "-w", 0)
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh")


@pytest.mark.parametrize("change", [["-k", 1], ["--format", "png"]])
def test_fewer_copies_or_another_format_is_refused_unless_overwrite(recipe, dataset, tmp_path, change):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-k", 2, "-w", 0)
    assert "this run would not make (copies 2 -> 1" in run("augment", recipe, dataset, out, *change, "-w", 0,
                                                            expect=2).output
    run("augment", recipe, dataset, out, *change, "-w", 0, "--overwrite")
    run("augment", recipe, dataset, tmp_path / "fresh", *change, "-w", 0)
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh")


@pytest.mark.parametrize("copies", ["99999999999999999999", "100000000"])
def test_absurd_copies_are_a_usage_error_before_anything_is_planned(recipe, dataset, tmp_path, copies):
    result = run("augment", recipe, dataset, tmp_path / "out", "-k", copies, "-w", 0, expect=2)
    assert "one run plans at most 10,000,000" in result.output and not (tmp_path / "out").exists()


def test_overwrite_through_a_symlinked_class_folder_removes_nothing_outside_out(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0)
    elsewhere = tmp_path / "elsewhere"
    (out / "cat").rename(elsewhere)  # the user moved the class folder away and linked it back
    (out / "cat").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "my_notes.txt").write_text("mine")
    before, reports = tree_bytes(elsewhere), tree_bytes(out)

    result = run("augment", recipe, dataset, out, "-w", 0, "--seed", 5, "--overwrite", expect=2)

    assert "outside OUT" in result.output
    assert tree_bytes(elsewhere) == before and tree_bytes(out) == reports  # nothing removed, here or there


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--overwrite", "--seed", 1]])
def test_a_users_file_at_an_output_name_is_never_counted_replaced_or_removed(recipe, dataset, tmp_path, extra):
    out = tmp_path / "out"
    run("augment", recipe, dataset, out, "-w", 0, "-k", 2)
    (out / "cat" / "cat_0_02.jpg").write_text("my precious")  # a name augkit never wrote...
    (out / "dog" / "dog_1_00.jpg").write_text("edited")  # ...and one of its outputs, changed since
    before = tree_bytes(out)

    result = run("augment", recipe, dataset, out, "-w", 0, "-k", 3, *extra, expect=2)

    assert "did not write this file, or it changed since (2 such files)" in result.output
    assert tree_bytes(out) == before  # refused before anything was removed or written


def test_a_second_run_into_an_out_in_use_is_refused(recipe, dataset, tmp_path):
    from augkit.core.files import folder_lock

    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out, "OUT"):  # as a run in another process holds it
        result = run("augment", recipe, dataset, out, "-w", 0, expect=2)
    assert "another augkit run is writing to this OUT" in result.output
    assert {p.name for p in out.iterdir()} == {".augkit-lock"}
    run("augment", recipe, dataset, out, "-w", 0)  # once it has ended, the OUT is free


def test_a_finished_out_is_the_same_bytes_for_any_worker_count_and_after_a_resume(recipe, dataset, tmp_path):
    run("augment", recipe, dataset, tmp_path / "a", "-k", 2, "-w", 2)
    run("augment", recipe, dataset, tmp_path / "b", "-k", 1, "-w", 0)
    run("augment", recipe, dataset, tmp_path / "b", "-k", 2, "-w", 1)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")


def test_a_manifests_labels_name_the_class_folders_of_out(recipe, tmp_path):
    images = write_tree(tmp_path / "flat", {f"imgs/{n}.jpg": encoded(make_structured_rgb(60, 80, i), "JPEG")
                                            for i, n in enumerate(("a1", "a2", "b1"))})
    (images / "labels.csv").write_text("path,label\nimgs/a1.jpg,ants\nimgs/a2.jpg,ants\nimgs/b1.jpg,bees\n")
    out = tmp_path / "out"
    run("augment", recipe, images / "labels.csv", out, "-w", 0)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "ants/a1_00.jpg", "ants/a2_00.jpg", "bees/b1_00.jpg"]


def test_an_out_holding_only_what_an_os_drops_in_folders_counts_as_empty(recipe, dataset, tmp_path):
    out = tmp_path / "out"
    write_tree(out, {".DS_Store": b"\0\0\0\1Bud1", "Thumbs.db": b"x"})
    run("augment", recipe, dataset, out, "-w", 0)
    assert (out / ".DS_Store").read_bytes() == b"\0\0\0\1Bud1"
