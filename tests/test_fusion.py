"""One warp for a run of geometric transforms (augkit.recipes.fusion, a recipe's
``fuse_geometry: true``): the same draws, captions and errors as the unfused pipeline;
only the resampling changes, and not at all where a run only crops and flips."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from augkit.recipes import TransformError, load_recipe
from augkit.recipes.fusion import FusedGeometry, first_run, fuse_runs, runs
from conftest import make_structured_rgb

STANDARD = [
    {"SmallestMaxSize": {"max_size": 256}}, {"RandomCrop": {"height": 224, "width": 224}},
    {"HorizontalFlip": {"p": 0.5}},
    {"Affine": {"rotate": [-15, 15], "scale": [0.9, 1.1], "translate_percent": [-0.06, 0.06], "p": 0.5}},
    {"RGBShift": {"p": 0.3}}, {"CLAHE": {"p": 0.2}}, {"CoarseDropout": {"p": 0.3}},
]
ROTATE_FIRST = [{"Rotate": {"limit": 20, "p": 0.7}}, {"HorizontalFlip": {"p": 0.5}},
                {"RandomCrop": {"height": 200, "width": 200}}, {"VerticalFlip": {"p": 0.3}},
                {"Resize": {"height": 96, "width": 96}}, {"RGBShift": {"p": 0.5}}]
SHIFT_SCALE_ROTATE = [{"LongestMaxSize": {"max_size": 300}}, {"ShiftScaleRotate": {"p": 0.8}},
                      {"CenterCrop": {"height": 150, "width": 150}}, {"HorizontalFlip": {"p": 0.5}},
                      {"Rotate": {"limit": 10, "crop_border": True, "p": 0.5}}]
REFLECT_AFTER_RESIZED_CROP = [{"Resize": {"height": 250, "width": 330}}, {"RandomCrop": {"height": 200, "width": 200}},
                              {"Affine": {"rotate": [-10, 10], "border_mode": "reflect_101", "p": 0.9}}]
RECIPES = {"standard": STANDARD, "rotate first": ROTATE_FIRST, "shift-scale-rotate": SHIFT_SCALE_ROTATE,
           "reflect after a resized crop": REFLECT_AFTER_RESIZED_CROP}


def _pair(transforms):
    return load_recipe({"transforms": transforms}), load_recipe({"transforms": transforms, "fuse_geometry": True})


def _images(n: int = 12):
    return [make_structured_rgb(240 + 7 * (i % 5), 320 + 11 * (i % 4), seed=i) for i in range(n)]


def _names(transforms) -> list[str]:
    return [type(t).__name__ for t in transforms]


# --- which transforms are fused -----------------------------------------------------------


def test_each_run_of_geometric_transforms_after_the_leading_shrink_becomes_one_step():
    recipe = load_recipe({"transforms": STANDARD, "fuse_geometry": True})
    fused = fuse_runs(recipe._transforms)
    assert _names(fused) == ["SmallestMaxSize", "FusedGeometry", "RGBShift", "CLAHE", "CoarseDropout"]
    assert _names(fused[1].transforms) == ["RandomCrop", "HorizontalFlip", "Affine"]
    assert runs(recipe._transforms) == [(1, 4)] and first_run(recipe._transforms) == 1
    assert _names(fuse_runs(recipe._transforms, start=1)) == _names(fused[1:])


@pytest.mark.parametrize("cut", [{"RandomResizedCrop": {"size": [96, 96]}},
                                 {"Resize": {"height": 96, "width": 96, "interpolation": "area"}},
                                 {"RandomCrop": {"height": 96, "width": 96, "pad_if_needed": True}},
                                 {"RGBShift": {"p": 1.0}}])
def test_a_transform_it_cannot_express_cuts_the_run(cut):
    recipe = load_recipe({"transforms": [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}, cut,
                                         {"HorizontalFlip": {"p": 0.5}}]})
    assert _names(fuse_runs(recipe._transforms)) == ["FusedGeometry", type(recipe._transforms[2]).__name__,
                                                     "HorizontalFlip"]


def test_a_single_geometric_transform_is_left_as_it_is():
    recipe = load_recipe({"transforms": [{"RGBShift": {}}, {"HorizontalFlip": {}}, {"CLAHE": {}}]})
    assert not any(isinstance(t, FusedGeometry) for t in fuse_runs(recipe._transforms))


# --- the same draws -----------------------------------------------------------------------


def _same_params(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)


@pytest.mark.parametrize("name", list(RECIPES))
def test_fused_and_unfused_draw_the_same_values_and_captions(name):
    plain, fused = _pair(RECIPES[name])
    fired = set()
    for seed, image in enumerate(_images()):
        for copy in range(4):
            out_a, applied_a = plain.trace(image, seed=100 * seed + copy)
            out_b, applied_b = fused.trace(image, seed=100 * seed + copy)
            assert [n for n, _ in applied_a] == [n for n, _ in applied_b]
            assert all(_same_params(pa, pb) for (_, pa), (_, pb) in zip(applied_a, applied_b))
            assert out_a.shape == out_b.shape
            fired |= {n for n, _ in applied_a}
    assert fired == {next(iter(step)) for step in RECIPES[name]}  # every step fired in some sample


@pytest.mark.parametrize("name", list(RECIPES))
def test_an_image_augmenter_gives_what_the_fused_recipe_gives(name):
    _, fused = _pair(RECIPES[name])
    for seed, image in enumerate(_images(6)):
        augment = fused.for_image(image)
        for copy in range(3):
            np.testing.assert_array_equal(augment(10 * seed + copy), fused(image, seed=10 * seed + copy))


def test_a_crop_larger_than_the_image_fails_naming_the_step_as_unfused():
    plain, fused = _pair([{"HorizontalFlip": {}}, {"RandomCrop": {"height": 400, "width": 400}}])
    with pytest.raises(TransformError, match="^RandomCrop") as unfused_error:
        plain(_images(1)[0], seed=0)
    with pytest.raises(TransformError, match="^RandomCrop") as fused_error:
        fused(_images(1)[0], seed=0)
    assert str(fused_error.value) == str(unfused_error.value)


# --- only the resampling changes ----------------------------------------------------------


def test_a_run_that_only_crops_and_flips_is_bit_identical():
    plain, fused = _pair([{"RandomCrop": {"height": 150, "width": 170}}, {"HorizontalFlip": {"p": 0.5}},
                          {"VerticalFlip": {"p": 0.5}}, {"CenterCrop": {"height": 120, "width": 110}}])
    for seed, image in enumerate(_images()):
        np.testing.assert_array_equal(fused(image, seed=seed), plain(image, seed=seed))


def _mean_difference(plain, fused) -> float:
    return float(np.mean([np.abs(plain(im, seed=s).astype(np.int16) - fused(im, seed=s)).mean()
                          for s, im in enumerate(_images())]))


def test_the_standard_recipe_fused_is_all_but_identical():
    # its run crops and flips (exactly) and warps once, as unfused: only rounding differs
    assert _mean_difference(*_pair(STANDARD)) < 0.01


@pytest.mark.parametrize("name", ["rotate first", "shift-scale-rotate", "reflect after a resized crop"])
def test_a_run_that_resamples_several_times_stays_within_a_few_grey_levels(name):
    assert _mean_difference(*_pair(RECIPES[name])) < 3.0


def test_what_lies_outside_a_crop_stays_the_fill_after_a_warp():
    shift = [{"RandomCrop": {"height": 100, "width": 100}},
             {"Affine": {"translate_px": {"x": [30, 30], "y": [20, 20]}, "fill": 0, "p": 1.0}}]
    plain, fused = _pair(shift)
    image = make_structured_rgb(200, 260, seed=5) | 1  # no pixel of the picture is 0
    for seed in range(5):
        a, b = plain(image, seed=seed), fused(image, seed=seed)
        np.testing.assert_array_equal(a[:20], 0)  # the fill, moved in by the shift
        np.testing.assert_array_equal(b[:20], 0)
        np.testing.assert_array_equal(b[:, :30], 0)


# --- the option ---------------------------------------------------------------------------


def test_fuse_geometry_is_a_recipe_option_kept_by_pickling_and_part_of_the_fingerprint():
    plain, fused = _pair(STANDARD)
    assert fused.fuse_geometry and not plain.fuse_geometry
    assert pickle.loads(pickle.dumps(fused)).fuse_geometry
    assert fused.to_albumentations()["fuse_geometry"] is True
    assert fused.fingerprint != plain.fingerprint  # its outputs differ: another run
    assert not any(isinstance(t, FusedGeometry) for t in fused.compose.transforms)  # what users get stays plain
