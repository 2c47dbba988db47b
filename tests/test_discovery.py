"""augkit.input.discovery: which images a folder or CSV manifest holds, their labels and stable keys.

Discovery only lists files, so the "images" here are empty files with image suffixes.
"""

from __future__ import annotations

import csv
import json
import os
import ntpath
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from click.testing import CliRunner

import augkit
from augkit.cli import cli
from augkit.input.discovery import discover
from augkit.core.errors import UsageError
from imagefiles import class_folders as photo_folders


def touch(root: Path, *relative: str) -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.fixture
def class_folders(tmp_path):
    """dogs/ and cats/ (written in that order), one image nested a level deeper."""
    root = tmp_path / "pets"
    touch(root, "dogs/d2.jpg", "dogs/d1.PNG", "cats/c1.jpeg", "cats/indoor/c2.webp")
    return root


@pytest.fixture
def flat_folder(tmp_path):
    root = tmp_path / "photos"
    touch(root, "b.jpg", "a.png", "c.bmp")
    return root


@pytest.fixture
def folder_with_clutter(tmp_path):
    """Two real images among what file managers, editors and git leave behind."""
    root = tmp_path / "data"
    touch(
        root,
        "cat/a.jpg", "cat/.DS_Store", "cat/._a.jpg", "dog/b.png", "dog/.hidden.jpg",
        ".git/objects/x.jpg", "dog/.thumbnails/b.jpg",
        "cat/notes.txt", "dog/labels.csv", "cat/a.jpg.part",
    )
    return root


def test_class_folders_give_labels_from_folder_names(class_folders):
    dataset = discover(class_folders)
    assert dataset.kind == "folders"
    assert [(s.key, s.label) for s in dataset.samples] == [
        ("cats/c1.jpeg", "cats"),
        ("cats/indoor/c2.webp", "cats"),
        ("dogs/d1.PNG", "dogs"),
        ("dogs/d2.jpg", "dogs"),
    ]


def test_classes_are_sorted_and_indexed(class_folders):
    dataset = discover(class_folders)
    assert dataset.classes == ["cats", "dogs"]
    assert dataset.class_to_index == {"cats": 0, "dogs": 1}
    assert len(dataset) == 4


def test_sample_paths_point_at_the_files(class_folders):
    for sample in discover(class_folders).samples:
        assert Path(sample.path) == class_folders / sample.key


def test_a_flat_folder_has_no_labels(flat_folder):
    dataset = discover(flat_folder)
    assert dataset.kind == "flat"
    assert [s.key for s in dataset.samples] == ["a.png", "b.jpg", "c.bmp"]
    assert {s.label for s in dataset.samples} == {None}
    assert dataset.classes == []


def test_images_next_to_class_folders_make_a_mixed_source(tmp_path):
    touch(tmp_path, "loose.jpg", "cat/a.jpg")
    dataset = discover(tmp_path)
    assert dataset.kind == "mixed"
    assert [(s.key, s.label) for s in dataset.samples] == [("cat/a.jpg", "cat"), ("loose.jpg", None)]


def test_hidden_files_and_folders_are_skipped_and_counted(folder_with_clutter):
    dataset = discover(folder_with_clutter)
    assert [s.key for s in dataset.samples] == ["cat/a.jpg", "dog/b.png"]
    # .DS_Store, ._a.jpg, .hidden.jpg, and the folders .git and .thumbnails
    assert dataset.skipped["hidden"] == 5


def test_files_without_an_image_suffix_are_skipped_and_counted(folder_with_clutter):
    dataset = discover(folder_with_clutter)
    assert dataset.skipped["not an image suffix"] == 3  # notes.txt, labels.csv, a.jpg.part


def test_unicode_and_space_names_are_kept_as_written(tmp_path):
    touch(tmp_path, "chat noir/été 1.jpg", "犬/写真.png")
    dataset = discover(tmp_path)
    assert [(s.key, s.label) for s in dataset.samples] == [("chat noir/été 1.jpg", "chat noir"), ("犬/写真.png", "犬")]


def test_a_symlink_loop_lists_each_image_once(tmp_path):
    touch(tmp_path, "cat/a.jpg")
    os.symlink(tmp_path, tmp_path / "cat" / "loop")
    assert [s.key for s in discover(tmp_path).samples] == ["cat/a.jpg"]


def test_a_fifo_named_like_an_image_is_skipped_and_counted_as_not_a_regular_file(tmp_path):
    # Opening a FIFO for reading waits for a writer: listed, it hung every command.
    touch(tmp_path, "cat/a.jpg")
    os.mkfifo(tmp_path / "cat" / "x.jpg")
    dataset = discover(tmp_path)
    assert [s.key for s in dataset.samples] == ["cat/a.jpg"]
    assert dataset.skipped == {"not a regular file": 1}


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_symlink_to_a_device_is_skipped_and_a_symlink_to_an_image_is_kept(tmp_path):
    touch(tmp_path, "elsewhere/a.jpg")
    (tmp_path / "cat").mkdir()
    os.symlink(tmp_path / "elsewhere" / "a.jpg", tmp_path / "cat" / "linked.jpg")
    os.symlink("/dev/zero", tmp_path / "cat" / "endless.jpg")
    dataset = discover(tmp_path / "cat")
    assert [s.key for s in dataset.samples] == ["linked.jpg"]
    assert dataset.skipped == {"not a regular file": 1}


def test_a_symlink_to_nothing_is_listed_so_that_reading_it_reports_it_missing(tmp_path):
    touch(tmp_path, "cat/a.jpg")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "cat" / "dangling.jpg")
    assert [s.key for s in discover(tmp_path).samples] == ["cat/a.jpg", "cat/dangling.jpg"]


@pytest.mark.parametrize("name", ["pipe", "pipe.csv"])
def test_a_fifo_given_as_the_source_is_a_usage_error(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with pytest.raises(UsageError, match=rf"{name}: is a named pipe \(FIFO\), not a file or folder; pass a folder"):
        discover(tmp_path / name)


# Each command runs in a subprocess with a timeout: where a FIFO is opened for reading, the
# command waits for a writer forever, and the test must fail rather than hang.


def augkit_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "augkit", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def photos_and_a_fifo(tmp_path) -> Path:
    """cat/ holding two JPEGs and a FIFO named x.jpg."""
    src = photo_folders(tmp_path / "src", classes=("cat",), per_class=2)
    os.mkfifo(src / "cat" / "x.jpg")
    return src


@pytest.mark.parametrize("workers", [2, 0])
def test_augment_skips_a_fifo_named_like_an_image_and_counts_it(tmp_path, photos_and_a_fifo, workers):
    recipe = write_csv(tmp_path / "r.yaml", "transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    result = augkit_cli("augment", recipe, photos_and_a_fifo, tmp_path / "out", "-w", workers, "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["inputs"], summary["skipped_files"]) == (2, {"not a regular file": 1})


def test_stats_skips_a_fifo_named_like_an_image_and_counts_it(tmp_path, photos_and_a_fifo):
    result = augkit_cli("stats", photos_and_a_fifo, "-o", tmp_path / "s.json", "-w", 2)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "s.json").read_text())["skipped_files"] == {"not a regular file": 1}


def test_preview_of_a_fifo_is_one_line_and_exit_1(tmp_path, photos_and_a_fifo):
    recipe = write_csv(tmp_path / "r.yaml", "transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    fifo = photos_and_a_fifo / "cat" / "x.jpg"
    result = augkit_cli("preview", recipe, fifo, "-o", tmp_path / "p.png")
    assert (result.returncode, result.stderr) == (1, f"Error: {fifo}: is a named pipe (FIFO), not a file; only "
                                                     "regular files are read as images\n")
    assert augkit_cli("preview", recipe, photos_and_a_fifo, "-o", tmp_path / "p.png").returncode == 0


def test_a_manifest_row_naming_a_fifo_is_a_failure_row(tmp_path, photos_and_a_fifo):
    manifest = write_csv(tmp_path / "m.csv", f"path,label\n{photos_and_a_fifo}/cat/cat_0.jpg,cat\n"
                                             f"{photos_and_a_fifo}/cat/x.jpg,cat\n")
    recipe = write_csv(tmp_path / "r.yaml", "transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    result = augkit_cli("augment", recipe, manifest, tmp_path / "out", "-w", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out" / "failures.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["reason"] == "not_an_image" and "is a named pipe (FIFO)" in row["message"]


def test_the_cli_refuses_a_fifo_given_as_the_manifest_in_one_line(tmp_path):
    os.mkfifo(tmp_path / "m.csv")
    message = one_line_error("stats", tmp_path / "m.csv", "-o", tmp_path / "s.json")
    assert message == f"Error: {tmp_path / 'm.csv'}: is a named pipe (FIFO), not a file or folder; pass a folder " \
                      "of images or a CSV manifest\n"


def test_a_missing_source_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"no_such_dir: no such file or folder"):
        discover(tmp_path / "no_such_dir")


def test_an_empty_folder_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"empty: no images found"):
        discover(tmp_path / "empty")


def test_a_folder_of_only_hidden_and_other_files_is_a_usage_error(tmp_path):
    touch(tmp_path, ".DS_Store", "readme.md")
    with pytest.raises(UsageError, match="no images found"):
        discover(tmp_path)


def test_a_single_image_file_is_not_a_source(tmp_path):
    touch(tmp_path, "a.jpg")
    with pytest.raises(UsageError, match=r"a\.jpg: is a file; pass a folder of images or a CSV manifest"):
        discover(tmp_path / "a.jpg")


def test_split_on_a_folder_is_a_usage_error(class_folders):
    with pytest.raises(UsageError, match=r"--split train selects rows of a split manifest"):
        discover(class_folders, split="train")


def test_split_on_a_folder_holding_its_split_manifest_names_the_manifest_to_pass(tmp_path):
    touch(tmp_path / "photos", "ants/a.jpg", "bees/b.jpg")
    write_csv(tmp_path / "photos" / "split.csv", "path,label,split\nants/a.jpg,ants,train\nbees/b.jpg,bees,val\n")
    with pytest.raises(UsageError) as error:
        discover(tmp_path / "photos", split="val")
    assert str(error.value) == (f"--split val selects rows of a split manifest (CSV), but {tmp_path / 'photos'} is a "
                                f"folder; pass {tmp_path / 'photos' / 'split.csv'} --split val")


# --- CSV manifests ------------------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def split_manifest(tmp_path):
    """splits/manifest.csv listing images one folder up, with label and split columns."""
    return write_csv(
        tmp_path / "splits" / "manifest.csv",
        "path,label,split\n../images/b.jpg,dog,val\n../images/a.jpg,cat,train\n../images/c.jpg,cat,train\n",
    )


def test_a_manifest_gives_paths_relative_to_the_csv_and_labels(split_manifest):
    dataset = discover(split_manifest, split="all")
    assert dataset.kind == "manifest"
    assert [(s.key, s.label) for s in dataset.samples] == [
        ("../images/a.jpg", "cat"), ("../images/b.jpg", "dog"), ("../images/c.jpg", "cat"),
    ]
    images = (split_manifest.parent.parent / "images").resolve()
    assert [Path(s.path).resolve() for s in dataset.samples] == [images / n for n in ("a.jpg", "b.jpg", "c.jpg")]


def test_split_selects_the_rows_of_one_split(split_manifest):
    dataset = discover(split_manifest, split="train")
    assert [s.key for s in dataset.samples] == ["../images/a.jpg", "../images/c.jpg"]


def test_an_unknown_split_lists_the_available_ones(split_manifest):
    with pytest.raises(UsageError, match=r"no rows with split 'test'; the manifest has: train, val"):
        discover(split_manifest, split="test")


def test_split_without_a_split_column_is_a_usage_error(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label\na.jpg,cat\n")
    with pytest.raises(UsageError, match=r"--split train given but the manifest has no 'split' column"):
        discover(manifest, split="train")


def test_a_manifest_without_labels_gives_none(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "filename\nx/a.jpg\n")
    assert [(s.key, s.label) for s in discover(manifest).samples] == [("x/a.jpg", None)]


def test_column_names_are_matched_case_insensitively_and_a_bom_is_ignored(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "\ufeffImage,Class\na.jpg,cat\n")
    assert [(s.key, s.label) for s in discover(manifest).samples] == [("a.jpg", "cat")]


def test_a_manifest_listing_an_image_twice_is_a_usage_error(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label\na.jpg,cat\nb.jpg,dog\na.jpg,dog\n")
    with pytest.raises(UsageError, match=r"m\.csv:4: a\.jpg is listed twice"):
        discover(manifest)


def test_a_manifest_without_a_path_column_names_the_accepted_ones(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "name,label\na.jpg,cat\n")
    with pytest.raises(UsageError, match=r"no path column; name one of: path, filepath"):
        discover(manifest)


def test_an_empty_path_cell_names_its_line(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label\na.jpg,cat\n,dog\n")
    with pytest.raises(UsageError, match=r"m\.csv:3: empty 'path'"):
        discover(manifest)


def test_a_manifest_with_no_rows_is_a_usage_error(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label\n")
    with pytest.raises(UsageError, match="lists no images"):
        discover(manifest)


def one_line_error(*args) -> str:
    """Run the CLI, expect bad usage: exit 2 with one line on stderr, no traceback."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# --- a split manifest needs a split -------------------------------------------------------------


def test_a_split_manifest_without_a_split_names_its_splits_and_the_fix(split_manifest):
    with pytest.raises(UsageError) as error:
        discover(split_manifest)
    assert str(error.value) == f"{split_manifest} has splits train, val: pass split='train', or split='all' to use " \
                               "every row"
    assert error.value.cli == f"{split_manifest} has splits train, val: pass --split train, or --split all to use " \
                              "every row"  # what the CLI shows


def test_split_all_uses_every_row_of_a_split_manifest(split_manifest):
    assert len(discover(split_manifest, split="all")) == 3


def test_split_all_on_a_manifest_without_a_split_column_uses_every_row(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label\na.jpg,cat\nb.jpg,dog\n")
    assert [s.key for s in discover(manifest, split="all").samples] == ["a.jpg", "b.jpg"]


def test_split_all_on_a_folder_uses_every_image(class_folders):
    assert len(discover(class_folders, split="all")) == 4


def test_a_folder_holding_its_split_manifest_is_refused_naming_the_manifest_and_the_fix(class_folders):
    (class_folders / "split.csv").write_text("path,label,split\ndogs/d1.PNG,dogs,train\ncats/c1.jpeg,cats,val\n")
    with pytest.raises(UsageError) as refused:
        discover(class_folders)
    message, cli = str(refused.value), refused.value.cli
    assert "holds split.csv, a split manifest" in message and "val and test included" in message
    assert f"pass {class_folders / 'split.csv'} with split='train'" in message and "split='all'" in message
    assert cli.startswith(message.split(";")[0] + ";")  # the same refusal, in the command line's words
    assert f"pass {class_folders / 'split.csv'} --split train" in cli and "--split all" in cli
    assert len(discover(class_folders, split="all")) == 4
    assert len(discover(class_folders, for_training=False)) == 4


def test_a_csv_without_a_split_column_in_a_folder_is_no_split_manifest(class_folders):
    (class_folders / "labels.csv").write_text("path,label\ndogs/d1.PNG,dogs\n")
    (class_folders / "notes.csv").write_text("split,comment\ntrain,not a manifest: no path column\n")
    assert len(discover(class_folders)) == 4


def test_augment_on_a_folder_holding_its_split_manifest_exits_2_and_split_runs_again(tmp_path):
    src = photo_folders(tmp_path / "src", per_class=3)
    runner = CliRunner()
    assert runner.invoke(cli, ["split", str(src)]).exit_code == 0
    again = runner.invoke(cli, ["split", str(src), "--overwrite"])
    assert again.exit_code == 0, again.output
    recipe = tmp_path / "r.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    refused = runner.invoke(cli, ["augment", str(recipe), str(src), str(tmp_path / "out"), "--copies", "1"])
    assert refused.exit_code == 2 and "split.csv, a split manifest" in refused.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="split.csv, a split manifest"):
        augkit.flow(src, recipe)
    read = runner.invoke(cli, ["stats", str(src), "-o", str(tmp_path / "stats.json"), "-w", "0"])
    assert read.exit_code == 0 and "9 images" in read.output  # nothing trained on: the folder is read


@pytest.fixture
def split_photos(tmp_path):
    """photos/ants and photos/bees, and photos/split.csv putting each class in train, val and test."""
    root = tmp_path / "photos"
    touch(root, *(f"{c}/{c}_{i}.jpg" for c in ("ants", "bees") for i in range(3)))
    rows = "".join(f"{c}/{c}_{i}.jpg,{c},{split}\n"
                   for c in ("ants", "bees") for i, split in enumerate(("train", "val", "test")))
    write_csv(root / "split.csv", "path,label,split\n" + rows)
    return root


def test_a_class_folder_of_a_split_dataset_is_refused_naming_the_manifest_and_the_fix(split_photos):
    with pytest.raises(UsageError) as refused:
        discover(split_photos / "ants")
    why = (f"{split_photos / 'ants'} is inside {split_photos}, which holds split.csv, a split manifest that puts the "
           f"folder's images in splits test, train, val")
    assert str(refused.value) == (f"{why}; pass {split_photos / 'split.csv'} with split='train' (one split, every "
                                  f"class), or split='all' to use every image of {split_photos / 'ants'} on purpose")
    assert refused.value.cli == (f"{why}; pass {split_photos / 'split.csv'} --split train (one split, every class), "
                                 f"or {split_photos / 'ants'} --split all to use every image of "
                                 f"{split_photos / 'ants'} on purpose")


def test_the_manifest_above_is_found_a_few_folders_up_and_named_as_src_was_written(split_photos, monkeypatch):
    touch(split_photos, "ants/queens/winged/w_0.jpg", "ants/queens/winged/w_1.jpg")
    with open(split_photos / "split.csv", "a") as f:
        f.write("ants/queens/winged/w_0.jpg,ants,train\nants/queens/winged/w_1.jpg,ants,val\n")
    monkeypatch.chdir(split_photos / "ants")
    with pytest.raises(UsageError, match=r"^queens/winged is inside \.\., which holds split\.csv.*; pass "
                                         r"\.\./split\.csv with split='train'"):
        discover("queens/winged")  # three folders below the manifest
    monkeypatch.chdir(split_photos)
    with pytest.raises(UsageError, match=r"^ants/queens is inside \., which holds split\.csv.*; pass split\.csv "):
        discover("ants/queens")


def test_the_manifest_is_looked_for_up_to_three_folders_up(split_photos):
    touch(split_photos, "ants/a/b/c/deep_0.jpg", "ants/a/b/c/deep_1.jpg")
    with open(split_photos / "split.csv", "a") as f:
        f.write("ants/a/b/c/deep_0.jpg,ants,train\nants/a/b/c/deep_1.jpg,ants,val\n")
    assert len(discover(split_photos / "ants" / "a" / "b" / "c")) == 2  # four folders below it
    with pytest.raises(UsageError, match="which holds split.csv"):
        discover(split_photos / "ants" / "a" / "b")


def test_a_class_folder_of_a_split_dataset_is_read_with_split_all_or_when_nothing_is_trained_on(split_photos):
    assert len(discover(split_photos / "ants", split="all")) == 3
    assert len(discover(split_photos / "ants", for_training=False)) == 3


def test_a_manifest_above_that_lists_nothing_inside_the_folder_refuses_nothing(split_photos):
    touch(split_photos, "wasps/w_0.jpg", "wasps/w_1.jpg")  # added after the split
    assert [s.key for s in discover(split_photos / "wasps").samples] == ["w_0.jpg", "w_1.jpg"]


def test_a_folder_whose_listed_images_are_all_of_one_split_is_that_splits_folder(tmp_path):
    data = tmp_path / "data"  # split folders beside a manifest that lists them
    touch(data, "train/cat/a.jpg", "train/dog/b.jpg", "val/cat/c.jpg")
    write_csv(data / "split.csv", "path,label,split\ntrain/cat/a.jpg,cat,train\ntrain/dog/b.jpg,dog,train\n"
                                  "val/cat/c.jpg,cat,val\n")
    assert len(discover(data / "train")) == 2 and len(discover(data / "val")) == 1


def test_augment_on_a_class_folder_of_a_split_dataset_exits_2_and_writes_nothing(tmp_path):
    src = photo_folders(tmp_path / "photos", per_class=3)
    runner = CliRunner()
    assert runner.invoke(cli, ["split", str(src)]).exit_code == 0  # 2 train and 1 val image per class
    recipe = tmp_path / "r.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    refused = runner.invoke(cli, ["augment", str(recipe), str(src / "cat"), str(tmp_path / "out"), "--copies", "1"])
    assert refused.exit_code == 2 and "which holds split.csv, a split manifest" in refused.output
    assert not (tmp_path / "out").exists()


def test_a_split_named_all_cannot_be_selected_by_split_all(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,split\na.jpg,all\nb.jpg,train\n")
    with pytest.raises(UsageError, match=r"has a split named 'all'.*rename that split"):
        discover(manifest, split="all")


def test_split_names_are_matched_without_the_spaces_around_them(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path, label, split\na.jpg, cat, train\nb.jpg, dog, val\n")
    assert [s.key for s in discover(manifest, split="train").samples] == ["a.jpg"]


def test_an_image_in_two_splits_is_refused_whichever_split_is_chosen(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label,split\na.jpg,cat,train\nb.jpg,cat,train\na.jpg,cat,val\n")
    with pytest.raises(UsageError, match=r"m\.csv:4: a\.jpg is listed twice \(first on line 2\)"):
        discover(manifest, split="train")


def test_a_bad_row_names_its_line_in_the_file_when_a_split_is_chosen(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label,split\na.jpg,cat,val\nb.jpg,dog,val\n,dog,train\n")
    with pytest.raises(UsageError, match=r"m\.csv:4: empty 'path'"):
        discover(manifest, split="train")


@pytest.mark.parametrize("command", ["stats", "augment"])
def test_the_cli_refuses_a_split_manifest_without_split_in_one_line(tmp_path, split_manifest, command):
    recipe = write_csv(tmp_path / "r.yaml", "transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    args = ["stats", split_manifest, "-o", tmp_path / "s.json"] if command == "stats" else \
        ["augment", recipe, split_manifest, tmp_path / "out"]
    message = one_line_error(*args)
    assert "has splits train, val: pass --split train" in message and "--split all" in message
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "out").exists()


# --- a folder of split folders is not a folder of classes ---------------------------------------


@pytest.mark.parametrize("files", [
    ("train/ants/a.jpg", "train/bees/b.jpg", "val/ants/c.jpg", "val/bees/d.jpg"),  # hymenoptera_data
    ("Train/cat/a.jpg", "Validation/cat/b.jpg"),
    ("train/cat/a.jpg", "cat/b.jpg", "dog/c.jpg"),  # one split folder holding classes is enough
    ("train/a.jpg", "test/b.jpg"),  # every class-level folder is a split
    ("valid/a.jpg", "loose.jpg"),
])
def test_a_folder_of_split_folders_is_refused_naming_the_folder_to_pass(tmp_path, files):
    touch(tmp_path / "data", *files)
    first = files[0].split("/")[0]
    with pytest.raises(UsageError, match=r"holds split folders \(.*\), not classes: pass ") as error:
        discover(tmp_path / "data")
    assert f"pass {tmp_path / 'data' / first} as SRC" in str(error.value)


@pytest.mark.parametrize("files, named", [
    (("train/ants/a.jpg", "val/ants/b.jpg", "test/ants/c.jpg"), "val"),
    (("Train/cat/a.jpg", "Validation/cat/b.jpg"), "Validation"),
    (("train/cat/a.jpg", "test/cat/b.jpg"), "test"),
    (("train/cat/a.jpg", "cat/b.jpg"), "train"),  # no held-out folder to name
])
def test_held_out_reading_of_a_folder_of_split_folders_names_the_val_folder_to_pass(tmp_path, files, named):
    touch(tmp_path / "data", *files)
    with pytest.raises(UsageError) as error:
        discover(tmp_path / "data", for_training=False, held_out=True)
    assert f"pass {tmp_path / 'data' / named} as SRC" in str(error.value)


def test_a_class_named_test_that_holds_its_images_beside_real_classes_is_kept(tmp_path):
    touch(tmp_path, "cat/a.jpg", "dog/b.jpg", "test/c.jpg", "Val/d.jpg")
    assert discover(tmp_path).classes == ["Val", "cat", "dog", "test"]


def test_split_on_a_folder_with_that_split_folder_names_it(tmp_path):
    touch(tmp_path / "data", "train/ants/a.jpg", "val/ants/b.jpg")
    with pytest.raises(UsageError, match=r"is a folder; pass .*data[/\\]train as SRC instead"):
        discover(tmp_path / "data", split="train")


def test_the_cli_refuses_a_folder_of_split_folders_in_one_line(tmp_path):
    touch(tmp_path / "hymenoptera_data", "train/ants/a.jpg", "val/bees/b.jpg")
    message = one_line_error("stats", tmp_path / "hymenoptera_data", "-o", tmp_path / "s.json")
    assert "holds split folders (train, val), not classes" in message
    assert str(tmp_path / "hymenoptera_data" / "train") in message


# --- labels name output folders -----------------------------------------------------------------


@pytest.mark.parametrize("label", [
    "/data/photos", "../../x", "..", ".", "a/b", "a\\b", "C:", "C:photos", "nul\x00byte", "bell\x07", "del\x7f",
    "new\nline", ".git", ".hidden class",
])
def test_a_label_that_is_not_a_plain_folder_name_is_refused_with_its_line(tmp_path, label):
    manifest = tmp_path / "m.csv"
    quoted = '"' + label.replace('"', '""') + '"'
    manifest.write_text(f"path,label\ngood.jpg,cat\nbad.jpg,{quoted}\n", encoding="utf-8", newline="")
    with pytest.raises(UsageError) as error:
        discover(manifest)
    message = str(error.value)
    assert message.startswith(f"{manifest}:{3 + label.count(chr(10))}: label {label!r} is not a plain folder name")
    assert "\n" not in message and "\x00" not in message


@pytest.mark.parametrize("label", ["n01440764", "golden retriever", "class.1", "chat-noir", "犬", "été 2", "a..b"])
def test_plain_folder_names_are_kept_as_labels(tmp_path, label):
    manifest = write_csv(tmp_path / "m.csv", f"path,label\na.jpg,{label}\n")
    assert discover(manifest).classes == [label]


def test_augment_refuses_a_label_that_would_write_outside_out(tmp_path):
    # An image outside the CSV's folder is written to OUT/<label>/, so this label would
    # have put the copies in tmp_path/victim.
    from imagefiles import class_folders as jpeg_class_folders

    jpeg_class_folders(tmp_path / "images", classes=("cat",), per_class=1)
    manifest = write_csv(tmp_path / "lists" / "m.csv", "path,label\n../images/cat/cat_0.jpg,../../victim\n")
    recipe = write_csv(tmp_path / "r.yaml", "transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    message = one_line_error("augment", recipe, manifest, tmp_path / "out", "-w", 0)
    assert f"{manifest}:2: label '../../victim' is not a plain folder name" in message
    assert not (tmp_path / "victim").exists() and not (tmp_path / "out").exists()


# --- manifest keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("first, again", [
    ("imgs/x.jpg", "imgs/../imgs/x.jpg"),
    ("imgs/x.jpg", "./imgs//x.jpg"),
    ("imgs/x.jpg", "imgs\\x.jpg"),
    ("../shared/x.jpg", "../lists/../shared/x.jpg"),
])
def test_the_same_image_written_two_ways_is_listed_twice(tmp_path, first, again):
    manifest = write_csv(tmp_path / "lists" / "m.csv", f"path,label\n{first},cat\n{again},cat\n")
    with pytest.raises(UsageError, match=r"m\.csv:3: .* is listed twice \(first on line 2\)"):
        discover(manifest)


def test_an_absolute_path_to_an_image_listed_by_a_relative_one_is_listed_twice(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", f"path\nimgs/x.jpg\n{(tmp_path / 'imgs' / 'x.jpg').as_posix()}\n")
    with pytest.raises(UsageError, match=r"m\.csv:3: .* is listed twice"):
        discover(manifest)


def test_manifest_keys_are_normalised_and_only_outside_keys_leave_the_source(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path\n" + "\n".join([
        "a/./b.jpg", "a//c.jpg", "a/../d.jpg", "a/../../e.jpg", "../f.jpg", "/abs/g.jpg", "C:\\\\photos\\\\h.jpg",
        "C:i.jpg", "sub\\\\j.jpg",
    ]) + "\n")
    keys = [s.key for s in discover(manifest).samples]
    assert sorted(keys) == sorted([
        "a/b.jpg", "a/c.jpg", "d.jpg", "../e.jpg", "../f.jpg", "/abs/g.jpg", "/C:/photos/h.jpg", "/C:i.jpg", "sub/j.jpg",
    ])
    for key in keys:  # joined under OUT, a key stays inside unless it says it is outside
        outside = key.startswith(("../", "/"))
        parts = PurePosixPath(key).parts
        assert outside or (".." not in parts and not ntpath.splitdrive(key)[0]), key


def test_a_backslash_path_is_read_where_its_key_says(tmp_path):
    touch(tmp_path, "sub/j.jpg")
    manifest = write_csv(tmp_path / "m.csv", "path\nsub\\j.jpg\n")
    assert Path(discover(manifest).samples[0].path).is_file()


@pytest.mark.parametrize("path", [".", "imgs/..", "imgs/", "/"])
def test_a_path_that_names_a_folder_is_refused_with_its_line(tmp_path, path):
    manifest = write_csv(tmp_path / "m.csv", f"path\na.jpg\n{path}\n")
    with pytest.raises(UsageError, match=r"m\.csv:3: the path .* names a folder, not an image"):
        discover(manifest)


def test_a_path_with_a_nul_character_is_refused_with_its_line(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path\na\x00.jpg\n")
    with pytest.raises(UsageError, match=r"m\.csv:2: the path 'a\\x00\.jpg' holds a NUL character"):
        discover(manifest)


def test_listing_a_folder_does_not_import_the_decoder(tmp_path):
    # Discovery only reads names; the suffixes it looks for live apart from the decoder,
    # so listing a dataset costs no OpenCV, Pillow or libjpeg import.
    import subprocess
    import sys

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.jpg").write_bytes(b"not decoded")
    code = ("import sys; from augkit.input.discovery import discover; "
            f"assert len(discover({str(tmp_path)!r}).samples) == 1; "
            "print(sorted(m for m in ('augkit.input.decoding', 'cv2', 'PIL') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"



# --- Dataset.holds: where an output file would land on the source's images ------------------


def test_a_folder_source_holds_its_images_and_any_visible_image_name_inside_it(tmp_path):
    data = photo_folders(tmp_path / "data", classes=("cat",), per_class=1)
    dataset = discover(data)
    link = tmp_path / "link"
    link.symlink_to(data)
    assert dataset.holds(data / "cat" / "cat_0.jpg") and dataset.holds(link / "cat" / "cat_0.jpg")
    assert dataset.holds(data / "new.png")  # the next listing would read it as an image
    assert not dataset.holds(data / "stats.json") and not dataset.holds(data / ".hidden" / "x.png")
    assert not dataset.holds(tmp_path / "elsewhere.png")


def test_a_manifest_holds_the_files_it_lists_and_any_image_name_inside_its_source_folders(tmp_path):
    data = photo_folders(tmp_path / "data", classes=("cat",), per_class=2)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\ndata/cat/cat_0.jpg,cat\n")
    dataset = discover(manifest)
    assert dataset.holds(data / "cat" / "cat_0.jpg")
    assert dataset.holds(data / "cat" / "cat_1.jpg")  # not listed, but a folder run reads it, and it is the user's
    assert dataset.holds(data / "cat" / "new.png")
    assert not dataset.holds(data / "cat" / "stats.json") and not dataset.holds(tmp_path / "plot.png")


def folders(dataset) -> list[Path]:
    return [folder.resolve() for folder in dataset.source_folders()]


def test_a_split_manifest_inside_its_dataset_folder_protects_that_folder(split_photos):
    dataset = discover(split_photos / "split.csv", split="train")
    assert folders(dataset) == [split_photos, split_photos / "ants", split_photos / "bees"]
    assert dataset.holds(split_photos / "plot.png")  # the next `augkit split photos` would read it


def test_a_manifest_beside_its_dataset_folder_protects_that_folder_and_not_its_own(tmp_path):
    touch(tmp_path, "sample_data/cat/c.jpg", "sample_data/dog/d.jpg")  # as the README's walk-through leaves it
    manifest = write_csv(tmp_path / "split.csv", "path,label,split\nsample_data/cat/c.jpg,cat,train\n"
                                                 "sample_data/dog/d.jpg,dog,val\n")
    dataset = discover(manifest, split="all")
    data = tmp_path / "sample_data"
    assert folders(dataset) == [data, data / "cat", data / "dog"]
    assert dataset.holds(data / "plot.png") and not dataset.holds(tmp_path / "confusion.png")


def test_a_manifest_of_images_from_unrelated_places_protects_only_their_folders(tmp_path):
    touch(tmp_path, "holiday/x.jpg", "work/scans/y.jpg")
    manifest = write_csv(tmp_path / "project" / "list.csv", "path\n../holiday/x.jpg\n../work/scans/y.jpg\n")
    dataset = discover(manifest)  # their common folder holds the project too: not the dataset's
    assert folders(dataset) == [tmp_path / "holiday", tmp_path / "work" / "scans"]
    assert not dataset.holds(tmp_path / "project" / "plot.png") and not dataset.holds(tmp_path / "work" / "plot.png")
