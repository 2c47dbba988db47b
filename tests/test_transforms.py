"""augkit.recipes.transforms: the names a recipe can use, their arguments, 1.x renames and enum words."""

from __future__ import annotations

import inspect
import warnings

import cv2
import numpy as np
import pytest

from augkit.core._albu import albumentations
from augkit.core.words import close_matches
from augkit.recipes.pca_color import PCAColor
from augkit.recipes.transforms import (
    INFORMATIONAL_WARNINGS,
    NOT_FOR_CLASSIFICATION,
    registry,
    renamed_argument,
    resolve_enum,
)

A = albumentations()

PROMISED = [
    "HorizontalFlip", "VerticalFlip", "RandomCrop", "CenterCrop", "RandomResizedCrop", "ShiftScaleRotate",
    "Affine", "RGBShift", "CLAHE", "CoarseDropout", "RandomBrightnessContrast", "ColorJitter", "Blur",
    "MedianBlur", "GaussNoise", "HueSaturationValue", "Resize", "SmallestMaxSize", "LongestMaxSize",
]
TRANSFORMS = sorted(name for name, entry in registry().items() if entry.kind != "composition")


@pytest.mark.parametrize("name", PROMISED)
def test_registry_has_the_promised_albumentations_transforms(name):
    entry = registry()[name]
    assert entry.kind == "transform"
    assert entry.cls is getattr(A, name)


@pytest.mark.parametrize("name", ["OneOf", "SomeOf", "Sequential", "RandomOrder"])
def test_registry_has_the_compositions(name):
    assert registry()[name].kind == "composition"


def test_registry_has_augkit_pca_color():
    entry = registry()["PCAColor"]
    assert entry.kind == "augkit" and entry.cls is PCAColor


def test_registry_leaves_out_transforms_that_need_boxes_masks_or_metadata():
    names = set(registry())
    assert {"BBoxSafeRandomCrop", "RandomSizedBBoxSafeCrop", "MaskDropout", "ConstrainedCoarseDropout"} <= set(
        NOT_FOR_CLASSIFICATION
    )
    assert names.isdisjoint(NOT_FOR_CLASSIFICATION)


def test_registry_leaves_out_3d_transforms():
    assert hasattr(A, "CoarseDropout3D")  # so that the check below can fail
    assert [name for name in registry() if name.endswith("3D")] == []


@pytest.mark.parametrize("name", TRANSFORMS)
def test_a_transform_built_on_defaults_gives_no_warning_but_informational_ones(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            registry()[name].cls()
        except (ValueError, TypeError):
            # Required arguments: a recipe must write them (tested in test_recipes).
            required = [k for k, v in registry()[name].arguments.items() if v is inspect.Parameter.empty]
            assert required or name in {"CropAndPad", "LongestMaxSize", "SmallestMaxSize"}, name
            return
    loud = [str(w.message) for w in caught if not INFORMATIONAL_WARNINGS.search(" ".join(str(w.message).split()))]
    assert loud == []


# Transforms whose defaults build but do not give an RGB uint8 image back, and why.
NOT_RGB_UINT8_ON_DEFAULTS = {
    "Crop": "its default window is 1024x1024, larger than the test image",
    "Normalize": "returns float32 by design",
    "ToFloat": "returns float32 by design",
    "FromFloat": "expects float input",
}


def _builds_on_defaults(name: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            registry()[name].cls()
        except (ValueError, TypeError):
            return False
    return True


BUILT_ON_DEFAULTS = [n for n in TRANSFORMS if _builds_on_defaults(n)]


def test_most_transforms_build_on_defaults():
    assert len(BUILT_ON_DEFAULTS) > 70


@pytest.mark.parametrize("name", [n for n in BUILT_ON_DEFAULTS if n not in NOT_RGB_UINT8_ON_DEFAULTS])
def test_a_transform_built_on_defaults_runs_on_an_rgb_uint8_image(name):
    """Guards the registry against transforms that need boxes, masks, volumes or metadata."""
    image = np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = A.Compose([registry()[name].cls(p=1.0)], seed=0)(image=image)["image"]
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def test_entry_arguments_give_defaults_and_mark_required_ones():
    dropout = registry()["CoarseDropout"].arguments
    assert dropout["num_holes_range"] == (1, 2)
    assert "max_holes" not in dropout
    crop = registry()["RandomCrop"].arguments
    assert crop["height"] is inspect.Parameter.empty
    assert "strict" not in crop and "self" not in crop


def test_entry_summary_is_the_first_paragraph_on_one_line():
    summary = registry()["HorizontalFlip"].summary
    assert summary and "\n" not in summary


# --- close matches, renames, enum words ------------------------------------------------------


def test_close_matches_ignores_case():
    assert close_matches("horizontalflip", list(registry())) == ["HorizontalFlip"]
    assert close_matches("HORIZONTALFLIP", list(registry())) == ["HorizontalFlip"]


def test_close_matches_finds_a_misspelling():
    assert "HorizontalFlip" in close_matches("horizntalflip", list(registry()))


def test_close_matches_is_empty_for_something_unrelated():
    assert close_matches("zzzz", list(registry())) == []


@pytest.mark.parametrize(
    ("transform", "argument", "fix"),
    [
        ("CoarseDropout", "max_holes", "num_holes_range"),
        ("CoarseDropout", "fill_value", "fill"),
        ("GaussNoise", "var_limit", "std_range"),
        ("RandomResizedCrop", "height", "size"),
        ("ImageCompression", "quality_lower", "quality_range"),
        ("Blur", "always_apply", "p: 1"),
        ("Affine", "cval", "fill"),
        ("Affine", "mode", "border_mode"),
    ],
)
def test_renamed_argument_names_the_2_0_spelling(transform, argument, fix):
    assert fix in renamed_argument(transform, argument)


def test_renamed_argument_is_none_for_a_current_or_unknown_argument():
    assert renamed_argument("Blur", "blur_limit") is None
    assert renamed_argument("Blur", "blur_limt") is None


@pytest.mark.parametrize(
    ("argument", "word", "constant"),
    [
        ("border_mode", "reflect_101", cv2.BORDER_REFLECT_101),
        ("border_mode", "constant", cv2.BORDER_CONSTANT),
        ("border_mode", "BORDER_REPLICATE", cv2.BORDER_REPLICATE),
        ("border_mode", "cv2.BORDER_REFLECT", cv2.BORDER_REFLECT),
        ("border_mode", "wrap", cv2.BORDER_WRAP),
        ("interpolation", "cubic", cv2.INTER_CUBIC),
        ("interpolation", "INTER_AREA", cv2.INTER_AREA),
        ("mask_interpolation", "nearest", cv2.INTER_NEAREST),
    ],
)
def test_resolve_enum_turns_words_into_opencv_constants(argument, word, constant):
    assert resolve_enum(argument, word) == constant


def test_resolve_enum_passes_integers_and_other_arguments_through():
    assert resolve_enum("border_mode", 4) == 4
    assert resolve_enum("source", "imagenet") == "imagenet"


def test_resolve_enum_turns_the_words_of_an_interpolation_pair_into_constants():
    assert resolve_enum("interpolation_pair", {"downscale": "area", "upscale": "cubic"}) == {
        "downscale": cv2.INTER_AREA, "upscale": cv2.INTER_CUBIC}


def test_resolve_enum_lists_the_words_for_an_unknown_one():
    with pytest.raises(ValueError, match=r"unknown value 'mirror'; use one of: .*reflect_101"):
        resolve_enum("border_mode", "mirror")
