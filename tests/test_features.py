"""`augkit cache-features` and `augkit.load_features`: a frozen backbone's features, once."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import augkit
import mobilenet_like
from augkit.stages.backbones import resolve_backbone
from augkit.core.errors import AugkitError
from augkit.stages.features import FeatureOptions, cache_features, load_features, to_input
from augkit.recipes import load_recipe
from augkit.core.seeds import derive_seed
from conftest import make_structured_rgb
from imagefiles import encoded, tree_bytes, write_tree
from interrupting import run_interrupted
from test_backbones import ModelServer, entry_file, leftovers, sha
from clirun import read_csv, run

RECIPE = """\
transforms:
  - HorizontalFlip: {p: 0.5}
  - RandomBrightnessContrast: {p: 1.0}
"""
SIZES = [(90, 120), (120, 90), (64, 64), (50, 70), (100, 100)]  # landscape, portrait, exact, enlarged, square


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=1), path)
    return path


@pytest.fixture(scope="module")
def full_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "mobilenetv2-random.onnx"
    mobilenet_like.save(mobilenet_like.full(seed=2), path)
    return path


@pytest.fixture
def dataset(tmp_path) -> Path:
    """PNGs (decoded identically by every library) in two class folders, of varied shapes."""
    files = {}
    for c, name in enumerate(("cat", "dog")):
        for i, (h, w) in enumerate(SIZES):
            files[f"{name}/{name}_{i}.png"] = encoded(make_structured_rgb(h, w, seed=10 * c + i), "PNG")
    return write_tree(tmp_path / "data", files)


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGKIT_CACHE_DIR", str(tmp_path / "augkit-cache"))
    monkeypatch.delenv("AUGKIT_MIRROR", raising=False)


def tiny_args(model: Path, *extra) -> list:
    return ["--backbone", model, "--input-size", 64, "--dtype", "float32", "--quiet", *extra]


# --- the reference computation ----------------------------------------------------------------


def zoo_region(h: int, w: int, resize: int, size: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of what torchvision's ``Resize(resize)`` then
    ``CenterCrop(size)`` keep, in the image's pixels: the longer side becomes ``int(resize *
    longer / shorter)``, the crop's corner is rounded as ``CenterCrop`` rounds it."""
    new_h, new_w = (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    sx, sy = w / new_w, h / new_h
    return left * sx, top * sy, (left + size) * sx, (top + size) * sy


def reference_input(rgb: np.ndarray, prep) -> np.ndarray:
    """The entry's preprocessing written out: that region resized to ``input_size`` by
    Pillow's antialiased bilinear (the width, then the height, as Pillow resizes a whole
    image), channel order, 0..255 onto ``range``, (x - mean) / std in float64, layout. An
    image already at the input size is used as it is."""
    size = prep.input_size
    h, w = rgb.shape[:2]
    if (h, w) != (size, size):
        left, top, right, bottom = zoo_region(h, w, prep.resize, size)
        image = Image.fromarray(rgb).resize((size, h), Image.BILINEAR, box=(left, 0, right, h))
        rgb = np.asarray(image.resize((size, size), Image.BILINEAR, box=(0, top, size, bottom)))
    x = rgb.astype(np.float64)
    if prep.channels == "BGR":
        x = x[:, :, ::-1]
    lo, hi = prep.range
    x = (x / 255 * (hi - lo) + lo - np.array(prep.mean)) / np.array(prep.std)
    return x.transpose(2, 0, 1) if prep.layout == "NCHW" else x


def reference_features(model_path: Path, inputs: np.ndarray) -> np.ndarray:
    """Global average of the uncut model's last feature map."""
    import onnx

    model = mobilenet_like.with_output(onnx.load(str(model_path)), "last_feature_map")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    fmap = session.run(["last_feature_map"], {"input": inputs.astype(np.float32)})[0]
    return fmap.mean(axis=(2, 3))


def read_png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# --- preprocessing ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mobilenet_v2", "googlenet", "efficientnet_lite4"])
@pytest.mark.parametrize("shape", [(300, 400), (400, 300), (224, 224), (150, 180)])
def test_preprocessing_matches_the_entry_exactly(name, shape):
    prep = resolve_backbone(name).preprocessing
    rgb = make_structured_rgb(*shape, seed=sum(shape))
    got = to_input(rgb, prep)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == ((3, 224, 224) if prep.layout == "NCHW" else (224, 224, 3))
    np.testing.assert_allclose(got, reference_input(rgb, prep), rtol=0, atol=2e-5)


def test_an_image_already_at_the_input_size_is_not_resized():
    prep = resolve_backbone("mobilenet_v2").preprocessing
    rgb = make_structured_rgb(224, 224)
    expected = (rgb[:, :, 0] / 255 - 0.485) / 0.229
    np.testing.assert_allclose(to_input(rgb, prep)[0], expected, atol=2e-5)


# --- computing the cache ----------------------------------------------------------------------


def test_features_equal_the_reference_computation(tiny_model, dataset, tmp_path):
    cache = tmp_path / "cache"
    result = run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "--batch-size", 3, "-w", 2))
    assert "10 images -> 10 feature rows (48 values, float32)" in result.output
    features, labels, classes, manifest = augkit.load_features(cache)
    assert features.shape == (10, 48) and features.dtype == np.float32
    assert classes == ["cat", "dog"] and labels.tolist() == [0] * 5 + [1] * 5
    assert [m["path"] for m in manifest] == [f"{c}/{c}_{i}.png" for c in ("cat", "dog") for i in range(5)]
    prep = resolve_backbone(str(tiny_model), input_size=64).preprocessing
    inputs = np.stack([reference_input(read_png(dataset / m["path"]), prep) for m in manifest])
    np.testing.assert_allclose(features, reference_features(tiny_model, inputs), rtol=1e-4, atol=1e-5)
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["complete"] and meta["feature_node"] == "pooled" and meta["preprocessing"]["input_size"] == 64
    assert meta["weights_sha256"] == sha(tiny_model.read_bytes()) and meta["augkit_version"] == augkit.__version__


def test_views_are_seeded_per_image_and_view_and_view0_can_be_plain(tiny_model, dataset, recipe, tmp_path):
    cache = tmp_path / "views"
    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "--recipe", recipe, "--views", 3,
                                                           "--plain-first", "--seed", 5, "-w", 0))
    features, labels, _, manifest = augkit.load_features(cache)
    assert features.shape == (30, 48) and [m["view"] for m in manifest[:4]] == [0, 1, 2, 0]
    assert labels.tolist() == [0] * 15 + [1] * 15
    prep = resolve_backbone(str(tiny_model), input_size=64).preprocessing
    aug = load_recipe(recipe)
    inputs = []
    for m in manifest:
        image = read_png(dataset / m["path"])
        if m["view"] > 0:
            image = aug(image, seed=derive_seed(5, m["path"], m["view"]))
        inputs.append(reference_input(image, prep))
    np.testing.assert_allclose(features, reference_features(tiny_model, np.stack(inputs)), rtol=1e-4, atol=1e-5)
    assert not np.allclose(features[1], features[2])  # two views of one image differ


def test_the_result_does_not_depend_on_workers_or_batch_size(tiny_model, dataset, recipe, tmp_path):
    run("cache-features", dataset, "-o", tmp_path / "a", *tiny_args(tiny_model, "-r", recipe, "-k", 2, "-w", 0))
    run("cache-features", dataset, "-o", tmp_path / "b", *tiny_args(tiny_model, "-r", recipe, "-k", 2, "-w", 2,
                                                                    "--batch-size", 7))
    a, b = augkit.load_features(tmp_path / "a"), augkit.load_features(tmp_path / "b")
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    assert a.manifest == b.manifest


def test_float16_is_the_default_and_shards_are_joined(tiny_model, dataset, tmp_path):
    cache = tmp_path / "cache"
    run("cache-features", dataset, "-o", cache, "--backbone", tiny_model, "--input-size", 64, "--shard-images", 3, "-w", 0)
    assert sorted(p.name for p in cache.glob("features-*.npy")) == [f"features-0000{i}.npy" for i in range(4)]
    loaded = augkit.load_features(cache)
    assert loaded.features.dtype == np.float16 and loaded.features.shape == (10, 48)
    first = np.load(cache / "features-00000.npy", mmap_mode="r")
    assert np.array_equal(loaded.features[:3], first)
    whole = np.concatenate([np.load(p) for p in sorted(cache.glob("features-*.npy"))])
    assert np.array_equal(np.asarray(loaded.features), whole)
    single = tmp_path / "single"
    run("cache-features", dataset, "-o", single, "--backbone", tiny_model, "--input-size", 64, "-w", 0)
    assert isinstance(augkit.load_features(single).features, np.memmap)  # one shard: memory-mapped


def test_bad_images_are_rows_in_failures_csv_not_features(tiny_model, tmp_path):
    src = write_tree(tmp_path / "src", {
        "a/good.png": encoded(make_structured_rgb(70, 80), "PNG"),
        "a/empty.jpg": b"",
        "b/cut.png": encoded(make_structured_rgb(70, 80, 1), "PNG")[:200],
        "b/fine.png": encoded(make_structured_rgb(80, 70, 2), "PNG"),
    })
    result = run("cache-features", src, "-o", tmp_path / "cache", *tiny_args(tiny_model, "-w", 1))
    assert "2 images failed (1 empty, 1 truncated)" in result.output
    loaded = augkit.load_features(tmp_path / "cache")
    assert [m["path"] for m in loaded.manifest] == ["a/good.png", "b/fine.png"] and loaded.labels.tolist() == [0, 1]
    failures = {r["path"]: r["reason"] for r in read_csv(tmp_path / "cache" / "failures.csv")}
    assert failures == {"a/empty.jpg": "empty", "b/cut.png": "truncated"}


def test_a_flat_folder_has_label_minus_one(tiny_model, tmp_path):
    src = write_tree(tmp_path / "flat", {"x.png": encoded(make_structured_rgb(64, 64), "PNG")})
    run("cache-features", src, "-o", tmp_path / "cache", *tiny_args(tiny_model, "-w", 0))
    loaded = augkit.load_features(tmp_path / "cache")
    assert loaded.labels.tolist() == [-1] and loaded.classes == [] and loaded.manifest[0]["label"] is None


def test_json_summary_and_the_interpreter_left_as_found(tiny_model, dataset, tmp_path):
    switch = sys.getswitchinterval()
    summary = json.loads(run("cache-features", dataset, "-o", tmp_path / "c", *tiny_args(tiny_model, "--json", "-w", 0)).output)
    assert summary["rows"] == summary["computed_rows"] == 10 and summary["feature_dim"] == 48
    assert summary["batch_size"] >= 2 and summary["workers"] == 0
    assert sys.getswitchinterval() == switch  # shortened for the run only


@pytest.mark.parametrize("args, message", [
    (["--views", 3], "--views > 1 and --plain-first need --recipe"),
    (["--backbone", "resnet5"], "unknown backbone 'resnet5'; did you mean resnet50"),
    (["--mean", "1,2"], "expected 3 numbers"),
])
def test_bad_usage_exits_2_with_one_line(tiny_model, dataset, tmp_path, args, message):
    result = run("cache-features", dataset, "-o", tmp_path / "c", "--input-size", 64, "-w", 0, *args, expect=2)
    assert message in result.output


# --- resuming, and refusing to mix -------------------------------------------------------------


def test_a_rerun_computes_only_missing_shards_with_the_same_result(tiny_model, dataset, tmp_path):
    cache = tmp_path / "cache"
    args = ["cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "--shard-images", 3, "-w", 0)]
    run(*args)
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    (cache / "features-00002.npy").unlink()
    (cache / "features-00001.json").unlink()
    (cache / ".features-00003.npy.augkit-tmp-999-0").write_bytes(b"left by a killed run")
    assert "(6 computed, 4 from earlier runs" in run(*args).output
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before
    assert "(0 computed, 10 from earlier runs" in run(*args).output


@pytest.mark.parametrize("change, what", [
    (["--backbone", "OTHER"], "backbone weights"),
    (["--recipe", "RECIPE"], "recipe"),
    (["--mean", "0.5,0.5,0.5"], "preprocessing"),
    (["--dtype", "float16"], "dtype"),
])
def test_a_rerun_with_other_settings_is_refused_unless_overwrite(tiny_model, dataset, recipe, tmp_path, change, what):
    other = tmp_path / "other.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=9), other)
    change = [{"OTHER": other, "RECIPE": recipe}.get(a, a) for a in change]
    cache = tmp_path / "cache"
    base = ["--input-size", 64, "--quiet", "-w", 0]
    run("cache-features", dataset, "-o", cache, "--backbone", tiny_model, "--dtype", "float32", *base)
    options = {"--backbone": tiny_model, "--dtype": "float32", **dict(zip(change[::2], change[1::2]))}
    args = ["cache-features", dataset, "-o", cache, *[x for kv in options.items() for x in kv], *base]
    result = run(*args, expect=2)
    assert "holds features made with other settings" in result.output and what in result.output
    assert "--overwrite" in result.output
    run(*args, "--overwrite")
    fresh = tmp_path / "fresh"
    run(*[fresh if a == cache else a for a in args])
    assert np.array_equal(augkit.load_features(cache).features, augkit.load_features(fresh).features)


def test_a_cache_of_views_seeded_the_old_way_is_not_resumed_into(tiny_model, dataset, recipe, tmp_path):
    cache = tmp_path / "cache"
    args = ["cache-features", dataset, "-o", cache, "--backbone", tiny_model, "--input-size", 64, "--recipe", recipe,
            "--views", 2, "--quiet", "-w", 0]
    run(*args)
    meta = json.loads((cache / "meta.json").read_text())
    del meta["seeding"]  # what caches made before "one-stream" seeding hold
    (cache / "meta.json").write_text(json.dumps(meta))

    result = run(*args, expect=2)

    assert "seeding" in result.output and "--overwrite" in result.output


def test_a_cache_that_names_the_recipe_recipe_hash_is_resumed_not_refused(tiny_model, dataset, recipe, tmp_path):
    cache = tmp_path / "cache"
    args = ["cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "--recipe", recipe, "--views", 2, "-w", 0)]
    run(*args)
    meta = json.loads((cache / "meta.json").read_text())
    meta["recipe_hash"] = meta.pop("recipe_fingerprint")  # what caches made before the one name hold
    (cache / "meta.json").write_text(json.dumps(meta))

    assert "(0 computed, 20 from earlier runs" in run(*args).output


def test_the_library_and_the_cli_take_the_recipes_seed_and_make_the_same_cache(tiny_model, dataset, tmp_path):
    recipe = tmp_path / "seeded.yaml"
    recipe.write_text("seed: 7\n" + RECIPE)
    run("cache-features", dataset, "-o", tmp_path / "cli", *tiny_args(tiny_model, "--recipe", recipe, "--views", 2,
                                                                      "-w", 0))
    cache_features(dataset, tmp_path / "library", backbone=resolve_backbone(str(tiny_model), input_size=64),
                   recipe=recipe, options=FeatureOptions(views=2, dtype="float32"), workers=0)

    cli_cache, library_cache = augkit.load_features(tmp_path / "cli"), augkit.load_features(tmp_path / "library")
    assert cli_cache.meta["seed"] == library_cache.meta["seed"] == 7
    assert np.array_equal(cli_cache.features, library_cache.features)
    assert cli_cache.manifest == library_cache.manifest


def test_a_folder_that_is_not_a_cache_is_refused_even_with_overwrite(tiny_model, dataset, tmp_path):
    cache = tmp_path / "mine"
    cache.mkdir()
    (cache / "notes.txt").write_text("keep me")
    (cache / "manifest.csv").write_text("my own list")
    for extra in ([], ["--overwrite"]):
        result = run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0, *extra), expect=2)
        assert "holds files augkit did not write" in result.output
    assert sorted(p.name for p in cache.iterdir()) == ["manifest.csv", "notes.txt"]
    assert (cache / "manifest.csv").read_text() == "my own list"


def test_cache_inside_src_is_refused(tiny_model, dataset):
    assert "inside SRC" in run("cache-features", dataset, "-o", dataset / "features", *tiny_args(tiny_model), expect=2).output


def test_a_cache_inside_the_dataset_folder_of_a_split_manifest_is_refused(tiny_model, dataset):
    manifest = dataset / "split.csv"  # where `augkit split data` writes it
    manifest.write_text("path,label,split\ncat/cat_0.png,cat,train\ndog/dog_0.png,dog,train\ncat/cat_1.png,cat,val\n")
    cache = dataset / "feats"
    result = run("cache-features", manifest, "--split", "train", "-o", cache, *tiny_args(tiny_model), expect=2)
    assert f"{cache}: OUT is inside SRC ({dataset})" in result.output and not cache.exists()


def test_an_incomplete_cache_is_not_loaded(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"complete": False}))
    with pytest.raises(AugkitError, match="incomplete; rerun the same"):
        augkit.load_features(tmp_path)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_run_resumed_equals_an_uninterrupted_one(full_model, tmp_path, how):
    images = 40
    src = write_tree(tmp_path / "src", {f"c{i % 2}/img_{i:03d}.png": encoded(make_structured_rgb(120, 160, i), "PNG")
                                        for i in range(images)})
    args = ["cache-features", str(src), "--weights", str(full_model), "--shard-images", 2, "--threads", 1, "-w", 1,
            "--quiet"]
    run(*args, "-o", tmp_path / "reference")
    cache = tmp_path / "cache"

    status, stderr, _ = run_interrupted(tmp_path, "augkit.stages.features.run.FeatureTask", "c0/img_030.png", how, *args,
                                        "-o", cache)

    if how == signal.SIGINT:
        assert status == 130 and "rerun the same command" in stderr and "Traceback" not in stderr
    else:
        assert status == -signal.SIGKILL
    done = len(list(cache.glob("features-*.json")))
    assert done < 15 and not (cache / "manifest.csv").exists()  # image 30 (shard 15) never got computed
    with pytest.raises(AugkitError, match="incomplete"):
        augkit.load_features(cache)
    result = run(*args, "-o", cache)
    assert f"{images - 2 * done} computed" in result.output
    reference = augkit.load_features(tmp_path / "reference")
    resumed = augkit.load_features(cache)
    assert np.array_equal(resumed.features, reference.features) and resumed.manifest == reference.manifest
    assert not list(cache.glob(".*tmp*"))


# --- weights served over HTTP -------------------------------------------------------------------


@pytest.fixture
def server():
    s = ModelServer()
    yield s
    s.close()


def test_cache_features_downloads_verifies_caches_and_uses_a_served_model(server, tiny_model, dataset, tmp_path):
    data = tiny_model.read_bytes()
    server.files["tiny.onnx"] = data
    entry = entry_file(tmp_path, server.url("redirect/tiny.onnx"), data)
    run("cache-features", dataset, "-o", tmp_path / "c1", "--backbone", entry, "--dtype", "float32", "-w", 0)
    cached = list((tmp_path / "augkit-cache" / "backbones").iterdir())
    assert len(cached) == 1 and cached[0].read_bytes() == data
    hits = len(server.hits)
    run("cache-features", dataset, "-o", tmp_path / "c2", "--backbone", entry, "--dtype", "float32", "-w", 0)
    assert len(server.hits) == hits  # the second run used the cached file
    direct = tmp_path / "direct"
    run("cache-features", dataset, "-o", direct, *tiny_args(tiny_model, "-w", 0))
    assert np.array_equal(augkit.load_features(tmp_path / "c1").features, augkit.load_features(direct).features)
    assert json.loads((tmp_path / "c1" / "meta.json").read_text())["weights_sha256"] == sha(data)


@pytest.mark.parametrize("kind, message", [
    ("corrupt", "sha256 of the download is"),
    ("truncated", "stopped after"),
    ("offline", "cannot download"),
])
def test_every_download_failure_exits_1_with_one_line_and_leaves_nothing(server, tiny_model, dataset, tmp_path, kind,
                                                                        message):
    data = tiny_model.read_bytes()
    server.files["tiny.onnx"] = data if kind != "corrupt" else data[::-1]
    url = server.url(("truncated" if kind == "truncated" else "files") + "/tiny.onnx")
    if kind == "offline":
        server.close()
    entry = entry_file(tmp_path, url, data)
    result = run("cache-features", dataset, "-o", tmp_path / "cache", "--backbone", entry, "-w", 0, expect=1)
    line = result.output.strip()
    assert message in line and "--weights PATH" in line and "\n" not in line and "Traceback" not in line
    assert leftovers(tmp_path / "augkit-cache") == []
    assert not (tmp_path / "cache").exists()


def test_backbones_lists_the_registry():
    result = run("backbones")
    for name in ("mobilenet_v2", "resnet50", "resnet18", "googlenet", "efficientnet_lite4"):
        assert name in result.output
    one = json.loads(run("backbones", "mobilenet_v2", "--json").output)
    assert one["feature_dim"] == 1280 and one["sha256"].startswith("c0c3f76d") and one["cached"] is None


def test_the_centre_square_is_the_one_resize_then_crop_keeps():
    """Cropping first and resizing once frames the image as "shorter side to 256, centre
    224" does, within a pixel: on a smooth image the two agree to a fraction of a level."""
    prep = resolve_backbone("mobilenet_v2").preprocessing
    y, x = np.mgrid[0:375, 0:500].astype(np.float64)
    rgb = np.dstack([x / 2, y / 1.5, (x + y) / 3.5]).clip(0, 255).astype(np.uint8)
    resized = cv2.resize(rgb, (341, 256), interpolation=cv2.INTER_AREA)
    two_step = resized[16:240, 58:282].astype(np.float64)
    from augkit.stages.features import crop_to_input

    one_step = crop_to_input(rgb, prep).astype(np.float64)
    assert np.abs(one_step - two_step).mean() < 0.5  # a 3-pixel shift costs 2.5


# --- a cache holds one source's features, and retries what failed -----------------------------


def test_a_cache_of_another_source_is_refused_unless_overwrite(tiny_model, dataset, tmp_path):
    other = write_tree(tmp_path / "other", {k: encoded(make_structured_rgb(40, 50, seed=500 + i), "PNG")
                                            for i, k in enumerate(sorted(tree_bytes(dataset)))})
    cache = tmp_path / "cache"
    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0))
    before = tree_bytes(cache)

    result = run("cache-features", other, "-o", cache, *tiny_args(tiny_model, "-w", 0), expect=2)

    assert "changed or are gone" in result.output and "--overwrite" in result.output
    assert tree_bytes(cache) == before
    run("cache-features", other, "-o", cache, *tiny_args(tiny_model, "-w", 0, "--overwrite"))
    run("cache-features", other, "-o", tmp_path / "fresh", *tiny_args(tiny_model, "-w", 0))
    assert np.array_equal(load_features(cache).features, load_features(tmp_path / "fresh").features)


def test_a_source_image_edited_since_is_refused_unless_overwrite(tiny_model, dataset, tmp_path):
    cache = tmp_path / "cache"
    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0))
    (dataset / "dog" / "dog_1.png").write_bytes(encoded(make_structured_rgb(40, 50, seed=77), "PNG"))

    assert "dog/dog_1.png" in run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0),
                                  expect=2).output


def test_a_failed_image_fixed_since_is_computed_on_rerun(tiny_model, dataset, tmp_path):
    good = (dataset / "cat" / "cat_1.png").read_bytes()
    (dataset / "cat" / "cat_1.png").write_bytes(good[: len(good) // 2])
    cache = tmp_path / "cache"
    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0))
    assert [r["reason"] for r in read_csv(cache / "failures.csv")] == ["truncated"]
    (dataset / "cat" / "cat_1.png").write_bytes(good)

    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0))

    assert read_csv(cache / "failures.csv") == []
    run("cache-features", dataset, "-o", tmp_path / "fresh", *tiny_args(tiny_model, "-w", 0))
    assert np.array_equal(load_features(cache).features, load_features(tmp_path / "fresh").features)


def test_images_too_large_under_one_max_pixels_are_retried_without_it(tiny_model, dataset, tmp_path):
    cache = tmp_path / "cache"
    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0, "--max-pixels", 100), expect=1)
    assert {r["reason"] for r in read_csv(cache / "failures.csv")} == {"too_large"}

    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0))

    assert read_csv(cache / "failures.csv") == []
    assert load_features(cache).features.shape[0] == len(tree_bytes(dataset))


def test_a_recipe_that_normalizes_is_refused_and_names_the_backbones_own_normalisation(tiny_model, dataset, tmp_path):
    recipe = tmp_path / "normalized.yaml"
    recipe.write_text("transforms:\n  - ToFloat: {}\n")
    result = run("cache-features", dataset, "-o", tmp_path / "cache", *tiny_args(tiny_model, "--recipe", recipe),
                 expect=2)
    assert "ToFloat" in result.output and "backbone applies its own normalisation" in result.output


def test_a_run_where_every_image_failed_exits_1(tiny_model, tmp_path):
    data = write_tree(tmp_path / "bad", {"cat/empty.png": b"", "dog/page.png": b"<html></html>"})
    cache = tmp_path / "cache"
    result = run("cache-features", data, "-o", cache, *tiny_args(tiny_model, "-w", 0), expect=1)
    assert "none of the 2 images gave features" in result.output and "None" not in result.output
    assert len(read_csv(cache / "failures.csv")) == 2


def test_a_cache_of_several_shards_loads_without_reading_them_and_indexes_like_an_array(tiny_model, dataset, tmp_path):
    cache = tmp_path / "cache"
    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "--shard-images", 3, "-w", 0))
    whole = np.concatenate([np.load(p) for p in sorted(cache.glob("features-*.npy"))])

    loaded = augkit.load_features(cache)

    rows = loaded.features
    assert not isinstance(rows, np.ndarray) and rows.shape == whole.shape and len(rows) == len(whole)
    picks = [np.int64(4), -1, slice(2, 8), slice(None, None, -3), [9, 0, 3, 3], np.arange(10) % 3 == 0]
    for index in picks:
        assert np.array_equal(rows[index], whole[index]), index
    assert np.array_equal(rows[[1, 7], 5], whole[[1, 7], 5]) and rows[2, 3] == whole[2, 3]
    with pytest.raises(IndexError):
        rows[10]
    in_memory = augkit.load_features(cache, mmap=False).features
    assert isinstance(in_memory, np.ndarray) and np.array_equal(in_memory, whole)


def test_what_load_features_returns_unpacks_and_indexes_like_a_tuple(tiny_model, dataset, tmp_path):
    run("cache-features", dataset, "-o", tmp_path / "cache", *tiny_args(tiny_model, "-w", 0))
    loaded = augkit.load_features(tmp_path / "cache")
    features, labels, classes, manifest = loaded
    assert loaded[0] is features and loaded[1] is labels and loaded[2] == classes == ["cat", "dog"]
    assert loaded[3] is manifest and loaded[-1] is manifest and len(loaded) == 4


def test_weights_other_than_the_registrys_are_named_and_recorded(full_model, dataset, tmp_path):
    cache = tmp_path / "cache"
    result = run("cache-features", dataset, "-o", cache, "--weights", full_model, "--quiet", "-w", 0)

    assert f"{full_model} is not the mobilenet_v2 weights the registry names" in result.stderr
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["weights_sha256"] == sha(full_model.read_bytes()) and meta["weights_are_the_registrys"] is False


def test_the_registrys_own_weights_are_recorded_as_such(tiny_model, dataset, tmp_path):
    run("cache-features", dataset, "-o", tmp_path / "cache", *tiny_args(tiny_model, "-w", 0))
    assert json.loads((tmp_path / "cache" / "meta.json").read_text())["weights_are_the_registrys"] is True


def test_a_second_run_into_a_cache_in_use_is_refused(tiny_model, dataset, tmp_path):
    from augkit.core.files import folder_lock

    cache = tmp_path / "cache"
    cache.mkdir()
    with folder_lock(cache, "CACHE"):  # as a run in another process holds it
        result = run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0), expect=2)
    assert "another augkit run is writing to this CACHE" in result.output
    run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 0))


def test_an_image_that_kills_its_worker_is_a_row_and_the_rest_are_cached(tiny_model, dataset, tmp_path, monkeypatch):
    # cache-features -w 2 --recipe once ended in a BrokenProcessPool traceback when a worker
    # died: now the engine restarts it, pins the image that killed it, and goes on.
    import crashing_tasks

    import augkit.stages.features.run

    monkeypatch.setattr(augkit.stages.features.run, "FeatureTask", crashing_tasks.FeatureTaskThatKillsItsWorker)
    cache = tmp_path / "cache"
    result = run("cache-features", dataset, "-o", cache, *tiny_args(tiny_model, "-w", 2))
    assert [(r["path"], r["reason"]) for r in read_csv(cache / "failures.csv")] == [
        (crashing_tasks.KILLS_ITS_WORKER, "worker_crashed")]
    assert load_features(cache).features.shape[0] == len(tree_bytes(dataset)) - 1 and "1 image failed" in result.output


def test_a_rerun_that_decodes_otherwise_names_the_decoding_in_words(tmp_path):
    from augkit.core.errors import UsageError
    from augkit.stages.features.cache import META, prepare_cache

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / META).write_text(json.dumps({"complete": True, "decode": "reduced"}))
    with pytest.raises(UsageError, match=r"\(decode 'reduced' -> whole\); use another CACHE or --overwrite"):
        prepare_cache(cache, {"complete": False}, overwrite=False)  # --exact-decode records no "decode"


# --- how many workers prepare images by default --------------------------------------------------


@pytest.fixture
def two_cores(monkeypatch):
    import augkit.engines.local

    monkeypatch.setattr(augkit.engines.local, "default_workers", lambda: 2)


def test_imagenet_size_photos_are_prepared_in_this_process_and_a_recipe_gets_a_worker(two_cores):
    from augkit.stages.features.run import default_workers

    assert default_workers(False, 0.19) == default_workers(False) == 0
    assert default_workers(True, 0.19) == 1


def test_large_photos_get_a_worker_per_core_since_their_decoding_outweighs_inference(two_cores):
    from augkit.stages.features.run import default_workers

    assert default_workers(False, 2.0) == 1
    assert default_workers(False, 12.0) == default_workers(True, 48.0) == 2


def test_the_median_size_is_read_from_a_few_headers_skipping_unreadable_files(tmp_path):
    from augkit.input.discovery import discover
    from augkit.stages.features.run import median_megapixels

    write_tree(tmp_path / "src", {"a/big.png": encoded(np.zeros((2000, 1500, 3), np.uint8), "PNG"),
                                  "a/mid.png": encoded(np.zeros((1000, 1000, 3), np.uint8), "PNG"),
                                  "b/small.png": encoded(np.zeros((100, 100, 3), np.uint8), "PNG"),
                                  "b/broken.jpg": b"not an image"})
    assert median_megapixels(discover(tmp_path / "src").samples) == pytest.approx(1.0)
    assert median_megapixels([]) is None


def test_cache_features_on_large_photos_runs_workers_by_default(tiny_model, two_cores, tmp_path):
    write_tree(tmp_path / "src", {f"{c}/{c}_{i}.png": encoded(make_structured_rgb(2000, 3000, seed=i), "PNG")
                                  for c in ("cat", "dog") for i in range(2)})
    summary = json.loads(run("cache-features", tmp_path / "src", "-o", tmp_path / "cache",
                             *tiny_args(tiny_model, "--json")).output)
    assert summary["workers"] == 2 and summary["rows"] == 4


def test_the_printed_rate_is_the_steady_one_only_when_measured_over_a_second_or_more():
    from augkit.cli.features import _rate
    from augkit.stages.features.run import FeatureSummary

    short = FeatureSummary(computed_rows=4, steady_rows_per_s=19108.0, seconds=0.3)  # two batches, 0.2 ms apart
    assert _rate(short) == ", 13 rows/s"
    long = FeatureSummary(computed_rows=1000, steady_rows_per_s=171.0, seconds=6.6)
    assert _rate(long) == ", 171 rows/s"
    assert _rate(FeatureSummary()) == ""
