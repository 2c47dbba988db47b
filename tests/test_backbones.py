"""Backbones: the registry, resolving settings, downloading weights, cutting the graph."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import mobilenet_like
from augkit.stages.backbones import (DEFAULTS, cached_path, feature_model, mirror_url, registry, resolve_backbone,
                              weights_file)
from augkit.core.errors import AugkitError, UsageError

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "backbones.md"


# --- a model server on 127.0.0.1 ------------------------------------------------------------


class ModelServer:
    """Serves ``files`` at /files/NAME; /truncated/NAME announces the whole length, sends
    half and closes; /redirect/NAME answers 302 to /files/NAME (as GitHub does to LFS)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.hits.append(self.path)
                kind, _, name = self.path.strip("/").partition("/")
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                if kind == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"/files/{name}")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data if kind == "files" else data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ModelServer()
    yield s
    s.close()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "augkit-cache"
    monkeypatch.setenv("AUGKIT_CACHE_DIR", str(path))
    monkeypatch.delenv("AUGKIT_MIRROR", raising=False)
    return path


@pytest.fixture(scope="module")
def tiny_bytes() -> bytes:
    return mobilenet_like.tiny().SerializeToString()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_file(tmp_path: Path, url: str, data: bytes, **extra) -> Path:
    lines = [f"url: {url}", f"sha256: {sha(data)}", f"size: {len(data)}", "input_size: 64", "feature_dim: 48"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = tmp_path / "served.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.rglob("*") if p.is_file()) if cache_dir.exists() else []


# --- the registry -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "resnet18", "googlenet", "efficientnet_lite4"])
def test_every_required_backbone_is_registered_with_a_complete_entry(name):
    entry = registry()[name]
    for key in ("url", "sha256", "size", "input_size", "range", "mean", "std", "channels", "layout", "pooled",
                "feature_dim", "license", "top1", "description"):
        assert entry.get(key) is not None, key
    assert entry["url"].startswith("https://github.com/onnx/models/raw/main/validated/vision/classification/")


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference notes are not on this machine")
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "resnet18", "googlenet", "efficientnet_lite4"])
def test_registry_url_checksum_and_size_match_the_reference_notes(name):
    entry = registry()[name]
    row = next(line for line in REFERENCE.read_text().splitlines() if entry["sha256"] in line)
    assert entry["url"].rsplit("classification/", 1)[1] in row
    assert f"{entry['size']:,}" in row


def test_mobilenet_v2_is_the_default_with_the_zoo_preprocessing():
    backbone = resolve_backbone()
    assert backbone.name == "mobilenet_v2" and backbone.feature_dim == 1280
    prep = backbone.preprocessing
    assert (prep.input_size, prep.resize, prep.channels, prep.layout) == (224, 256, "RGB", "NCHW")
    assert prep.range == (0.0, 1.0) and prep.mean == (0.485, 0.456, 0.406) and prep.std == (0.229, 0.224, 0.225)


def test_efficientnet_lite4_is_nhwc_scaled_to_minus_one_one():
    prep = resolve_backbone("efficientnet_lite4").preprocessing
    assert prep.layout == "NHWC"
    scale, offset = prep.scale_offset()
    assert np.allclose([0 * s + o for s, o in zip(scale, offset)], -127 / 128)
    assert np.allclose([255 * s + o for s, o in zip(scale, offset)], 1.0)


def test_explicit_options_beat_the_entry_which_beats_the_defaults(tmp_path):
    backbone = resolve_backbone("googlenet", input_size=320, mean=[1, 2, 3])
    prep = backbone.preprocessing
    assert prep.input_size == 320 and prep.resize == round(320 * 256 / 224)  # the entry's 224-based resize no longer applies
    assert prep.mean == (1.0, 2.0, 3.0) and prep.std == (1.0, 1.0, 1.0) and prep.channels == "BGR"
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    bare = resolve_backbone(str(model), layout="NHWC")
    assert bare.preprocessing.layout == "NHWC"
    assert list(bare.preprocessing.mean) == DEFAULTS["mean"] and bare.preprocessing.input_size == 224
    assert bare.pooled == "last_global_pool" and bare.name == "model"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UsageError, match=r"unknown backbone 'mobilenet_v3'; did you mean mobilenet_v2\?"):
        resolve_backbone("mobilenet_v3")


def test_a_missing_onnx_or_yaml_file_says_so():
    with pytest.raises(UsageError, match="nowhere.onnx: ONNX file not found"):
        resolve_backbone("nowhere.onnx")
    with pytest.raises(UsageError, match="backbone file not found"):
        resolve_backbone("nowhere.yaml")


def test_a_user_yaml_entry_is_checked_key_by_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("url: https://example.org/m.onnx\nsha256: " + "a" * 64 + "\ninput_sise: 64\n")
    with pytest.raises(UsageError, match=r"mine.yaml: unknown key 'input_sise'; did you mean 'input_size'\?"):
        resolve_backbone(str(path))
    path.write_text("url: https://example.org/m.onnx\n")
    with pytest.raises(UsageError, match="sha256 is required with a URL"):
        resolve_backbone(str(path))
    path.write_text("url: weights/m.onnx\nchannels: BGR\nlayout: nhwc\nmean: [1, 2, 3]\n")
    backbone = resolve_backbone(str(path))
    assert backbone.url == str(tmp_path / "weights" / "m.onnx")  # relative to the YAML file
    assert backbone.preprocessing.layout == "NHWC" and backbone.preprocessing.channels == "BGR"
    path.write_text("mine:\n  url: m.onnx\n  std: [1, 0, 1]\n")
    with pytest.raises(UsageError, match="std must not contain 0"):
        resolve_backbone(str(path))


def test_resize_smaller_than_the_input_is_refused():
    with pytest.raises(UsageError, match="resize .100. must be at least the input size .224."):
        resolve_backbone("mobilenet_v2", resize=100)


def test_cache_dir_follows_the_environment(cache_dir):
    path = cached_path(resolve_backbone("mobilenet_v2"))
    assert path.parent == cache_dir / "backbones" and path.name.startswith("mobilenetv2-12-c0c3f76d93fa")


def test_mirror_replaces_the_host():
    url = "https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-12.onnx"
    assert mirror_url(url, "http://mirror.local/onnx/") == "http://mirror.local/onnx/mobilenetv2-12.onnx"
    assert mirror_url(url, "http://m/{path}").endswith("/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-12.onnx")


# --- downloading ------------------------------------------------------------------------------


def test_download_verifies_caches_and_reuses(server, cache_dir, tmp_path, tiny_bytes):
    server.files["tiny.onnx"] = tiny_bytes
    backbone = resolve_backbone(str(entry_file(tmp_path, server.url("redirect/tiny.onnx"), tiny_bytes)))
    path, digest = weights_file(backbone)
    assert path.read_bytes() == tiny_bytes and digest == sha(tiny_bytes)
    assert path.parent == cache_dir / "backbones" and leftovers(cache_dir) == [path.name]
    hits = len(server.hits)
    assert weights_file(backbone)[0] == path
    assert len(server.hits) == hits  # served from the cache


def test_a_corrupt_download_is_refused_and_not_kept(server, cache_dir, tmp_path, tiny_bytes):
    server.files["tiny.onnx"] = tiny_bytes[:-10] + bytes(10)
    backbone = resolve_backbone(str(entry_file(tmp_path, server.url("files/tiny.onnx"), tiny_bytes)))
    with pytest.raises(AugkitError, match=r"sha256 of the download is [0-9a-f]{64}, expected .*not kept.*--weights PATH"):
        weights_file(backbone)
    assert leftovers(cache_dir) == []


def test_a_download_cut_short_is_reported_and_not_kept(server, cache_dir, tmp_path, tiny_bytes):
    server.files["tiny.onnx"] = tiny_bytes
    backbone = resolve_backbone(str(entry_file(tmp_path, server.url("truncated/tiny.onnx"), tiny_bytes)))
    with pytest.raises(AugkitError, match=rf"stopped after {len(tiny_bytes) // 2:,} of {len(tiny_bytes):,} bytes; nothing was kept"):
        weights_file(backbone)
    assert leftovers(cache_dir) == []


def test_no_server_names_the_url_and_the_local_file_option(server, cache_dir, tmp_path, tiny_bytes):
    url = server.url("files/tiny.onnx")
    server.close()  # nothing listens on that port any more
    backbone = resolve_backbone(str(entry_file(tmp_path, url, tiny_bytes)))
    with pytest.raises(AugkitError) as info:
        weights_file(backbone)
    message = str(info.value)
    assert url in message and "--weights PATH" in message and "\n" not in message
    assert leftovers(cache_dir) == []


def test_http_errors_name_the_status(server, cache_dir, tmp_path, tiny_bytes):
    backbone = resolve_backbone(str(entry_file(tmp_path, server.url("files/missing.onnx"), tiny_bytes)))
    with pytest.raises(AugkitError, match="HTTP 404"):
        weights_file(backbone)
    assert leftovers(cache_dir) == []


def test_a_mirror_serves_what_the_public_host_cannot(server, cache_dir, tmp_path, tiny_bytes, monkeypatch):
    server.files["tiny.onnx"] = tiny_bytes
    backbone = resolve_backbone(str(entry_file(tmp_path, "https://blocked.invalid/models/tiny.onnx", tiny_bytes)))
    monkeypatch.setenv("AUGKIT_MIRROR", server.url("files"))
    path, _ = weights_file(backbone)
    assert path.read_bytes() == tiny_bytes and server.hits == ["/files/tiny.onnx"]


def test_a_damaged_cached_file_is_fetched_again_and_stale_partials_are_swept(server, cache_dir, tmp_path, tiny_bytes):
    server.files["tiny.onnx"] = tiny_bytes
    backbone = resolve_backbone(str(entry_file(tmp_path, server.url("files/tiny.onnx"), tiny_bytes)))
    path, _ = weights_file(backbone)
    path.write_bytes(b"garbage")
    (path.parent / f".{path.name}.part-999999999").write_bytes(b"half")  # a download killed with -9
    assert weights_file(backbone)[0].read_bytes() == tiny_bytes
    assert leftovers(cache_dir) == [path.name]


def test_explicit_weights_are_used_as_given(tmp_path, tiny_bytes):
    local = tmp_path / "local.onnx"
    local.write_bytes(tiny_bytes)
    path, digest = weights_file(resolve_backbone("mobilenet_v2", weights=str(local)))
    assert path == local and digest == sha(tiny_bytes)
    with pytest.raises(UsageError, match="weights file not found"):
        resolve_backbone("mobilenet_v2", weights=str(tmp_path / "nope.onnx"))


# --- the graph cut ----------------------------------------------------------------------------


def run(model_bytes: bytes, feed: dict, outputs=None):
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(outputs, feed)


def cut(tmp_path: Path, model: onnx.ModelProto, name="model.onnx", **options):
    path = tmp_path / name
    mobilenet_like.save(model, path)
    return feature_model(path, resolve_backbone(str(path), **options))


def test_the_cut_output_is_the_global_average_of_the_last_feature_map(tmp_path):
    model = mobilenet_like.tiny(seed=3)
    features = cut(tmp_path, model, input_size=64)
    assert (features.input_name, features.output_name, features.feature_dim) == ("input", "pooled", 48)
    x = np.random.default_rng(0).normal(size=(5, 3, 64, 64)).astype(np.float32)
    pooled = run(features.model_bytes, {"input": x})[0].reshape(5, -1)
    fmap = run(mobilenet_like.with_output(model, "last_feature_map").SerializeToString(), {"input": x},
               ["last_feature_map"])[0]
    assert fmap.shape[1:] == (48, 8, 8)
    np.testing.assert_allclose(pooled, fmap.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    ops = {n.op_type for n in onnx.load_from_string(features.model_bytes).graph.node}
    assert "Gemm" not in ops and "Flatten" not in ops  # the classifier is gone


def test_the_full_size_mobilenet_v2_shape_cuts_at_1280_features(tmp_path):
    path = tmp_path / "mobilenetv2.onnx"
    data = mobilenet_like.save(mobilenet_like.full(), path)
    assert abs(len(data) - registry()["mobilenet_v2"]["size"]) < 0.01 * len(data)  # the zoo file's parameter count
    features = feature_model(path, resolve_backbone("mobilenet_v2", weights=str(path)))
    assert features.feature_dim == 1280 and features.output_name == "pooled"


def test_a_batch_one_file_runs_any_batch_after_the_cut(tmp_path):
    features = cut(tmp_path, mobilenet_like.tiny(batch=1), input_size=64)
    assert features.fixed_batch == 1
    out = run(features.model_bytes, {"input": np.zeros((4, 3, 64, 64), np.float32)})[0]
    assert out.shape[:2] == (4, 48)


def small_graph(tail: str, *, nhwc: bool = False) -> onnx.ModelProto:
    """Conv -> Relu -> (tail) -> Gemm: tail is reduce_mean, average_pool or flatten (no pool)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(6, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(4, 6 if tail != "flatten" else 6 * 8 * 8)).astype(np.float32), "fc")]
    nodes = []
    x = "input"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]))
        x = "nchw"
    nodes += [helper.make_node("Conv", [x, "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
              helper.make_node("Relu", ["conv"], ["relu"], name="relu")]
    if tail == "reduce_mean":  # a TensorFlow export: NHWC, mean over axes 1 and 2
        nodes += [helper.make_node("Transpose", ["relu"], ["nhwc_out"], perm=[0, 2, 3, 1]),
                  helper.make_node("ReduceMean", ["nhwc_out"], ["mean"], axes=[1, 2], keepdims=0, name="mean")]
        last = "mean"
    elif tail == "average_pool":  # Caffe's GoogLeNet: a 7x7-style pool over the whole map
        nodes += [helper.make_node("AveragePool", ["relu"], ["avg"], kernel_shape=[8, 8], name="pool5"),
                  helper.make_node("Dropout", ["avg"], ["drop"]),
                  helper.make_node("Reshape", ["drop", "shape"], ["flat"])]
        inits.append(numpy_helper.from_array(np.array([-1, 6], np.int64), "shape"))
        last = "flat"
    else:
        nodes.append(helper.make_node("Flatten", ["relu"], ["flat"]))
        last = "flat"
    nodes.append(helper.make_node("Gemm", [last, "fc"], ["scores"], transB=1, name="classifier"))
    shape = [1, 8, 8, 3] if nhwc else [1, 3, 8, 8]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_spatial_reduce_mean_of_an_nhwc_export_is_found(tmp_path):
    features = cut(tmp_path, small_graph("reduce_mean", nhwc=True), input_size=8, layout="NHWC")
    assert features.output_name == "mean" and features.feature_dim == 6


def test_an_average_pool_with_a_one_by_one_output_is_found(tmp_path):
    features = cut(tmp_path, small_graph("average_pool"), input_size=8)
    assert features.output_name == "avg" and features.feature_dim == 6
    by_rule = cut(tmp_path, small_graph("average_pool"), name="rule.onnx", input_size=8, pooled="classifier_input")
    assert by_rule.output_name == "avg"  # walked back through Reshape and Dropout


def test_no_pool_is_a_clear_error_naming_the_option(tmp_path):
    with pytest.raises(AugkitError, match=r"no pooled-feature tensor found by the rule 'last_global_pool'; name it with --feature-node NAME"):
        cut(tmp_path, small_graph("flatten"), input_size=8)
    features = cut(tmp_path, small_graph("flatten"), name="named.onnx", input_size=8, feature_node="relu")
    assert features.output_name == "relu" and features.feature_dim == 6 * 8 * 8
    by_node_name = cut(tmp_path, small_graph("flatten"), name="node.onnx", input_size=8, feature_node="conv")
    assert by_node_name.output_name == "conv"
    with pytest.raises(UsageError, match=r"--feature-node 'rellu' is not a tensor or node of the graph; did you mean relu"):
        cut(tmp_path, small_graph("flatten"), name="typo.onnx", input_size=8, feature_node="rellu")


def test_weights_that_do_not_fit_the_entry_are_refused(tmp_path):
    path = tmp_path / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(), path)
    with pytest.raises(AugkitError, match=r"has 48 values per image, the backbone entry says 1280: wrong weights"):
        feature_model(path, resolve_backbone("mobilenet_v2", weights=str(path)))


def test_a_file_that_is_not_onnx_is_named(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"<html>not a model</html>")
    with pytest.raises(AugkitError, match="broken.onnx: not a readable ONNX model"):
        feature_model(path, resolve_backbone(str(path)))



@pytest.mark.parametrize("name", ["mobilenet_v2", "googlenet", "efficientnet_lite4"])
def test_the_pixels_model_normalises_in_graph_exactly_as_the_entry_says(tmp_path, name):
    from augkit.stages.features import normalize

    layout = registry()[name]["layout"]
    model = mobilenet_like.tiny()
    if layout == "NHWC":  # the tiny model is NCHW: give it an NHWC front as a TensorFlow export has
        model = _nhwc_front(model)
    path = tmp_path / "model.onnx"
    mobilenet_like.save(model, path)
    backbone = dataclasses.replace(resolve_backbone(name, weights=str(path), input_size=64), feature_dim=None)
    pixels = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    with_pixels = feature_model(path, backbone, pixels=True)
    plain = feature_model(path, backbone)
    got = run(with_pixels.model_bytes, {with_pixels.input_name: pixels})[0]
    expected = run(plain.model_bytes, {plain.input_name: normalize(pixels, backbone.preprocessing)})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _nhwc_front(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    for node in graph.node:
        node.input[:] = ["input_nchw" if i == "input" else i for i in node.input]
    graph.node.insert(0, helper.make_node("Transpose", ["input"], ["input_nchw"], perm=[0, 3, 1, 2]))
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64, 64, 3]))
    return copy


def test_an_input_size_the_model_does_not_take_names_the_option(tmp_path):
    path = tmp_path / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(), path)
    with pytest.raises(UsageError, match=r"the model takes 64x64 images, the preprocessing makes 224x224; pass --input-size 64"):
        feature_model(path, resolve_backbone(str(path)))
    with pytest.raises(UsageError, match=r"not 3-channel NHWC; pass --layout NCHW"):
        feature_model(path, resolve_backbone(str(path), input_size=64, layout="NHWC"))
