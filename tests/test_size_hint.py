"""A recipe's size hint (augkit.recipes.size_hint): what its first step needs of a decoded
image, so that a JPEG can be decoded at 1/2, 1/4 or 1/8 of its size, and the recipe's
``reduced_decode:`` option that turns it off."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from augkit.core.errors import RecipeError
from augkit.input.decoding import decode_bytes
from augkit.input.reduced import SizeHint, reduced_size, reduction
from augkit.recipes import load_recipe
from augkit.recipes.size_hint import max_size_hw_shape, max_size_shape, size_hint
from conftest import make_structured_rgb
from imagefiles import encoded

STANDARD = "recipes/standard.yaml"


def _recipe(*transforms, **top):
    return load_recipe({"transforms": list(transforms), **top})


def test_the_standard_recipe_needs_a_shorter_side_of_256():
    hint = size_hint(load_recipe(STANDARD))
    assert (hint.height, hint.width, hint.shorter, hint.longer) == (0, 0, 256, 0)
    assert [rule(3000, 4000) for rule in hint.shapes] == [(256, 341)]


@pytest.mark.parametrize("first, expected", [
    ({"LongestMaxSize": {"max_size": 300}}, (0, 0, 0, 300)),
    ({"Resize": {"height": 224, "width": 320}}, (224, 320, 0, 0)),
    ({"SmallestMaxSize": {"max_size": [224, 256, 288]}}, (0, 0, 288, 0)),
    ({"SmallestMaxSize": {"max_size_hw": [200, 300]}}, (200, 300, 0, 0)),
    ({"LongestMaxSize": {"max_size_hw": [None, 500]}}, (0, 500, 0, 0)),
])
def test_each_kind_of_leading_shrink_says_what_it_needs(first, expected):
    hint = size_hint(_recipe(first, "HorizontalFlip"))
    assert (hint.height, hint.width, hint.shorter, hint.longer) == expected


@pytest.mark.parametrize("first", [
    {"SmallestMaxSize": {"max_size": 256, "p": 0.9}},  # may not fire: the image would stay reduced
    {"RandomResizedCrop": {"size": [224, 224]}},  # the crop may be a small region at full resolution
    {"RandomCrop": {"height": 64, "width": 64}},
    {"OneOf": {"transforms": [{"SmallestMaxSize": {"max_size": 256}}]}},
    "HorizontalFlip",
])
def test_a_recipe_that_does_not_start_with_a_shrink_that_always_applies_gives_no_hint(first):
    assert size_hint(_recipe(first, "HorizontalFlip")) is None


def test_a_recipe_whose_p_is_below_1_gives_no_hint():
    recipe = load_recipe({"transform": {"__class_fullname__": "Compose", "p": 0.5, "transforms": [
        {"__class_fullname__": "SmallestMaxSize", "max_size": 256, "p": 1.0}]}})
    assert size_hint(recipe) is None


def test_reduced_decode_false_turns_the_hint_off_and_survives_pickling_and_saving():
    recipe = _recipe({"SmallestMaxSize": {"max_size": 256}}, reduced_decode=False)
    assert recipe.reduced_decode is False and size_hint(recipe) is None
    assert pickle.loads(pickle.dumps(recipe)).reduced_decode is False
    saved = recipe.to_albumentations()
    assert saved["reduced_decode"] is False and load_recipe(saved).reduced_decode is False
    assert load_recipe(STANDARD).reduced_decode is True


def test_reduced_decode_does_not_change_the_recipes_fingerprint():
    on = _recipe({"SmallestMaxSize": {"max_size": 256}})
    off = _recipe({"SmallestMaxSize": {"max_size": 256}}, reduced_decode=False)
    assert on.fingerprint == off.fingerprint


def test_reduced_decode_must_be_true_or_false():
    with pytest.raises(RecipeError, match="reduced_decode must be true or false"):
        _recipe("HorizontalFlip", reduced_decode="no")


# --- the output-size rules are albumentations' own ------------------------------------------


SIDES = [1, 2, 3, 7, 99, 224, 255, 256, 257, 333, 375, 500, 501, 641, 1000]


@pytest.mark.parametrize("name", ["SmallestMaxSize", "LongestMaxSize"])
@pytest.mark.parametrize("max_size", [1, 100, 256])
def test_the_max_size_rule_gives_the_size_albumentations_makes(name, max_size):
    from augkit.core._albu import albumentations

    transform = getattr(albumentations(), name)(max_size=max_size, p=1)
    for h, w in itertools.product(SIDES, SIDES):
        made = transform(image=np.zeros((h, w, 3), np.uint8))["image"].shape[:2]
        assert max_size_shape(name == "SmallestMaxSize", max_size, h, w) == made, (h, w)


@pytest.mark.parametrize("name", ["SmallestMaxSize", "LongestMaxSize"])
@pytest.mark.parametrize("hw", [(200, 300), (None, 256), (256, None)])
def test_the_max_size_hw_rule_gives_the_size_albumentations_makes(name, hw):
    from augkit.core._albu import albumentations

    transform = getattr(albumentations(), name)(max_size_hw=hw, p=1)
    for h, w in itertools.product(SIDES, SIDES):
        made = transform(image=np.zeros((h, w, 3), np.uint8))["image"].shape[:2]
        assert max_size_hw_shape(name == "SmallestMaxSize", *hw, h, w) == made, (h, w)


# --- a recipe on a reduced decode -----------------------------------------------------------


@pytest.mark.parametrize("first", [{"SmallestMaxSize": {"max_size": 64}}, {"LongestMaxSize": {"max_size": 90}},
                                   {"Resize": {"height": 50, "width": 70}},
                                   {"SmallestMaxSize": {"max_size_hw": [60, 70]}}])
def test_a_recipe_makes_the_same_size_from_a_reduced_decode_as_from_the_whole_image(first):
    recipe = _recipe(first)
    hint = size_hint(recipe)
    reduced_somewhere = False
    for h, w in [(520, 736), (600, 802), (488, 1000), (1000, 520), (1020, 772), (517, 733)]:
        data = encoded(make_structured_rgb(h, w, seed=h), "JPEG", quality=85)
        reduced, info = decode_bytes(data, size_hint=hint)
        whole, _ = decode_bytes(data)
        reduced_somewhere |= info.scale > 1
        assert recipe(reduced, seed=1).shape == recipe(whole, seed=1).shape
        assert info.scale == reduction(h, w, hint) and reduced.shape[:2] == reduced_size(h, w, info.scale)
    assert reduced_somewhere


def test_an_image_smaller_than_the_target_is_decoded_whole():
    hint = size_hint(_recipe({"Resize": {"height": 224, "width": 224}}))
    data = encoded(make_structured_rgb(300, 400), "JPEG")
    assert decode_bytes(data, size_hint=hint)[1].scale == 1
    assert hint == SizeHint(height=224, width=224)
