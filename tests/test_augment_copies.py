"""One input's outputs (augkit.stages.augment_copies): decoded once, the original whole, each
copy seeded by (seed, key, copy); what fails is a row's reason and message."""

from __future__ import annotations

import numpy as np

from augkit.core.seeds import derive_seed
from augkit.input.decoding import decode_image
from augkit.recipes import load_recipe
from augkit.stages.augment_copies import Copies
from augkit.stages.augment_plan import AugmentOptions
from conftest import make_structured_rgb
from imagefiles import encoded

RECIPE = {"transforms": [{"HorizontalFlip": {"p": 0.5}}, {"RandomCrop": {"height": 20, "width": 20}}]}


def test_the_original_is_the_image_and_copy_k_the_recipe_seeded_by_seed_key_and_k(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(encoded(make_structured_rgb(30, 40), "PNG"))
    recipe = load_recipe(RECIPE)
    made = list(Copies(recipe, AugmentOptions(seed=5))(str(path), "cat/x.png", (("x_orig", None), ("x_00", 0),
                                                                                 ("x_01", 1))))
    assert [(m.output, m.copy, m.failure) for m in made] == [("x_orig", None, None), ("x_00", 0, None),
                                                              ("x_01", 1, None)]
    image = decode_image(path)
    assert np.array_equal(made[0].image, image)
    for m in made[1:]:
        assert np.array_equal(m.image, recipe(image, seed=derive_seed(5, "cat/x.png", m.copy)))


def test_an_input_that_cannot_be_read_is_one_failure_with_its_reason(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"")
    made = list(Copies(load_recipe(RECIPE), AugmentOptions())(str(path), "x.jpg", (("x_00", 0), ("x_01", 1))))
    assert len(made) == 1 and (made[0].output, made[0].image) == ("", None)
    assert made[0].failure["reason"] == "empty" and "x.jpg" in made[0].failure["message"]


def test_a_copy_the_recipe_fails_on_is_that_copys_transform_error(tmp_path):
    path = tmp_path / "small.png"
    path.write_bytes(encoded(make_structured_rgb(10, 10), "PNG"))  # smaller than the crop
    made = list(Copies(load_recipe(RECIPE), AugmentOptions())(str(path), "small.png", (("s_orig", None), ("s_00", 0))))
    assert made[0].failure is None
    assert made[1].failure["reason"] == "transform_error" and "copy 0" in made[1].failure["message"]
