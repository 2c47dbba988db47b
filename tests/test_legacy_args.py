"""augkit.recipes.legacy_args: what to write for an albumentations 1.x argument, with the recipe's
own values converted where 2.0 changed the unit."""

from __future__ import annotations

import math

import pytest

from augkit.recipes.legacy_args import PER_TRANSFORM, RENAMED_TRANSFORMS, fixes, renamed_argument, yaml_value
from augkit.recipes import load_recipe
from augkit.recipes.transforms import registry


def advice(transform: str, given: dict) -> list[str]:
    return [fix.advice for fix in fixes(transform, given, registry()[transform].arguments)]


def test_gauss_noise_variance_becomes_a_standard_deviation_as_a_fraction_of_255():
    (text,) = advice("GaussNoise", {"var_limit": [10, 50]})
    assert text.startswith("write std_range: [0.0124, 0.0277] instead (var_limit was a variance of 0-255 values")
    assert math.isclose(math.sqrt(10) / 255, 0.0124, abs_tol=5e-5)
    assert math.isclose(math.sqrt(50) / 255, 0.0277, abs_tol=5e-5)


def test_a_single_gauss_noise_variance_meant_a_range_from_zero():
    assert advice("GaussNoise", {"var_limit": 50})[0].startswith("write std_range: [0, 0.0277] instead")


def test_gauss_noise_mean_becomes_a_fraction_of_255():
    assert advice("GaussNoise", {"mean": 51})[0].startswith("write mean_range: [0.2, 0.2] instead")


def test_solarize_threshold_becomes_a_fraction_of_255():
    assert advice("Solarize", {"threshold": 128})[0].startswith("write threshold_range: [0.502, 0.502] instead")


def test_quality_bounds_become_one_range_with_the_1x_default_for_the_missing_half():
    assert advice("ImageCompression", {"quality_lower": 80}) == ["write quality_range: [80, 100] instead"]
    assert advice("ImageCompression", {"quality_lower": 80, "quality_upper": 95}) == [
        "write quality_range: [80, 95] instead"]


def test_coarse_dropout_min_defaulted_to_max_in_1x():
    found = fixes("CoarseDropout", {"max_holes": 8, "min_height": 4, "max_height": 16, "max_width": 0.1})
    assert [(f.old, f.advice) for f in found] == [
        (("max_holes",), "write num_holes_range: [8, 8] instead"),
        (("min_height", "max_height"), "write hole_height_range: [4, 16] instead"),
        (("max_width",), "write hole_width_range: [0.1, 0.1] instead"),
    ]


def test_sun_flare_bounds_become_ranges_in_the_same_unit():
    assert advice("RandomSunFlare", {"angle_upper": 0.5, "num_flare_circles_lower": 3}) == [
        "write angle_range: [0, 0.5] instead", "write num_flare_circles_range: [3, 10] instead"]


def test_a_border_constant_becomes_its_word_and_values_become_fill():
    assert advice("Affine", {"mode": 4, "cval": 0, "cval_mask": 1}) == [
        "write border_mode: reflect_101 instead", "write fill: 0 instead", "write fill_mask: 1 instead"]


def test_always_apply_true_is_p_1_and_false_is_dropped():
    assert advice("Blur", {"always_apply": True}) == ["write p: 1 instead"]
    assert advice("Blur", {"always_apply": False}) == ["drop it (p alone decides)"]


def test_an_argument_that_is_gone_says_drop_it_and_why():
    assert advice("ElasticTransform", {"alpha_affine": 50}) == [
        "drop it (2.0 has no affine part: add an Affine for it)"]


def test_a_value_that_cannot_be_converted_gives_the_form():
    assert advice("GaussNoise", {"var_limit": "lots"}) == ["write std_range: [min, max] (a fraction of 255) instead"]


def test_a_1x_recipe_gets_every_fix_at_once_with_its_lines(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("transforms:\n"
                    "  - GaussNoise: {var_limit: [10, 50], p: 0.5}\n"
                    "  - ImageCompression: {quality_lower: 80, quality_upper: 95}\n"
                    "  - CoarseDropout: {max_holes: 8, max_height: 16, max_width: 16}\n"
                    "  - RandomResizedCrop: {height: 224, width: 224}\n"
                    "  - HorizontalFlip: {always_apply: true}\n")
    with pytest.raises(Exception) as info:
        load_recipe(path)
    assert str(info.value).splitlines() == [
        f"{path}:2: GaussNoise: 'var_limit' is an albumentations 1.x argument; write std_range: [0.0124, 0.0277] "
        f"instead (var_limit was a variance of 0-255 values; std_range is a standard deviation as a fraction of "
        f"255: sqrt(variance) / 255)",
        f"{path}:3: ImageCompression: 'quality_lower', 'quality_upper' are albumentations 1.x arguments; write "
        f"quality_range: [80, 95] instead",
        f"{path}:4: CoarseDropout: 'max_holes' is an albumentations 1.x argument; write num_holes_range: [8, 8] instead",
        f"{path}:4: CoarseDropout: 'max_height' is an albumentations 1.x argument; write hole_height_range: [16, 16] "
        f"instead",
        f"{path}:4: CoarseDropout: 'max_width' is an albumentations 1.x argument; write hole_width_range: [16, 16] "
        f"instead",
        f"{path}:5: RandomResizedCrop: 'height', 'width' are albumentations 1.x arguments; write size: [224, 224] "
        f"instead",  # and no "size is required" on top of it
        f"{path}:6: HorizontalFlip: 'always_apply' is an albumentations 1.x argument; write p: 1 instead",
    ]


def test_what_a_fix_says_to_write_loads_and_means_the_same(tmp_path):
    (fix,) = fixes("GaussNoise", {"var_limit": [10, 50]})
    value = fix.advice.split("std_range: ")[1].split(" instead")[0]
    recipe = load_recipe({"transforms": [{"GaussNoise": {"std_range": eval(value)}}]})  # noqa: S307 - our own text
    low, high = recipe.compose.transforms[0].std_range
    assert math.isclose(low * 255, math.sqrt(10), rel_tol=1e-2) and math.isclose(high * 255, math.sqrt(50), rel_tol=1e-2)


@pytest.mark.parametrize("transform", sorted(PER_TRANSFORM))
def test_every_2_0_argument_a_fix_names_exists(transform):
    entry = registry()[transform]
    for legacy in PER_TRANSFORM[transform]:
        assert legacy.new is None or legacy.new in entry.arguments, (transform, legacy.new)
        assert not set(legacy.old) & set(entry.arguments), (transform, legacy.old)  # really gone in 2.0


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED_TRANSFORMS.items()))
def test_every_renamed_transform_names_a_registered_one_and_a_recipe_says_so(old, new):
    assert new in registry() and old not in registry()
    with pytest.raises(Exception, match=f"{old} is albumentations 1.x; write {new} instead"):
        load_recipe({"transforms": [old]})


def test_renamed_argument_gives_the_form_without_a_value():
    assert renamed_argument("CoarseDropout", "max_holes") == "num_holes_range: [min, max]"
    assert renamed_argument("Affine", "cval") == "fill"
    assert renamed_argument("Blur", "blur_limit") is None


@pytest.mark.parametrize(("value", "text"), [
    ([10, 50], "[10, 50]"), (0.01240, "0.0124"), (80.0, "80"), (True, "true"), ({"a": 1}, "{a: 1}"), (None, "null"),
])
def test_yaml_value_writes_what_a_recipe_would(value, text):
    assert yaml_value(value) == text
