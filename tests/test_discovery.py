"""augkit.discovery: which images a folder or CSV manifest holds, their labels and stable keys.

Discovery only lists files, so the "images" here are empty files with image suffixes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from augkit.discovery import discover
from augkit.errors import UsageError


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
    dataset = discover(split_manifest)
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
