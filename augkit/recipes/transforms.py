"""The transform registry: every name a recipe can use, and what its arguments are.

A recipe names albumentations 2.0.8 image transforms by class name, the compositions
``OneOf``/``SomeOf``/``Sequential``/``RandomOrder``, and augkit's own transforms
(``PCAColor``, ``RandAugment``, ``TrivialAugmentWide``). This module knows those names, their
arguments and defaults, and the OpenCV constants a person would rather write as words
(``border_mode: reflect_101``);
:mod:`augkit.recipes.legacy_args` knows what albumentations 1.x called them.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any

COMPOSITIONS = ("OneOf", "SomeOf", "Sequential", "RandomOrder")

# Image transforms that need a target a classification sample does not have
# (bounding boxes, masks, volumes, a font file): they would fail on the first image.
NOT_FOR_CLASSIFICATION = {
    "AtLeastOneBBoxRandomCrop": "needs bounding boxes",
    "BBoxSafeRandomCrop": "needs bounding boxes",
    "RandomSizedBBoxSafeCrop": "needs bounding boxes",
    "RandomCropNearBBox": "needs bounding boxes",
    "CropNonEmptyMaskIfExists": "needs a mask",
    "MaskDropout": "needs a mask",
    "ConstrainedCoarseDropout": "needs a mask or bounding boxes",
    "CubicSymmetry": "needs a 3D volume",
    "Mosaic": "needs extra images passed as metadata",
    "FDA": "needs reference images passed as metadata",
    "HistogramMatching": "needs reference images passed as metadata",
    "PixelDistributionAdaptation": "needs reference images passed as metadata",
    "OverlayElements": "needs overlay images passed as metadata",
    "TextImage": "needs a font file and text metadata",
}

# Words for OpenCV constants, so that recipes need not know cv2's integers.
_BORDER = {"constant": 0, "replicate": 1, "reflect": 2, "wrap": 3, "reflect_101": 4, "reflect101": 4}
_INTERPOLATION = {"nearest": 0, "linear": 1, "cubic": 2, "area": 3, "lanczos": 4, "lanczos4": 4}
ENUM_ARGS: dict[str, dict[str, int]] = {
    "border_mode": _BORDER,
    "interpolation": _INTERPOLATION,
    "mask_interpolation": _INTERPOLATION,
}

# Warnings albumentations gives for a well-formed transform, about its own design rather
# than the user's arguments. Any other warning while building is an error: a recipe must
# never run with something other than what its author wrote.
INFORMATIONAL_WARNINGS = re.compile(
    r"is a special case of|is a specialized version of|is an alias for|is very slow"
)


@dataclass(frozen=True)
class Entry:
    """One name a recipe can use."""

    name: str
    cls: type
    kind: str  # "transform", "composition" or "augkit"

    @property
    def arguments(self) -> dict[str, Any]:
        """Argument name -> default (``inspect.Parameter.empty`` when required)."""
        return argument_defaults(self.cls)

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.cls) or ""
        return doc.strip().split("\n\n")[0].replace("\n", " ")


@functools.lru_cache(maxsize=None)
def registry() -> dict[str, Entry]:
    """Every usable name -> Entry. Imports albumentations (slow): call it only when needed."""
    from augkit.core._albu import albumentations

    A = albumentations()  # first: the package's own import goes through augkit.core._albu
    from albumentations.core.transforms_interface import DualTransform, ImageOnlyTransform

    from augkit.recipes.auto_augment import RandAugment, TrivialAugmentWide
    from augkit.recipes.pca_color import PCAColor

    entries: dict[str, Entry] = {}
    for name in sorted(dir(A)):
        cls = getattr(A, name)
        if not (inspect.isclass(cls) and issubclass(cls, (ImageOnlyTransform, DualTransform))):
            continue
        if inspect.isabstract(cls) or name.endswith("3D") or name in NOT_FOR_CLASSIFICATION:
            continue
        if cls in (ImageOnlyTransform, DualTransform):
            continue
        entries[name] = Entry(name, cls, "transform")
    for name in COMPOSITIONS:
        entries[name] = Entry(name, getattr(A, name), "composition")
    entries["PCAColor"] = Entry("PCAColor", PCAColor, "augkit")
    entries["RandAugment"] = Entry("RandAugment", RandAugment, "augkit")
    entries["TrivialAugmentWide"] = Entry("TrivialAugmentWide", TrivialAugmentWide, "augkit")
    return entries


@functools.lru_cache(maxsize=None)
def argument_defaults(cls: type) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    return {
        name: p.default
        for name, p in params.items()
        if name not in ("self", "strict") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def renamed_argument(transform: str, arg: str) -> str | None:
    """What albumentations 2.0 calls a 1.x argument, or None if it was not renamed
    (:func:`augkit.recipes.legacy_args.fixes` gives the value to write too)."""
    from augkit.recipes.legacy_args import renamed_argument as renamed

    return renamed(transform, arg)


def resolve_enum(arg: str, value: Any) -> Any:
    """``border_mode: reflect_101`` -> 4; integers and other arguments pass through.

    Raises ValueError with the accepted words when the word is unknown.
    """
    if arg == "interpolation_pair" and isinstance(value, dict):  # Downscale: {downscale: area, upscale: linear}
        return {key: resolve_enum("interpolation", v) for key, v in value.items()}
    words = ENUM_ARGS.get(arg)
    if words is None or not isinstance(value, str):
        return value
    key = value.strip().lower().removeprefix("cv2.").removeprefix("border_").removeprefix("inter_")
    if key in words:
        return words[key]
    raise ValueError(f"unknown value {value!r}; use one of: {', '.join(sorted(words))}")
