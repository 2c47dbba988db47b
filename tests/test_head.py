"""`augkit train-head CACHE -o HEAD` (augkit.stages.head.run and augkit.cli.head)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mobilenet_like
import separable
from augkit.stages.head import HeadOptions, train_head
from clirun import run

HEAD_FILES = {"head.json", "head.npz", "classes.txt", "metrics.json", "confusion.png", "model.onnx"}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A tiny backbone; a cache of 8 images per class, 2 views each (the first plain); a
    plain val cache; a cache of one class; an imbalanced cache."""
    root = tmp_path_factory.mktemp("head")
    model = root / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=4), model)
    separable.write_dataset(root / "train", per_class=8, seed=0)
    separable.write_dataset(root / "val", per_class=3, seed=1)
    (root / "recipe.yaml").write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    backbone = ["--backbone", model, "--input-size", 64, "--quiet"]
    run("cache-features", root / "train", "-o", root / "cache", *backbone, "--recipe", root / "recipe.yaml",
        "--views", 2, "--plain-first")
    run("cache-features", root / "val", "-o", root / "val_cache", *backbone)
    one = root / "one"
    shutil.copytree(root / "train" / "red_stripes", one / "red_stripes")
    run("cache-features", one, "-o", root / "one_cache", *backbone)
    uneven = root / "uneven"
    shutil.copytree(root / "train", uneven)
    for extra in sorted((uneven / "green_dots").iterdir())[2:]:
        extra.unlink()
    run("cache-features", uneven, "-o", root / "uneven_cache", *backbone)
    return root


def test_train_head_writes_the_model_its_metrics_picture_weights_and_classes(made, tmp_path):
    result = run("train-head", made / "cache", "-o", tmp_path / "head", "--quiet")
    head = tmp_path / "head"
    assert {p.name for p in head.iterdir()} - {".augkit-lock"} == HEAD_FILES
    assert json.loads((head / "head.json").read_text())["complete"] is True
    assert (head / "classes.txt").read_text().split() == list(separable.CLASSES)
    weights = np.load(head / "head.npz")
    assert weights["weight"].shape == (3, 48) and weights["bias"].shape == (3,)
    assert list(weights["classes"]) == list(separable.CLASSES)
    assert "train accuracy" in result.output and "val accuracy" in result.output
    assert result.output.rstrip().split(" -> ")[-1].startswith(f"{head}/model.onnx (")


def test_a_head_folder_given_with_a_trailing_slash_prints_its_model_once_slashed(made, tmp_path):
    result = run("train-head", made / "cache", "-o", f"{tmp_path / 'head'}/", "--quiet")
    assert f"-> {tmp_path / 'head'}/model.onnx (" in result.output and "//" not in result.output


def test_metrics_json_holds_accuracy_per_class_scores_the_confusion_matrix_the_choice_and_the_caches_meta(made,
                                                                                                         tmp_path):
    run("train-head", made / "cache", "-o", tmp_path / "head", "--quiet")
    metrics = json.loads((tmp_path / "head" / "metrics.json").read_text())
    assert metrics["C"] in (0.01, 0.1, 1.0, 10.0) and len(metrics["search"]) == 4
    assert metrics["train"]["rows"] == 2 * metrics["train"]["images"] == 36  # 6 of 8 images per class, 2 views
    assert metrics["val"]["images"] == metrics["val"]["rows"] == 6 and metrics["val"]["views"] == "plain"
    assert set(metrics["val"]["per_class"]) == set(separable.CLASSES)
    assert np.array(metrics["val"]["confusion"]["matrix"]).sum() == 6
    cache = metrics["cache"]
    assert cache["backbone"] == "tiny" and len(cache["weights_sha256"]) == 64
    assert cache["recipe"] is not None and cache["views"] == 2 and cache["plain_first"] is True


def test_a_val_cache_validates_and_json_reports_the_run(made, tmp_path):
    summary = json.loads(run("train-head", made / "cache", "--val", made / "val_cache", "-o", tmp_path / "head",
                             "--quiet", "--json").output)
    assert summary["val_images"] == 9 and summary["train_images"] == 24 and summary["train_rows"] == 48
    assert summary["validation"].startswith("--val") and summary["val_accuracy"] is not None
    assert summary["C"] == json.loads((tmp_path / "head" / "metrics.json").read_text())["C"]


def test_the_same_command_again_gives_the_same_head(made, tmp_path):
    run("train-head", made / "cache", "-o", tmp_path / "head", "--quiet")
    first = (tmp_path / "head" / "head.npz").read_bytes(), (tmp_path / "head" / "model.onnx").read_bytes()
    run("train-head", made / "cache", "-o", tmp_path / "head", "--quiet")
    assert ((tmp_path / "head" / "head.npz").read_bytes(), (tmp_path / "head" / "model.onnx").read_bytes()) == first


def test_a_head_made_with_other_settings_is_refused_unless_overwrite(made, tmp_path):
    run("train-head", made / "cache", "-o", tmp_path / "head", "--quiet")
    refused = run("train-head", made / "cache", "-o", tmp_path / "head", "--seed", 3, "--quiet", expect=2)
    assert "seed 0 -> 3" in refused.output and "--overwrite" in refused.output
    run("train-head", made / "cache", "-o", tmp_path / "head", "--seed", 3, "--quiet", "--overwrite")
    assert json.loads((tmp_path / "head" / "metrics.json").read_text())["seed"] == 3


def test_a_folder_of_the_users_is_never_a_head(made, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = run("train-head", made / "cache", "-o", tmp_path / "mine", "--quiet", "--overwrite", expect=2)
    assert "did not write (e.g. notes.txt)" in result.output
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_an_incomplete_cache_is_refused_with_exit_2(made, tmp_path):
    cache = Path(shutil.copytree(made / "cache", tmp_path / "cache"))
    meta = json.loads((cache / "meta.json").read_text())
    (cache / "meta.json").write_text(json.dumps({**meta, "complete": False}))
    result = run("train-head", cache, "-o", tmp_path / "head", expect=2)
    assert "incomplete" in result.output and not (tmp_path / "head").exists()


@pytest.mark.parametrize("args, words", [
    (["--val-fraction", 0.2, "--val", "VAL"], "not both"),
    (["--val-fraction", 0, "--C", "0.1,1"], "needs validation images"),
    (["--C", "0,1"], "must be above 0"),
    (["--C", "abc"], "expected numbers"),
    (["--val-fraction", 1.5], "between 0 and 1"),
])
def test_bad_options_are_usage_errors(made, tmp_path, args, words):
    args = [made / "val_cache" if a == "VAL" else a for a in args]
    result = run("train-head", made / "cache", "-o", tmp_path / "head", *args, expect=2)
    assert words in result.output


def test_a_cache_of_one_class_cannot_make_a_classifier(made, tmp_path):
    result = run("train-head", made / "one_cache", "-o", tmp_path / "head", expect=2)
    assert "needs at least 2" in result.output


def test_a_val_cache_without_labels_is_refused_as_unable_to_judge(made, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted((made / "val").rglob("*.png"))[:3]:
        shutil.copy(image, flat / image.name)
    run("cache-features", flat, "-o", tmp_path / "flat_cache", "--backbone", made / "tiny.onnx", "--input-size", 64,
        "--quiet")
    result = run("train-head", made / "cache", "--val", tmp_path / "flat_cache", "-o", tmp_path / "head", expect=2)
    assert f"--val {tmp_path / 'flat_cache'}: holds no labelled images" in result.output
    assert not (tmp_path / "head").exists()


def test_rows_read_from_the_shards_every_pass_give_the_head_rows_in_memory_give(made, tmp_path):
    streamed = train_head(made / "cache", tmp_path / "streamed", options=HeadOptions(memory=0, C=(1.0,)))
    kept = train_head(made / "cache", tmp_path / "kept", options=HeadOptions(C=(1.0,)))
    assert streamed.streamed and not kept.streamed
    a, b = np.load(tmp_path / "streamed" / "head.npz"), np.load(tmp_path / "kept" / "head.npz")
    assert (a["weight"] == b["weight"]).all() and (a["bias"] == b["bias"]).all()


def test_balanced_weighs_a_rare_class_up(made, tmp_path):
    plain = train_head(made / "uneven_cache", tmp_path / "plain", options=HeadOptions(val_fraction=0, C=(0.1,)))
    balanced = train_head(made / "uneven_cache", tmp_path / "balanced",
                          options=HeadOptions(val_fraction=0, C=(0.1,), balanced=True))
    assert plain.train_rows == balanced.train_rows == 18
    rare = separable.CLASSES.index("green_dots")
    bias = np.load(tmp_path / "plain" / "head.npz")["bias"], np.load(tmp_path / "balanced" / "head.npz")["bias"]
    assert bias[1][rare] - bias[1].mean() > bias[0][rare] - bias[0].mean()
    assert json.loads((tmp_path / "balanced" / "metrics.json").read_text())["balanced"] is True


def test_a_search_stopped_by_max_iter_says_so(made, tmp_path):
    result = run("train-head", made / "cache", "-o", tmp_path / "head", "--max-iter", 1, "--C", 100, "--quiet")
    assert "before converging; raise --max-iter" in result.output


def test_too_few_images_to_hold_any_out_trains_without_a_search_and_says_so(made, tmp_path):
    tiny = tmp_path / "tiny"
    for name in separable.CLASSES:
        shutil.copytree(made / "train" / name, tiny / name, ignore=lambda folder, names: sorted(names)[2:])
    run("cache-features", tiny, "-o", tmp_path / "cache", "--backbone", made / "tiny.onnx", "--input-size", 64, "--quiet")
    result = run("train-head", tmp_path / "cache", "-o", tmp_path / "head", "--quiet")
    assert "no class has enough images to hold some out" in result.output
    assert json.loads((tmp_path / "head" / "metrics.json").read_text())["val"] is None
    refused = run("train-head", tmp_path / "cache", "-o", tmp_path / "h2", "--C", "0.1,1", expect=2)
    assert "give --val CACHE or one --C value" in refused.output
