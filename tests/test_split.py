"""`augkit split`: stratified, exact, deterministic train/val/test manifests; files never moved."""

from __future__ import annotations

import csv
import os
import random
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from augkit.input.discovery import Sample, discover
from augkit.core.errors import UsageError
from augkit.stages.split import SPLITS, quotas, split_samples
from conftest import make_structured_rgb
from imagefiles import encoded, tree_bytes, write_tree
from clirun import run


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def counts_by_class(rows) -> dict[str, dict[str, int]]:
    out: dict[str, Counter] = {}
    for r in rows:
        out.setdefault(r["label"], Counter())[r["split"]] += 1
    return {label: {s: c[s] for s in SPLITS} for label, c in out.items()}


def fake_samples(sizes: dict[str, int]) -> list[Sample]:
    """Samples whose files do not exist (splitting needs only their keys and labels)."""
    return [Sample(f"/nonexistent/{label}/{i:04d}.jpg", f"{label}/{i:04d}.jpg", label)
            for label, n in sizes.items() for i in range(n)]


@pytest.fixture
def uneven(tmp_path) -> Path:
    """Classes of 10, 7 and 3 distinct images."""
    files = {}
    for c, (name, n) in enumerate((("ant", 10), ("bee", 7), ("fly", 3))):
        for i in range(n):
            files[f"{name}/{name}_{i}.png"] = encoded(make_structured_rgb(8, 8, seed=100 * c + i), "PNG")
    return write_tree(tmp_path / "data", files)


# --- the rounding rule --------------------------------------------------------------------


FRACTIONS = {"train": Fraction(7, 10), "val": Fraction(2, 10), "test": Fraction(1, 10)}


@pytest.mark.parametrize("n, expected", [
    (10, (7, 2, 1)),
    (7, (5, 1, 1)),   # 4.9 / 1.4 / 0.7: floors 4/1/0, two left go to 0.9 (train) and 0.7 (test)
    (3, (2, 1, 0)),   # 2.1 / 0.6 / 0.3
    (1, (1, 0, 0)),
    (0, (0, 0, 0)),
])
def test_largest_remainder_counts(n, expected):
    assert tuple(quotas(n, FRACTIONS).values()) == expected


def test_ties_go_to_train_then_val_then_test():
    halves = {"train": Fraction(1, 2), "val": Fraction(1, 2), "test": Fraction(0)}
    assert quotas(3, halves) == {"train": 2, "val": 1, "test": 0}
    tenths = {"train": Fraction(8, 10), "val": Fraction(1, 10), "test": Fraction(1, 10)}
    assert quotas(5, tenths) == {"train": 4, "val": 1, "test": 0}


def test_counts_always_add_up_and_are_within_one_of_the_exact_share():
    rng = random.Random(0)
    for _ in range(500):
        val, test = Fraction(rng.randint(0, 50), 100), Fraction(rng.randint(0, 50), 100)
        fractions = {"train": 1 - val - test, "val": val, "test": test}
        n = rng.randint(0, 300)
        counts = quotas(n, fractions)
        assert sum(counts.values()) == n
        assert all(abs(counts[s] - n * fractions[s]) < 1 for s in SPLITS)


def test_fractions_are_the_decimals_written_not_their_binary_floats():
    # 0.7 = 1 - 0.2 - 0.1 in floats is 0.7000000000000001 and 30 * 0.1 is 3.0000000000000004;
    # exact decimals give 21 / 6 / 3 every time.
    result = split_samples(fake_samples({"a": 30}), val=0.2, test=0.1)
    assert result.counts == {"a": {"train": 21, "val": 6, "test": 3}}


# --- stratified, exact, deterministic --------------------------------------------------------


def test_each_class_gets_exact_counts(uneven, tmp_path):
    out = tmp_path / "split.csv"
    result = run("split", uneven, "-o", out, "--val", 0.2, "--test", 0.1)
    rows = read_manifest(out)
    assert counts_by_class(rows) == {
        "ant": {"train": 7, "val": 2, "test": 1},
        "bee": {"train": 5, "val": 1, "test": 1},
        "fly": {"train": 2, "val": 1, "test": 0},
    }
    assert "20 images -> 14 train, 4 val, 2 test (stratified by class, seed 0)" in result.output
    assert "warning: too few images to give every class a file in every split: none for fly test" in result.output
    assert len({r["path"] for r in rows}) == 20 and set(r["path"].split("/")[0] for r in rows) == {"data"}


def test_no_stratify_gives_exact_counts_overall(uneven, tmp_path):
    out = tmp_path / "split.csv"
    run("split", uneven, "-o", out, "--val", 0.25, "--test", 0.25, "--no-stratify")
    assert Counter(r["split"] for r in read_manifest(out)) == {"train": 10, "val": 5, "test": 5}


def test_same_seed_same_manifest_other_seed_other_split(uneven, tmp_path):
    run("split", uneven, "-o", tmp_path / "a.csv", "--seed", 3)
    run("split", uneven, "-o", tmp_path / "b.csv", "--seed", 3)
    run("split", uneven, "-o", tmp_path / "c.csv", "--seed", 4)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert read_manifest(tmp_path / "a.csv") != read_manifest(tmp_path / "c.csv")
    assert counts_by_class(read_manifest(tmp_path / "a.csv")) == counts_by_class(read_manifest(tmp_path / "c.csv"))


def test_split_does_not_depend_on_listing_order():
    samples = fake_samples({"a": 40, "b": 25})
    reference = split_samples(samples, seed=9).rows
    for k in range(3):
        shuffled = samples[:]
        random.Random(k).shuffle(shuffled)
        assert split_samples(shuffled, seed=9).rows == reference


def test_adding_an_image_moves_only_a_few_others():
    # Each image's place in the order depends on its own path, so a new image shifts only
    # the images at the boundaries between splits; a shuffle of the sorted list would
    # reassign about half of them.
    for n in (5, 17, 50, 101):
        before = {a.key: a.split for a in split_samples(fake_samples({"a": n}), seed=n).rows}
        after = {a.key: a.split for a in split_samples(fake_samples({"a": n + 1}), seed=n).rows}
        assert sum(before[k] != after[k] for k in before) <= 3


def test_a_file_is_never_in_two_splits_even_under_two_names(tmp_path):
    photo = encoded(make_structured_rgb(30, 30, 1), "PNG")
    data = write_tree(tmp_path / "data", {
        **{f"cat/c{i}.png": encoded(make_structured_rgb(30, 30, 10 + i), "PNG") for i in range(8)},
        "cat/original.png": photo,
        "dog/same bytes.png": photo,  # a copy filed under another class
    })
    os.link(data / "cat" / "c0.png", data / "dog" / "hard link.png")
    for seed in range(10):
        result = split_samples(discover(data).samples, val=0.5, test=0.0, seed=seed)
        where = {a.key: a.split for a in result.rows}
        assert where["cat/original.png"] == where["dog/same bytes.png"]
        assert where["cat/c0.png"] == where["dog/hard link.png"]
        assert result.duplicates == 2 and len(result.rows) == 11
    output = run("split", data, "-o", tmp_path / "s.csv").output
    assert "2 paths are the same file as another (same inode or bytes): 2 groups of identical files" in output


def test_the_printed_counts_are_images_and_add_up_to_the_rows_when_files_repeat(tmp_path):
    # 8 distinct cats, 3 copies of one more, and a dog twice: 13 images in 10 groups.
    photo, dog = (encoded(make_structured_rgb(30, 30, seed), "PNG") for seed in (1, 2))
    data = write_tree(tmp_path / "data", {
        **{f"cat/c{i}.png": encoded(make_structured_rgb(30, 30, 10 + i), "PNG") for i in range(8)},
        **{f"cat/copy{i}.png": photo for i in range(3)},
        "dog/a.png": dog, "dog/b.png": dog,
    })
    result = run("split", data, "-o", tmp_path / "s.csv", "--val", 0.3, "--test", 0.1)
    rows = read_manifest(tmp_path / "s.csv")
    per_class = counts_by_class(rows)
    totals = {s: sum(c[s] for c in per_class.values()) for s in SPLITS}
    lines = result.output.splitlines()
    assert len(rows) == 13
    assert lines[0] == f"13 images -> {totals['train']} train, {totals['val']} val, {totals['test']} test " \
                       "(stratified by class, seed 0)"
    assert lines[1:3] == [f"  {c}: " + " / ".join(str(per_class[c][s]) for s in SPLITS) for c in ("cat", "dog")]
    assert split_samples(discover(data, for_training=False).samples, val=0.3, test=0.1).counts == per_class


def test_the_members_of_one_shard_are_told_apart_by_their_bytes_not_their_shard(tmp_path):
    from shardfiles import tar_of

    photo = encoded(make_structured_rgb(30, 30, 1), "PNG")
    members = [(f"cat/c{i}.png", encoded(make_structured_rgb(30, 30, 10 + i), "PNG")) for i in range(8)]
    shard = tar_of(tmp_path / "s.tar", [*members, ("cat/x.png", photo), ("cat/y.png", photo)])
    result = split_samples(discover(str(shard)).samples, val=0.5, test=0.0)
    where = {a.key: a.split for a in result.rows}
    assert result.duplicates == 1 and where["cat/x.png"] == where["cat/y.png"]
    counts = result.counts[""]  # unlabelled: the shard has no cls members
    assert sum(counts.values()) == 10 and counts["train"] >= 5 and counts["val"] >= 4  # 9 units: 5 and 4


def test_unlabelled_flat_folder(tmp_path):
    data = write_tree(tmp_path / "flat", {f"{i}.png": encoded(make_structured_rgb(9, 9, i), "PNG") for i in range(10)})
    out = tmp_path / "s.csv"
    assert "not stratified" in run("split", data, "-o", out).output
    rows = read_manifest(out)
    assert Counter(r["split"] for r in rows) == {"train": 7, "val": 2, "test": 1} and {r["label"] for r in rows} == {""}


# --- the manifest as SRC of other commands ------------------------------------------------


def test_manifest_paths_are_relative_to_the_csv_and_discovery_reads_them(uneven, tmp_path):
    out = tmp_path / "deep" / "er" / "split.csv"
    run("split", uneven, "-o", out)
    train = discover(out, split="train")
    assert len(train) == 14 and all(Path(s.path).is_file() for s in train.samples)
    assert {s.label for s in train.samples} == {"ant", "bee", "fly"}


def test_by_default_the_manifest_goes_next_to_the_images_with_the_same_keys(uneven):
    assert f"wrote {uneven / 'split.csv'}" in run("split", uneven).output
    assert {s.key for s in discover(uneven / "split.csv", split="all").samples} == {s.key for s in discover(uneven, split="all").samples}


def test_the_manifest_without_split_is_refused_so_val_and_test_cannot_leak(uneven, tmp_path):
    run("split", uneven)
    result = run("stats", uneven / "split.csv", "-o", tmp_path / "s.json", expect=2)
    assert result.stderr == (f"Error: {uneven / 'split.csv'} has splits test, train, val: pass --split train, "
                             "or --split all to use every row\n")
    assert len(discover(uneven / "split.csv", split="all")) == 20


def test_augment_one_split_of_the_manifest(uneven, tmp_path):
    manifest = uneven / "split.csv"
    run("split", uneven)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    run("augment", recipe, manifest, tmp_path / "out", "--split", "val", "-w", 0)
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4


# --- materialize ----------------------------------------------------------------------------


def test_materialize_hard_links_class_folders_and_leaves_the_source_alone(uneven, tmp_path):
    before = tree_bytes(uneven)
    inodes = {p: p.stat().st_ino for p in uneven.rglob("*.png")}
    out = tmp_path / "split"
    result = run("split", uneven, "-o", tmp_path / "s.csv", "--materialize", out)
    assert "20 hard links, 0 copies" in result.output
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    rows = read_manifest(tmp_path / "s.csv")
    assert made == sorted(f"{r['split']}/{r['label']}/{Path(r['path']).name}" for r in rows)
    for rel in made:
        split, label, name = rel.split("/")
        assert (out / rel).stat().st_ino == inodes[uneven / label / name]
    assert tree_bytes(uneven) == before and {p: p.stat().st_ino for p in uneven.rglob("*.png")} == inodes
    assert discover(out / "train").classes == ["ant", "bee", "fly"]


def test_a_materialized_folder_is_refused_as_one_source_and_each_split_is_one(uneven, tmp_path):
    out = tmp_path / "split"
    run("split", uneven, "-o", tmp_path / "s.csv", "--materialize", out)
    with pytest.raises(UsageError, match=r"holds split folders \(test, train, val\), not classes: pass .*split[/\\]train"):
        discover(out)
    assert [discover(out / s).classes for s in SPLITS] == [["ant", "bee", "fly"]] * 2 + [["ant", "bee"]]


def test_splitting_a_folder_of_split_folders_is_refused_and_writes_nothing(uneven, tmp_path):
    run("split", uneven, "-o", tmp_path / "s.csv", "--materialize", tmp_path / "split")
    result = run("split", tmp_path / "split", "-o", tmp_path / "again.csv", expect=2)
    assert result.stderr.count("\n") == 1 and "holds split folders (test, train, val), not classes" in result.stderr
    assert not (tmp_path / "again.csv").exists() and not (tmp_path / "split" / "split.csv").exists()


def test_splitting_a_class_folder_of_a_split_dataset_is_refused_and_writes_nothing(uneven, tmp_path):
    run("split", uneven)  # data/split.csv
    before = tree_bytes(uneven)
    result = run("split", uneven / "ant", expect=2)  # a second manifest would move val images into train
    assert result.stderr.count("\n") == 1
    assert (f"{uneven / 'ant'} is inside {uneven}, which {uneven / 'split.csv'} already splits (test, train, val)"
            in result.stderr)
    assert f"split {uneven} itself" in result.stderr
    assert tree_bytes(uneven) == before
    assert "unchanged" in run("split", uneven).output  # the dataset itself is split as before


def test_materialize_with_copy(uneven, tmp_path):
    out = tmp_path / "split"
    assert "0 hard links, 20 copies" in run("split", uneven, "-o", tmp_path / "s.csv", "--materialize", out, "--copy").output
    copied = next(out.rglob("ant_0.png"))
    assert copied.read_bytes() == (uneven / "ant" / "ant_0.png").read_bytes()
    assert copied.stat().st_ino != (uneven / "ant" / "ant_0.png").stat().st_ino


def test_materialize_refuses_a_non_empty_folder_and_one_inside_the_source(uneven, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert "not an empty folder" in run("split", uneven, "-o", tmp_path / "a.csv", "--materialize", busy, expect=2).output
    assert (busy / "keep.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1
    assert "inside the source" in run("split", uneven, "-o", tmp_path / "b.csv", "--materialize", uneven / "splits", expect=2).output
    assert not (uneven / "splits").exists()
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()  # refused before writing


# --- usage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--val", "0.6", "--test", "0.5"], "add up to more than 1"),
    (["--val", "-0.1"], "between 0 and 1"),
    (["--val", "nan"], "between 0 and 1"),
    (["--test", "inf"], "between 0 and 1"),
    (["--copy"], "--copy only applies with --materialize"),
])
def test_bad_usage_exits_2(uneven, tmp_path, args, message):
    result = run("split", uneven, "-o", tmp_path / "s.csv", *args, expect=2)
    assert message in result.output and not (tmp_path / "s.csv").exists()


def test_an_existing_other_split_is_kept_unless_overwrite(uneven, tmp_path):
    out = tmp_path / "s.csv"
    run("split", uneven, "-o", out)
    assert "unchanged: " in run("split", uneven, "-o", out).output
    first = out.read_bytes()
    assert run("split", uneven, "-o", out, "--seed", 1, expect=2).output == \
        f"Error: -o {out}: exists with another split; use another -o, or --overwrite to replace it\n"
    assert out.read_bytes() == first
    run("split", uneven, "-o", out, "--seed", 1, "--overwrite")
    assert out.read_bytes() != first


def test_a_file_split_did_not_write_is_named_for_what_it_is_and_kept_unless_overwrite(uneven, tmp_path):
    out = tmp_path / "s.csv"
    out.write_bytes((uneven / "ant" / "ant_0.png").read_bytes())  # a photo under a .csv name
    assert run("split", uneven, "-o", out, expect=2).output == \
        (f"Error: -o {out}: exists and is a PNG image, not a manifest augkit split wrote; choose another path, or "
         f"--overwrite to replace it\n")
    assert out.read_bytes() == (uneven / "ant" / "ant_0.png").read_bytes()
    run("split", uneven, "-o", out, "--overwrite")
    assert read_manifest(out)[0]["split"] in SPLITS


def test_the_manifest_is_never_written_over_an_image_of_the_source(uneven, tmp_path):
    photo = uneven / "ant" / "ant_0.png"
    before = tree_bytes(uneven)
    assert "give a file name ending in .csv" in run("split", uneven, "-o", photo, "--overwrite", expect=2).output
    manifest = tmp_path / "listed.csv"  # a manifest listing a file named like a CSV
    named_csv = uneven / "ant" / "odd.csv"
    named_csv.write_bytes(photo.read_bytes())
    manifest.write_text(f"path,label\n{named_csv},ant\n{photo},ant\n")
    result = run("split", manifest, "-o", named_csv, "--overwrite", expect=2)
    assert "is one of the input images" in result.output and "augkit never writes over its inputs" in result.output
    assert tree_bytes(uneven) == {**before, "ant/odd.csv": photo.read_bytes()}
