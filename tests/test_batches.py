"""`augkit.flow`: (x, y) batches, fresh every epoch, the same for any worker count."""

from __future__ import annotations

import numpy as np
import pytest

import augkit
from augkit.batches import IMAGENET_MEAN, IMAGENET_STD, Preprocess, SamplePipeline
from augkit.errors import RecipeError, UsageError
from augkit.recipes import load_recipe
from imagefiles import class_folders, write_tree

RECIPE = {"transforms": [{"HorizontalFlip": {"p": 0.5}}, {"RandomResizedCrop": {"size": [24, 24], "scale": [0.4, 1.0]}},
                         {"RGBShift": {"p": 0.5}}]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("flow") / "data", per_class=5)  # 3 classes x 5


def collect(workers, dataset, **options):
    with augkit.flow(dataset, RECIPE, batch_size=4, workers=workers, **options) as batches:
        return [(x.copy(), y.copy()) for x, y in batches]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x1, x2) and np.array_equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_batches_are_identical_for_any_worker_count(dataset):
    reference = collect(0, dataset, epochs=2)
    assert same(collect(1, dataset, epochs=2), reference)
    assert same(collect(2, dataset, epochs=2), reference)


def test_each_epoch_has_a_new_order_and_new_augmentations(dataset):
    batches = collect(0, dataset, epochs=2)
    first, second = batches[:4], batches[4:]
    assert [len(y) for _, y in first] == [4, 4, 4, 3]
    order1, order2 = np.concatenate([y for _, y in first]), np.concatenate([y for _, y in second])
    assert sorted(order1) == sorted(order2) == sorted([0] * 5 + [1] * 5 + [2] * 5)
    assert not same(first, second)


def test_same_seed_same_batches_other_seed_other_batches(dataset):
    assert same(collect(0, dataset, seed=3), collect(0, dataset, seed=3))
    assert not same(collect(0, dataset, seed=3), collect(0, dataset, seed=4))


def test_shapes_labels_and_class_names(dataset):
    with augkit.flow(dataset, RECIPE, batch_size=4, workers=0, shuffle=False) as batches:
        assert batches.classes == ["cat", "dog", "owl"] and batches.class_to_index["owl"] == 2
        assert len(batches) == 4
        x, y = next(iter(batches))
    assert x.shape == (4, 24, 24, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64 and list(y) == [0, 0, 0, 0]


def test_channels_first_drop_last_and_final_size(dataset):
    batches = collect(0, dataset, size=(16, 20), channels_first=True, drop_last=True, preprocess="tf")
    assert len(batches) == 3 and all(x.shape == (4, 3, 16, 20) and x.dtype == np.float32 for x, _ in batches)


def test_without_a_recipe_images_need_a_final_size(tmp_path):
    data = class_folders(tmp_path / "d", per_class=2, size=(30, 40))
    assert collect(0, data, size=12)[0][0].shape[1:] == (12, 12, 3)
    with augkit.flow(data, None, batch_size=2, workers=0) as batches:  # all 30x40: no size needed
        assert next(iter(batches))[0].shape == (2, 30, 40, 3)


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe", "explicit"])
def test_preprocess_modes_follow_the_framework_conventions(mode):
    image = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    f = image.astype(np.float64)
    expected = {
        "tf": f / 127.5 - 1,
        "torch": (f / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD),
        "caffe": f[..., ::-1] - np.array([103.939, 116.779, 123.68]),
        "explicit": (f / 255 - 0.5) / 0.25,
    }[mode]
    pre = Preprocess.parse(((0.5,) * 3, (0.25,) * 3) if mode == "explicit" else mode)
    out = np.empty(image.shape, pre.dtype)
    pre(image, out)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_unknown_preprocess_is_a_usage_error(dataset):
    with pytest.raises(UsageError, match="unknown preprocess 'keras'"):
        augkit.flow(dataset, RECIPE, preprocess="keras")


def test_a_bad_image_is_left_out_and_recorded(tmp_path, dataset):
    data = write_tree(tmp_path / "mixed", {"cat/empty.jpg": b"", **{f"cat/{p.name}": p.read_bytes() for p in (dataset / "cat").iterdir()}})
    with augkit.flow(data, RECIPE, batch_size=10, workers=2, shuffle=False) as batches:
        sizes = [len(y) for _, y in batches]
    assert sizes == [5]
    assert [(f["source"], f["reason"]) for f in batches.failures] == [("cat/empty.jpg", "empty")]


def test_a_batch_kept_by_the_consumer_is_never_overwritten(dataset):
    with augkit.flow(dataset, RECIPE, batch_size=4, workers=2, epochs=3) as batches:
        kept = [(x, x.copy()) for x, _ in batches]  # holding the arrays themselves
    assert all(np.array_equal(x, copy) for x, copy in kept)


def test_memory_is_bounded_when_the_consumer_drops_its_batches(dataset):
    with augkit.flow(dataset, RECIPE, batch_size=4, workers=2, epochs=None) as batches:
        for i, (x, _) in enumerate(batches):
            if i == 60:
                slots = len(batches._slots.blocks)
                break
    assert slots <= 2 * 2 + 3  # in flight (workers * prefetch) plus a few held in order


@pytest.mark.parametrize("mode", [None, "tf", "torch", "caffe"])
def test_channels_first_is_the_transpose_of_channels_last(mode):
    image = np.random.default_rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    pre = Preprocess.parse(mode)
    last, first = np.empty((7, 5, 3), pre.dtype), np.empty((3, 7, 5), pre.dtype)
    pre(image, last)
    pre(image, first, channels_first=True)
    assert np.array_equal(first, last.transpose(2, 0, 1))


# --- a recipe must return uint8 RGB: flow normalises with preprocess= ---------------------


def to_unit_float(image, **_):
    """A Lambda's image function (at module level: Lambda refuses a lambda)."""
    return image.astype(np.float32) / 255


@pytest.fixture
def normalized_recipe(tmp_path):
    path = tmp_path / "normalized.yaml"
    path.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n  - Normalize\n")
    return path


def test_flow_refuses_a_recipe_ending_in_normalize_and_names_preprocess(dataset, normalized_recipe):
    with pytest.raises(RecipeError) as caught:
        augkit.flow(dataset, normalized_recipe, workers=0)
    assert str(caught.value) == (f"{normalized_recipe}:3: Normalize makes float32 images, but augkit's commands take "
                                 f"uint8 RGB images; drop Normalize and use preprocess='torch', 'tf' or (mean, std) "
                                 f"(--preprocess) instead")


def test_the_sample_pipeline_of_the_torch_and_keras_adapters_refuses_it_too(normalized_recipe):
    with pytest.raises(RecipeError, match=r"normalized\.yaml:3: Normalize makes float32 images"):
        SamplePipeline(load_recipe(normalized_recipe), preprocess="torch")


def test_a_sample_the_recipe_turns_into_floats_at_run_time_is_a_failure_row(dataset):
    recipe = {"transforms": [{"Lambda": {"image": to_unit_float}}]}  # declares nothing: passes the static check
    with augkit.flow(dataset, recipe, batch_size=4, workers=0, shuffle=False) as batches:
        got = list(batches)
    assert got == []
    assert len(batches.failures) == 15
    assert {f["reason"] for f in batches.failures} == {"transform_error"}
    assert "the recipe returned float32 (60, 80, 3), not a uint8 RGB image" in batches.failures[0]["message"]
