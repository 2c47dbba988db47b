"""augkit.stages.preprocess: the presets, the one affine map and its three forms, the one
resize rule, and flow and cache-features giving a network the same input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image

import augkit
from augkit.cli import cli
from augkit.stages.backbones import PIXELS, feature_model, resolve_backbone
from augkit.stages.preprocess import Affine, Preprocess, crop_to_input, normalize, preset, resize
from imagefiles import encoded, write_tree


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Texture at every scale, as photos have (fur, grass, leaves): white noise blurred at
    four widths and summed, channels correlated but not equal, plus a few hard edges."""
    rng = np.random.default_rng(seed)
    layers = []
    for sigma, weight in ((0.8, 30), (2.0, 30), (6.0, 40), (20.0, 60)):
        noise = rng.normal(0, 1, (height, width, 3)).astype(np.float32)
        noise[..., 1] = 0.6 * noise[..., 0] + 0.4 * noise[..., 1]
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        layers.append(weight * blurred / (blurred.std() + 1e-6))
    image = 128 + sum(layers)
    image[height // 3: height // 2, width // 4: width // 2] += 50  # an object's edges
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def torchvision_eval(rgb: np.ndarray, shorter: int = 256, size: int = 224) -> np.ndarray:
    """The ONNX-zoo evaluation, as torchvision does it: ``Resize(shorter)`` with Pillow's
    bilinear (antialiased; the longer side ``int(shorter * longer / shorter_side)``), then
    ``CenterCrop(size)`` (the corner ``int(round((new - size) / 2))``)."""
    h, w = rgb.shape[:2]
    new_h, new_w = (shorter, int(shorter * w / h)) if h <= w else (int(shorter * h / w), shorter)
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return resized[top:top + size, left:left + size]


def grey_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


# --- the one resize rule is faithful ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(375, 500), (500, 375), (333, 500), (640, 427), (180, 150)],
                         ids=["landscape", "portrait", "3:2", "shrunk-2x-and-more", "enlarged"])
def test_the_backbone_input_is_torchvisions_resize_256_centre_224_within_a_grey_level(shape):
    prep = resolve_backbone("mobilenet_v2").preprocessing
    rgb = photo_like(*shape, seed=sum(shape))
    difference = grey_levels(crop_to_input(rgb, prep), torchvision_eval(rgb))
    assert difference.max() <= 1 and difference.mean() < 0.02


def test_the_photo_like_images_are_textured_enough_that_a_plain_resize_fails_the_bar():
    """What the test above would catch: OpenCV's bilinear without antialiasing, on the same
    framing, is more than a grey level off on average."""
    rgb = photo_like(375, 500)
    plain = cv2.resize(rgb, (341, 256), interpolation=cv2.INTER_LINEAR)[16:240, 58:282]
    assert grey_levels(plain, torchvision_eval(rgb)).mean() > 1


@pytest.mark.parametrize("size", [(224, 224), (100, 300), (600, 800)], ids=["shrunk", "mixed", "enlarged"])
def test_flows_size_is_pillows_bilinear_resize_of_the_whole_image_within_a_grey_level(size):
    rgb = photo_like(375, 500, seed=3)
    h, w = size
    expected = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    got = resize(rgb, size)
    assert got.shape == (h, w, 3) and got.flags.writeable
    assert grey_levels(got, expected).max() <= 1


def test_an_image_already_at_the_size_is_kept_as_it_is():
    rgb = photo_like(64, 48)
    assert resize(rgb, (64, 48)) is rgb


# --- the presets reduce to one affine map, and its three forms agree -----------------------------


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_the_lookup_table_numpy_and_onnx_forms_of_a_preset_give_the_same_float32_values(mode):
    affine = preset(mode)
    image = np.random.default_rng(0).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    by_numpy = affine.numpy(image, channels_first=True)
    by_table = np.empty((3, 5, 6), np.float32)
    affine.write(image[0], by_table, channels_first=True)
    ordered = image[..., ::-1] if affine.bgr else image  # the ONNX form takes the channels in output order
    nodes, initializers = affine.onnx("pixels", "x", "pre", channels_first=True)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["n", 5, 6, 3])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    by_onnx = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"pixels": np.ascontiguousarray(ordered)})[0]
    assert np.array_equal(by_numpy[0], by_table) and np.array_equal(by_numpy, by_onnx)


def test_flows_torch_preset_and_the_zoo_backbones_normalisation_are_one_map():
    zoo = resolve_backbone("mobilenet_v2").preprocessing
    assert Preprocess.parse("torch").affine == zoo.affine == Affine.of(zoo.mean, zoo.std)


def test_caffe_is_the_bgr_means_subtracted_on_the_0_255_scale():
    affine = preset("caffe")
    assert affine.bgr and affine.scale == (1.0, 1.0, 1.0) and affine.offset == (-103.939, -116.779, -123.68)


def test_normalize_maps_pixels_already_in_the_models_channel_order():
    prep = resolve_backbone("googlenet").preprocessing  # BGR, 0..255, mean subtracted
    bgr = np.random.default_rng(2).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    expected = (bgr.astype(np.float64) - np.array(prep.mean)) / np.array(prep.std)
    np.testing.assert_allclose(normalize(bgr, prep), expected.transpose(2, 0, 1), atol=1e-4)


# --- flow and cache-features give a network the same input -------------------------------------


def pass_through_model(path: Path, size: int) -> Path:
    """A "backbone" whose features are its input: the network input, flattened."""
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["pixels_out"])], "pass_through",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("pixels_out", TensorProto.FLOAT, ["N", 3, size, size])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


# The backbone options that say what each flow preset says.
BACKBONE_OPTIONS = {
    "torch": [],  # the ONNX-zoo default: [0, 1], ImageNet mean and std, RGB
    "tf": ["--range", "-1,1", "--mean", "0,0,0", "--std", "1,1,1"],
    "caffe": ["--channels", "BGR", "--range", "0,255", "--mean", "103.939,116.779,123.68", "--std", "1,1,1"],
}


@pytest.mark.parametrize("mode", ["torch", "tf", "caffe"])
def test_flow_and_cache_features_give_the_same_network_input_for_the_same_image_and_settings(mode, tmp_path):
    """Square images, so that flow's size= (the whole image) and the backbone's centre
    crop (the shorter side, all of a square) keep the same pixels: shrunk by less and by
    more than 2x, enlarged, and already at the size."""
    size = 64
    sides = [100, 150, 40, 64]
    data = write_tree(tmp_path / "data", {f"c/{i}.png": encoded(photo_like(s, s, seed=i), "PNG")
                                          for i, s in enumerate(sides)})
    with augkit.flow(data, None, size=size, preprocess=mode, channels_first=True, shuffle=False, workers=0,
                     batch_size=len(sides)) as batches:
        x, _ = next(iter(batches))
    model = pass_through_model(tmp_path / "pass.onnx", size)
    cache = tmp_path / "cache"
    result = CliRunner().invoke(cli, ["cache-features", str(data), "-o", str(cache), "--backbone", str(model),
                                      "--input-size", str(size), "--resize", str(size), "--feature-node", "pixels_out",
                                      "--dtype", "float32", "-w", "0", "--quiet", *BACKBONE_OPTIONS[mode]])
    assert result.exit_code == 0, result.output
    features, _, _, manifest = augkit.load_features(cache)
    assert [m["path"] for m in manifest] == [f"c/{i}.png" for i in range(len(sides))]
    assert np.array_equal(features.reshape(x.shape), x)


def test_the_in_graph_normalisation_is_the_numpy_form(tmp_path):
    size = 32
    model = pass_through_model(tmp_path / "pass.onnx", size)
    backbone = resolve_backbone(str(model), input_size=size, feature_node="pixels_out")
    cut = feature_model(model, backbone, pixels=True)
    pixels = np.random.default_rng(4).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    session = ort.InferenceSession(cut.model_bytes, providers=["CPUExecutionProvider"])
    assert cut.input_name == PIXELS
    assert np.array_equal(session.run(None, {PIXELS: pixels})[0], normalize(pixels, backbone.preprocessing))


def test_a_cache_made_by_the_earlier_resize_rule_is_refused_as_made_with_other_preprocessing(tmp_path):
    data = write_tree(tmp_path / "data", {"c/0.png": encoded(photo_like(90, 120), "PNG")})
    model = pass_through_model(tmp_path / "pass.onnx", 32)
    cache = tmp_path / "cache"
    args = ["cache-features", str(data), "-o", str(cache), "--backbone", str(model), "--input-size", "32",
            "--feature-node", "pixels_out", "-w", "0", "--quiet"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["preprocessing"]["resample"] == "bilinear-antialiased"
    del meta["preprocessing"]["resample"]  # what earlier builds recorded
    (cache / "meta.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "other settings" in result.output and "preprocessing" in result.output
