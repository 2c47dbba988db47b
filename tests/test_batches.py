"""`augkit.flow`: (x, y) batches, fresh every epoch, the same for any worker count."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import augkit
from augkit.engines import _shm
from augkit.stages.batches import IMAGENET_MEAN, IMAGENET_STD, Preprocess, SamplePipeline, batch_members, epoch_order
from augkit.core.errors import RecipeError, UsageError
from augkit.recipes import load_recipe
from conftest import make_structured_rgb
from imagefiles import bad_images, class_folders, encoded, write_tree

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


@pytest.mark.parametrize("size", [-3, 0, (64,), "64", 64.5, (64, 0), (64, 64, 3), True, (16.0, 16)])
def test_a_size_that_is_not_one_is_bad_usage_naming_it_and_the_fix(dataset, size):
    with pytest.raises(UsageError) as refused:
        augkit.flow(dataset, RECIPE, batch_size=4, workers=0, size=size)
    assert str(refused.value) == (f"size={size!r}: not a size; give one whole number of pixels (224) or a (height, "
                                  f"width) pair (224, 160), each at least 1")
    with pytest.raises(UsageError, match=r"^size="):
        SamplePipeline(None, size=size)  # the one check every adapter's pipeline makes


@pytest.mark.parametrize(("size", "shape"), [(12, (12, 12)), ((12, 14), (12, 14)), (np.array([12, 14]), (12, 14)),
                                             ([np.int64(10), 12], (10, 12))])
def test_a_size_is_one_whole_number_or_a_height_width_pair(dataset, size, shape):
    assert collect(0, dataset, size=size)[0][0].shape[1:3] == shape


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


def test_a_bad_image_is_listed_once_however_many_epochs_it_fails_in(tmp_path, dataset):
    data = write_tree(tmp_path / "mixed", {"cat/empty.jpg": b"", **{f"cat/{p.name}": p.read_bytes() for p in (dataset / "cat").iterdir()}})
    with augkit.flow(data, RECIPE, batch_size=10, workers=2, epochs=3) as batches:
        sizes = [len(y) for _, y in batches]
    assert sizes == [5, 5, 5]
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


# --- a worker that dies, images without a final size ---------------------------------------


def die_on_black(image, **_):
    """A Lambda's image function that kills its worker process on an all-black image."""
    if image.max() < 16:
        os.kill(os.getpid(), signal.SIGKILL)
    return image


def test_the_samples_of_a_batch_whose_worker_dies_are_failure_rows_and_the_flow_goes_on(tmp_path, dataset):
    black = encoded(np.zeros((60, 80, 3), np.uint8), "JPEG")
    data = write_tree(tmp_path / "data", {"dog/black.jpg": black,
                                          **{f"{c}/{p.name}": p.read_bytes() for c in ("cat", "dog", "owl")
                                             for p in (dataset / c).iterdir()}})
    recipe = {"transforms": [{"Lambda": {"image": die_on_black}}, *RECIPE["transforms"]]}
    with augkit.flow(data, recipe, batch_size=4, workers=2, shuffle=False, epochs=2) as batches:
        got = [len(y) for _, y in batches]
        order = epoch_order(len(batches.dataset), batches.seed, 0, shuffle=False)
        members = [batch_members(batches.dataset, order, n, 4) for n in range(len(batches))]
    lost = next(m for m in members if any(key == "dog/black.jpg" for _, key, _, _ in m))  # killed it twice
    assert got == [4, 4, 4] * 2  # 16 images, the batch with the black one lost in both epochs
    assert [(f["source"], f["reason"]) for f in batches.failures] == [(key, "worker_crashed") for _, key, _, _ in lost]
    assert "worker process died" in batches.failures[0]["message"]


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory):
    """cat/ images are 60x80, dog/ images 40x50."""
    return write_tree(tmp_path_factory.mktemp("sizes") / "data", {
        **{f"cat/c{i}.jpg": encoded(make_structured_rgb(60, 80, seed=i), "JPEG") for i in range(3)},
        **{f"dog/d{i}.jpg": encoded(make_structured_rgb(40, 50, seed=9 + i), "JPEG") for i in range(3)},
    })


def test_without_a_size_images_the_recipe_leaves_at_several_sizes_are_refused_before_any_batch(two_sizes):
    with pytest.raises(UsageError) as caught:
        augkit.flow(two_sizes, {"transforms": [{"HorizontalFlip": {"p": 0.5}}]}, workers=2)
    assert str(caught.value) == ("images differ in size (cat/c0.jpg 60x80, dog/d0.jpg 40x50) and the recipe does not "
                                 "make them one size: pass size=(H, W) (--size H,W) or end the recipe with a Resize "
                                 "or a crop")


def test_without_a_size_images_of_several_sizes_in_shards_are_refused_too(two_sizes, tmp_path):
    from shardfiles import tar_of

    shard = tar_of(tmp_path / "s.tar", [(p.relative_to(two_sizes).as_posix(), p.read_bytes())
                                        for p in sorted(two_sizes.rglob("*.jpg"))])
    with pytest.raises(UsageError) as caught:
        augkit.flow(str(shard), {"transforms": [{"HorizontalFlip": {"p": 0.5}}]}, workers=0)
    assert str(caught.value).startswith("images differ in size (cat/c0.jpg 60x80, dog/d0.jpg 40x50)")


def test_without_a_size_a_recipe_that_ends_in_a_crop_takes_images_of_any_size(two_sizes):
    recipe = {"transforms": [{"HorizontalFlip": {"p": 0.5}}, {"RandomCrop": {"height": 32, "width": 32}}]}
    runs = []
    for workers in (0, 2):
        with augkit.flow(two_sizes, recipe, batch_size=4, workers=workers) as batches:
            runs.append([(x.copy(), y.copy()) for x, y in batches])
        assert batches.failures == []
    assert [x.shape for x, _ in runs[1]] == [(4, 32, 32, 3), (2, 32, 32, 3)]
    assert same(runs[0], runs[1])


def test_without_a_size_a_first_image_that_cannot_be_read_is_a_failure_row(tmp_path, dataset):
    cut, _ = bad_images()["cut.jpg"]
    data = write_tree(tmp_path / "data", {"cat/0_cut.jpg": cut, **{f"cat/{p.name}": p.read_bytes()
                                                                    for p in (dataset / "cat").iterdir()}})
    with augkit.flow(data, None, batch_size=4, workers=2, shuffle=False) as batches:
        assert [x.shape for x, _ in batches] == [(3, 60, 80, 3), (2, 60, 80, 3)]  # left out of its batch
    assert [(f["source"], f["reason"]) for f in batches.failures] == [("cat/0_cut.jpg", "truncated")]


def test_without_a_size_a_recipe_that_fails_on_every_image_gives_failure_rows_and_ends(dataset):
    recipe = {"transforms": [{"RandomCrop": {"height": 100, "width": 100}}]}  # bigger than every image
    with augkit.flow(dataset, recipe, batch_size=4, workers=2, epochs=None) as batches:
        assert list(batches) == []  # forever, but no epoch will give a batch
    assert len(batches.failures) == 15 and {f["reason"] for f in batches.failures} == {"transform_error"}


def test_without_a_size_a_sample_that_ends_at_another_size_is_a_failure_row(dataset):
    recipe = {"transforms": [{"RandomScale": {"scale_limit": 0.3, "p": 1.0}}]}  # a new size for every sample
    with augkit.flow(dataset, recipe, batch_size=4, workers=2, shuffle=False) as batches:
        size = batches.sample_size
        delivered = sum(len(y) for x, y in batches if x.shape[1:3] == size)
    assert batches.failures and {f["reason"] for f in batches.failures} == {"size_mismatch"}
    assert delivered + len(batches.failures) == 15
    assert f"but the samples of this flow are {size[0]}x{size[1]}; pass size=(H, W)" in batches.failures[0]["message"]


# --- /dev/shm: room, and what a killed run left there ---------------------------------------


def test_a_dev_shm_without_room_for_the_slots_sends_batches_through_pipes_and_says_what_to_change(dataset, monkeypatch):
    reference = collect(0, dataset, size=32, epochs=2)
    monkeypatch.setattr(_shm, "room", lambda *_: 64 * 2**10)  # as if Docker's 64 MB were nearly taken
    with augkit.flow(dataset, RECIPE, batch_size=4, workers=2, size=32, epochs=2) as batches:
        got = [(x.copy(), y.copy()) for x, y in batches]
        assert batches._slots is None
    assert same(got, reference)
    assert batches.notes == ["/dev/shm has 64 kB free, but 6 batches of 12 kB need 72 kB: batches come through pipes "
                             "instead (slower); for shared memory, give it more room (docker run --shm-size=256m), or "
                             "use a smaller batch_size (-b) or fewer workers (-w)"]


def test_a_dev_shm_that_fills_up_during_a_run_sends_the_other_batches_through_pipes(dataset, monkeypatch):
    reference = collect(0, dataset, size=32, epochs=3)
    allocate, made = _shm._allocate, []

    def two_then_full(shm):
        if len(made) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        made.append(shm.name)
        allocate(shm)

    monkeypatch.setattr(_shm, "_allocate", two_then_full)
    got, slots = [], set()
    with augkit.flow(dataset, RECIPE, batch_size=4, workers=2, size=32, epochs=3) as batches:
        for x, y in batches:
            got.append((x.copy(), y.copy()))
            slots |= set(batches._slots.blocks)
    assert sorted(slots) == sorted(made)
    assert same(got, reference)
    assert batches.notes[0].startswith("/dev/shm ran out of room after 2 batches: the others come through pipes")
    assert not any(os.path.exists(f"/dev/shm/{name}") for name in made)


needs_shm = pytest.mark.skipif(not (os.path.isdir(_shm.SHM_DIR) and _shm._pid_namespace()),
                               reason="needs /dev/shm and /proc")


@needs_shm
def test_slots_are_named_after_their_run_and_a_killed_runs_are_removed_when_a_flow_starts(dataset):
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    left = Path(_shm.SHM_DIR) / f"augkit-{gone}-{_shm._pid_namespace()}-0"  # as a run killed with -9 leaves it
    left.write_bytes(b"\0" * 4096)
    try:
        with augkit.flow(dataset, RECIPE, batch_size=4, workers=2, size=32) as batches:
            assert not left.exists()
            running = iter(batches)
            next(running)
            names = list(batches._slots.blocks)
            assert names and all(name.startswith(_shm.tag() + "-") for name in names)
        assert not any(os.path.exists(f"{_shm.SHM_DIR}/{name}") for name in names)
    finally:
        left.unlink(missing_ok=True)


def test_a_bad_max_pixels_variable_is_refused_when_the_flow_is_made(tmp_path, monkeypatch):
    from augkit.core.errors import UsageError
    from imagefiles import class_folders

    monkeypatch.setenv("AUGKIT_MAX_IMAGE_PIXELS", "abc")
    with pytest.raises(UsageError, match="AUGKIT_MAX_IMAGE_PIXELS"):
        augkit.flow(class_folders(tmp_path / "data", per_class=2), batch_size=2, size=16, workers=0)
