"""augkit.stages.head.export: model.onnx, the cut backbone + head + softmax with the
preprocessing inside, and finding the backbone a cache was made with."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

import mobilenet_like
import separable
from augkit.core.errors import UsageError
from augkit.stages.backbones import resolve_backbone
from augkit.stages.features import FeatureOptions, cache_features, load_features
from augkit.stages.head import HeadOptions, train_head
from augkit.stages.head.export import backbone_file
from imagefiles import encoded


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    mobilenet_like.save(mobilenet_like.tiny(seed=2), root / "tiny.onnx")
    separable.write_dataset(root / "images", per_class=4, seed=0, size=(64, 64))
    return root


def head_of(made: Path, name: str, dtype: str = "float16", **preprocessing) -> Path:
    """A cache of the 64x64 images (``preprocessing``: options of the backbone) and a head on it."""
    if not (made / name / "head").exists():
        backbone = resolve_backbone(str(made / "tiny.onnx"), input_size=64, **preprocessing)
        cache_features(made / "images", made / name / "cache", backbone=backbone, options=FeatureOptions(dtype=dtype),
                       workers=0)
        train_head(made / name / "cache", made / name / "head", options=HeadOptions(val_fraction=0))
    return made / name


def head_probabilities(folder: Path):
    features, *_ = load_features(folder / "cache")
    head = np.load(folder / "head" / "head.npz")
    z = np.asarray(features, np.float32) @ head["weight"].T + head["bias"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def model_probabilities(folder: Path):
    _, _, _, manifest = load_features(folder / "cache")
    images = np.stack([np.asarray(Image.open(folder.parent / "images" / r["path"]).convert("RGB")) for r in manifest])
    session = ort.InferenceSession(str(folder / "head" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})[0]


def test_the_model_takes_uint8_rgb_at_the_input_size_and_gives_class_probabilities(made):
    model = onnx.load(str(head_of(made, "rgb") / "head" / "model.onnx"))
    (image,), (output,) = model.graph.input, model.graph.output
    dims = [d.dim_value or d.dim_param for d in image.type.tensor_type.shape.dim]
    assert image.name == "image" and image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims == ["batch", 64, 64, 3]
    assert output.name == "probabilities" and [d.dim_value or d.dim_param for d in output.type.tensor_type.shape.dim] == [
        "batch", 3]
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["augkit.classes"] == list(separable.CLASSES)
    assert meta["augkit.preprocessing"]["input_size"] == 64 and meta["augkit.head"]["C"] == 1.0


def test_its_probabilities_are_the_heads_on_the_cached_float16_features(made):
    folder = head_of(made, "rgb")
    assert np.allclose(model_probabilities(folder), head_probabilities(folder), atol=1e-5)


def test_a_bgr_backbone_still_takes_rgb_images(made):
    folder = head_of(made, "bgr", channels="BGR")
    assert np.allclose(model_probabilities(folder), head_probabilities(folder), atol=1e-5)
    assert not np.allclose(head_probabilities(folder), head_probabilities(head_of(made, "rgb")), atol=1e-3)


def test_a_float32_cache_gives_a_model_without_the_float16_rounding(made):
    folder = head_of(made, "f32", dtype="float32")
    model = onnx.load(str(folder / "head" / "model.onnx"))
    assert not [n for n in model.graph.node if n.op_type == "Cast" and n.output[0].startswith("augkit_features")]
    assert np.allclose(model_probabilities(folder), head_probabilities(folder), atol=1e-5)


def test_the_backbone_is_found_where_cache_features_found_it(made):
    cache = made / "rgb" / "cache"
    meta = json.loads((cache / "meta.json").read_text())
    assert backbone_file(meta, cache) == made / "tiny.onnx"


def test_a_backbone_moved_away_is_named_with_the_fix(made, tmp_path):
    cache = made / "rgb" / "cache"
    meta = json.loads((cache / "meta.json").read_text())
    moved = shutil.copy(made / "tiny.onnx", tmp_path / "elsewhere.onnx")
    gone = str(tmp_path / "gone.onnx")
    meta.update(weights_file=gone, weights_url=gone, backbone_source=gone)
    with pytest.raises(UsageError, match=r"is not found here; pass its .onnx file with --weights PATH"):
        backbone_file(meta, cache)
    assert backbone_file(meta, cache, weights=moved) == Path(moved)


def test_weights_of_another_backbone_are_refused(made, tmp_path):
    cache = made / "rgb" / "cache"
    meta = json.loads((cache / "meta.json").read_text())
    other = tmp_path / "other.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=9), other)
    with pytest.raises(UsageError, match="not the backbone .* was made with"):
        backbone_file(meta, cache, weights=other)


def test_the_model_classifies_a_png_with_onnx_runtime_alone(made, tmp_path):
    folder = head_of(made, "rgb")
    png = encoded(separable.image("red_stripes", 12345, 64, 64), "PNG")
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[None]
    session = ort.InferenceSession(str(folder / "head" / "model.onnx"), providers=["CPUExecutionProvider"])
    p = session.run(None, {"image": pixels})[0][0]
    assert p.shape == (3,) and abs(float(p.sum()) - 1) < 1e-5
