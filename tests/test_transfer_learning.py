"""From an image folder to a working classifier, without network: `augkit cache-features`
-> `augkit train-head` -> `augkit predict` on a random-weight MobileNet-shaped backbone and
a dataset it can separate (classes differing in colour and texture)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import mobilenet_like
import separable
from augkit.stages.features import load_features
from augkit.stages.head import data
from clirun import run

RECIPE = "transforms:\n  - HorizontalFlip: {p: 0.5}\n  - RandomBrightnessContrast: {p: 1.0}\n"
CHANCE = 1 / len(separable.CLASSES)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    """Training images (12 per class, two shapes), validation images (10 per class, at the
    backbone's input size), their caches (training: 3 views, the first plain), and two heads:
    one validated on the val cache, one on held-out training images."""
    root = tmp_path_factory.mktemp("transfer")
    model = root / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=3), model)
    train = separable.write_dataset(root / "data" / "train", per_class=12, seed=0)
    val = separable.write_dataset(root / "data" / "val", per_class=10, seed=1, size=(64, 64))
    (root / "recipe.yaml").write_text(RECIPE)
    backbone = ["--backbone", model, "--input-size", 64, "--quiet"]
    run("cache-features", train, "-o", root / "ftrain", *backbone, "--recipe", root / "recipe.yaml", "--views", 3,
        "--plain-first")
    run("cache-features", val, "-o", root / "fval", *backbone)
    run("train-head", root / "ftrain", "--val", root / "fval", "-o", root / "head", "--quiet")
    run("train-head", root / "ftrain", "-o", root / "held", "--quiet")
    return SimpleNamespace(root=root, train=train, val=val, head=root / "head", held=root / "held")


def metrics_of(head: Path) -> dict:
    return json.loads((head / "metrics.json").read_text())


def predicted(world, src, *extra) -> dict:
    out = world.root / "predictions.csv"
    return json.loads(run("predict", world.head if not extra else extra[0], src, "-o", out, "--quiet", "--json",
                          "--overwrite").output)


def test_val_accuracy_is_well_above_chance_and_is_what_predict_measures_on_the_same_images(world):
    val = metrics_of(world.head)["val"]
    assert val["images"] == 30 and val["views"] == "plain"
    assert val["accuracy"] >= 2 * CHANCE  # well above chance: the classes are separable
    summary = predicted(world, world.val)
    assert summary["predicted"] == summary["labelled"] == 30
    assert summary["metrics"]["accuracy"] == val["accuracy"]
    assert summary["metrics"]["confusion"] == val["confusion"]


def test_model_onnx_alone_gives_the_probabilities_of_the_head_on_the_cached_features(world):
    """ONNX Runtime and Pillow only: the val images are at the input size, so a decoded
    file is the model's input as it is."""
    session = ort.InferenceSession(str(world.head / "model.onnx"), providers=["CPUExecutionProvider"])
    features, labels, classes, manifest = load_features(world.root / "fval")
    images = np.stack([np.asarray(Image.open(world.val / row["path"]).convert("RGB")) for row in manifest])
    probabilities = session.run(["probabilities"], {"image": images})[0]
    head = np.load(world.head / "head.npz")
    logits = np.asarray(features, np.float32) @ head["weight"].T + head["bias"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(probabilities, expected, atol=1e-5)
    assert json.loads(session.get_modelmeta().custom_metadata_map["augkit.classes"]) == classes


def test_views_of_one_image_never_straddle_train_and_val_and_predict_agrees_on_the_held_out_images(world):
    cache = data.open_cache(world.root / "ftrain")
    train_rows, val_rows = data.hold_out(cache, 0.2, seed=0)
    train_keys = {cache.keys[r] for r in train_rows}
    val_keys = {cache.keys[r] for r in val_rows}
    assert not train_keys & val_keys
    assert len(val_rows) == 3 * len(val_keys)  # every view of a held-out image is held out
    val = metrics_of(world.held)["val"]
    assert val["images"] == len(val_keys) == 6 and val["rows"] == 6  # 2 of 12 per class, judged on the plain view
    manifest = world.root / "held_out.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows([[f"data/train/{key}", key.split("/")[0]] for key in sorted(val_keys)])
    summary = predicted(world, manifest, world.held)
    assert summary["metrics"]["accuracy"] == val["accuracy"] > CHANCE
