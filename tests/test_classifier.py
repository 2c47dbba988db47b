"""augkit.Classifier: a HEAD in Python, with augkit's decoder and crop rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import augkit
import mobilenet_like
import separable
from augkit.core.errors import UsageError
from augkit.stages.backbones import resolve_backbone
from augkit.stages.features import cache_features
from augkit.stages.head import HeadOptions, train_head
from augkit.stages.preprocess import crop_to_input


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classifier")
    mobilenet_like.save(mobilenet_like.tiny(seed=5), root / "tiny.onnx")
    separable.write_dataset(root / "images", per_class=5, seed=0)
    cache_features(root / "images", root / "cache", backbone=resolve_backbone(str(root / "tiny.onnx"), input_size=64),
                   workers=0)
    train_head(root / "cache", root / "head", options=HeadOptions(val_fraction=0))
    return root / "head"


def test_predict_gives_the_best_class_its_probability_and_the_top_classes(head):
    classifier = augkit.Classifier(head)
    path = head.parent / "images" / "green_dots" / "green_dots_01.png"
    result = classifier.predict(path, top_k=2)
    assert result.label == result.top[0][0] and result.probability == result.top[0][1]
    assert len(result.top) == 2 and result.top[0][1] >= result.top[1][1]
    assert set(result.probabilities) == set(separable.CLASSES)
    assert sum(result.probabilities.values()) == pytest.approx(1, abs=1e-5)


def test_a_path_and_its_decoded_array_give_the_same_prediction(head):
    classifier = augkit.Classifier(head)
    path = head.parent / "images" / "red_stripes" / "red_stripes_02.png"
    assert classifier.predict(str(path)) == classifier.predict(augkit.decode_image(path))


def test_it_frames_images_as_cache_features_did_and_runs_model_onnx(head):
    classifier = augkit.Classifier(head)
    path = head.parent / "images" / "blue_checker" / "blue_checker_00.png"  # 96x72: cropped to 64x64
    crop = crop_to_input(augkit.decode_image(path), classifier.preprocessing)
    session = ort.InferenceSession(str(head / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": crop[None]})[0][0]
    got = classifier.predict(path).probabilities
    assert np.allclose([got[c] for c in classifier.classes], expected, atol=1e-6)


def test_a_list_of_images_gives_a_list_of_predictions_in_order(head):
    classifier = augkit.Classifier(head)
    paths = sorted((head.parent / "images").rglob("*.png"))
    many = classifier.predict(paths, batch_size=4)
    assert many == [classifier.predict(p) for p in paths]


def test_the_model_file_alone_is_a_classifier(head):
    assert augkit.Classifier(head / "model.onnx").classes == list(separable.CLASSES)


def test_a_head_left_half_written_is_refused(head, tmp_path):
    copy = Path(shutil.copytree(head, tmp_path / "head"))
    record = json.loads((copy / "head.json").read_text())
    (copy / "head.json").write_text(json.dumps({**record, "complete": False}))
    with pytest.raises(UsageError, match="incomplete"):
        augkit.Classifier(copy)


def test_an_onnx_file_augkit_did_not_write_is_refused(tmp_path):
    mobilenet_like.save(mobilenet_like.tiny(), tmp_path / "plain.onnx")
    with pytest.raises(UsageError, match="not a classifier augkit train-head wrote"):
        augkit.Classifier(tmp_path / "plain.onnx")
    with pytest.raises(UsageError, match="not found"):
        augkit.Classifier(tmp_path / "missing")


def test_an_array_that_is_not_an_rgb_image_is_refused(head):
    with pytest.raises(UsageError, match="RGB uint8"):
        augkit.Classifier(head).predict(np.zeros((64, 64), np.uint8))
