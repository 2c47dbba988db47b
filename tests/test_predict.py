"""`augkit predict MODEL SRC -o predictions.csv` (augkit.stages.predict and augkit.cli.predict)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import augkit
import mobilenet_like
import separable
from augkit.stages.backbones import resolve_backbone
from augkit.stages.features import cache_features
from augkit.stages.head import HeadOptions, train_head
from augkit.input.encoding import written_by
from clirun import read_csv, run


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    mobilenet_like.save(mobilenet_like.tiny(seed=6), root / "tiny.onnx")
    separable.write_dataset(root / "train", per_class=6, seed=0)
    separable.write_dataset(root / "images", per_class=3, seed=1)
    cache_features(root / "train", root / "cache", backbone=resolve_backbone(str(root / "tiny.onnx"), input_size=64),
                   workers=0)
    train_head(root / "cache", root / "head", options=HeadOptions(val_fraction=0))
    return root


@pytest.fixture
def images(made, tmp_path) -> Path:
    return Path(shutil.copytree(made / "images", tmp_path / "images"))


def test_the_csv_has_each_images_top_classes_and_probabilities_in_the_sources_order(made, images, tmp_path):
    out = tmp_path / "predictions.csv"
    result = run("predict", made / "head", images, "-o", out, "--top-k", 2, "--quiet")
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "label", "status", "class_1", "prob_1", "class_2", "prob_2", "reason", "message"]
    assert [r["path"] for r in rows] == sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png"))
    classifier = augkit.Classifier(made / "head")
    for row in rows:
        expected = classifier.predict(images / row["path"], top_k=2)
        assert row["status"] == "ok" and row["label"] == row["path"].split("/")[0]
        assert [row["class_1"], row["class_2"]] == [c for c, _ in expected.top]
        assert float(row["prob_1"]) == pytest.approx(expected.probability, abs=1e-6)
        assert float(row["prob_1"]) >= float(row["prob_2"])
    assert "9 of 9 images classified" in result.output and "accuracy" in result.output


def test_labels_give_accuracy_per_class_scores_and_the_confusion_matrix(made, images, tmp_path):
    out = tmp_path / "predictions.csv"
    summary = json.loads(run("predict", made / "head", images, "-o", out, "--quiet", "--json").output)
    rows = read_csv(out)
    right = sum(r["class_1"] == r["label"] for r in rows)
    assert summary["labelled"] == 9 and summary["metrics"]["accuracy"] == round(right / 9, 6)
    assert set(summary["metrics"]["per_class"]) == set(separable.CLASSES)
    assert np.array(summary["metrics"]["confusion"]["matrix"]).sum() == 9


def test_unreadable_files_are_failed_rows_and_the_run_goes_on(made, images, tmp_path):
    (images / "red_stripes" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "predictions.csv"
    result = run("predict", made / "head", images, "-o", out, "--quiet")
    broken = next(r for r in read_csv(out) if r["path"].endswith("broken.png"))
    assert broken["status"] == "failed" and broken["reason"] and broken["message"] and not broken["class_1"]
    assert "1 image failed" in result.output


def test_nothing_classified_is_exit_1(made, tmp_path):
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / "a.jpg").write_bytes(b"not a jpeg")
    result = run("predict", made / "head", tmp_path / "bad", "-o", tmp_path / "p.csv", "--quiet", expect=1)
    assert "none of the 1 images could be classified" in result.output


def test_one_image_and_a_manifest_split_are_sources_too(made, images, tmp_path):
    out = tmp_path / "one.csv"
    run("predict", made / "head", images / "green_dots" / "green_dots_00.png", "-o", out, "--quiet")
    assert [r["path"] for r in read_csv(out)] == ["green_dots_00.png"]
    run("split", images, "-o", images / "split.csv", "--val", 0.34, "--test", 0)
    run("predict", made / "head", images / "split.csv", "--split", "val", "-o", out, "--quiet")
    assert len(read_csv(out)) == 3
    refused = run("predict", made / "head", images / "split.csv", "-o", out, "--quiet", expect=2)
    assert f"{images / 'split.csv'} has splits train, val: pass --split val, or --split all" in refused.output


def test_a_label_the_model_does_not_know_is_counted_wrong_and_named(made, images, tmp_path):
    shutil.copytree(images / "red_stripes", images / "zebra")
    result = run("predict", made / "head", images, "-o", tmp_path / "p.csv", "--quiet", "--json")
    assert "labels the model has no class for (counted as wrong): zebra" in result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["metrics"]["per_class"]["zebra"]["recall"] == 0.0 and summary["labelled"] == 12


def test_plot_draws_the_confusion_matrix(made, images, tmp_path):
    run("predict", made / "head", images, "-o", tmp_path / "p.csv", "--plot", tmp_path / "c.png", "--quiet")
    assert written_by(tmp_path / "c.png") == "predict"
    run("predict", made / "head", images, "-o", tmp_path / "p.csv", "--plot", tmp_path / "c.png", "--quiet")


def test_a_csv_or_picture_of_the_users_is_never_replaced_without_overwrite(made, images, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("name,score\nx,1\n")
    result = run("predict", made / "head", images, "-o", mine, "--quiet", expect=2)
    assert "not a CSV augkit predict wrote" in result.output and mine.read_text() == "name,score\nx,1\n"
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\nmine")
    run("predict", made / "head", images, "-o", tmp_path / "p.csv", "--plot", tmp_path / "c.png", "--quiet", expect=2)
    run("predict", made / "head", images, "-o", mine, "--quiet", "--overwrite")
    assert read_csv(mine)[0]["status"] == "ok"


def test_predict_never_writes_its_picture_over_or_among_the_images_it_classifies(made, images, tmp_path):
    photo = images / "green_dots" / "green_dots_00.png"
    before = photo.read_bytes()
    for plot in (photo, images / "confusion.png"):
        result = run("predict", made / "head", images, "-o", tmp_path / "p.csv", "--plot", plot, "--quiet",
                     "--overwrite", expect=2)
        assert result.output.startswith(f"Error: --plot {plot}: is ")
    assert photo.read_bytes() == before and not (images / "confusion.png").exists()
    assert not (tmp_path / "p.csv").exists()


def test_predict_on_a_folder_of_split_folders_names_the_val_folder_to_pass(made, tmp_path):
    shutil.copytree(made / "images", tmp_path / "hym" / "train")
    shutil.copytree(made / "images", tmp_path / "hym" / "val")
    result = run("predict", made / "head", tmp_path / "hym", "-o", tmp_path / "p.csv", expect=2)
    assert f"pass {tmp_path / 'hym' / 'val'} as SRC" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_predict_replaces_its_own_csv_and_leaves_no_work_folder(made, images, tmp_path):
    out = tmp_path / "p.csv"
    run("predict", made / "head", images, "-o", out, "--quiet")
    run("predict", made / "head", images, "-o", out, "--quiet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "p.csv"]


def test_a_work_folder_left_by_a_killed_run_is_swept(made, images, tmp_path):
    stale = tmp_path / ".p.csv.augkit-work-999999999-abc"  # no such process
    stale.mkdir()
    (stale / "features-00000.npy").write_bytes(b"")
    run("predict", made / "head", images, "-o", tmp_path / "p.csv", "--quiet")
    assert not stale.exists()


def test_the_csv_is_the_same_for_any_worker_count(made, images, tmp_path):
    run("predict", made / "head", images, "-o", tmp_path / "a.csv", "--quiet", "--workers", 0)
    run("predict", made / "head", images, "-o", tmp_path / "b.csv", "--quiet", "--workers", 2, "--batch-size", 3)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize("out, words", [("p.txt", "ending in .csv"), ("nowhere/p.csv", "does not exist")])
def test_an_output_that_cannot_be_a_csv_is_a_usage_error(made, images, tmp_path, out, words):
    result = run("predict", made / "head", images, "-o", tmp_path / out, "--quiet", expect=2)
    assert words in result.output


def test_a_model_that_is_not_a_head_is_a_usage_error(images, tmp_path):
    result = run("predict", tmp_path, images, "-o", tmp_path / "p.csv", expect=2)
    assert "pass a HEAD folder" in result.output


def test_on_ray_predict_writes_the_same_csv(made, images, tmp_path):
    pytest.importorskip("ray")
    run("predict", made / "head", images, "-o", tmp_path / "local.csv", "--quiet")
    run("predict", made / "head", images, "-o", tmp_path / "ray.csv", "--quiet", "--engine", "ray")
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_file_names_round_trip_through_the_csv(made, images, tmp_path):
    odd = images / "red_stripes" / "a, \"quoted\"\nname.png"
    shutil.copy(images / "red_stripes" / "red_stripes_00.png", odd)
    run("predict", made / "head", images, "-o", tmp_path / "p.csv", "--quiet")
    assert odd.relative_to(images).as_posix() in [r["path"] for r in read_csv(tmp_path / "p.csv")]


def large_jpegs(folder: Path, made: Path) -> Path:
    """Two of the test images enlarged 8x and saved as JPEGs (the crop rule's 1/8 decode
    applies), in their class folders."""
    import cv2

    for path in sorted((made / "images").rglob("*_00.png"))[:2]:
        rgb = augkit.decode_image(path)
        large = cv2.resize(rgb, (rgb.shape[1] * 8, rgb.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
        noise = np.random.default_rng(0).integers(-12, 13, large.shape)  # detail the 1/8 decode drops
        large = np.clip(large.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        target = folder / path.parent.name / (path.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(cv2.imencode(".jpg", cv2.cvtColor(large, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
    return folder


@pytest.mark.parametrize("exact", [False, True], ids=["reduced", "exact-decode"])
def test_predict_and_the_classifier_decode_a_large_jpeg_alike_and_exact_decode_decodes_it_whole(made, tmp_path, exact):
    folder = large_jpegs(tmp_path / "large", made)
    out = tmp_path / "predictions.csv"
    run("predict", made / "head", folder, "-o", out, "--quiet", *(["--exact-decode"] if exact else []))
    classifier = augkit.Classifier(made / "head", reduced_decode=not exact)
    whole = augkit.Classifier(made / "head", reduced_decode=False)
    for row in read_csv(out):
        path = folder / row["path"]
        expected = classifier.predict(path).probabilities
        assert float(row["prob_1"]) == pytest.approx(expected[row["class_1"]], abs=1e-6)
        assert np.array_equal(classifier.prepare(path), whole.prepare(path)) == exact  # the two decodes differ
