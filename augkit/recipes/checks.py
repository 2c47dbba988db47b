"""Beyond building: arguments that build but fail at run time, and the image size a recipe
needs (the dry run on synthetic images for ``augkit recipe check`` is :mod:`augkit.recipes.probe`).

albumentations validates each argument's type and range, not whether the transform can
run. Three layers catch the rest:

1. :func:`number_problems` and :func:`argument_problems`, at load time, for every
   command: a value no image can
   satisfy (``SomeOf n: -1``, ``RandomScale`` down to 0x, a number that is not finite or
   past OpenCV's 32-bit integers) or one that makes every image cost seconds or crash
   OpenCV (a blur kernel over :data:`MAX_KERNEL` pixels).
2. :func:`size_needs`: the crops that need images of some size (``RandomCrop`` larger
   than the images fails on each); ``recipe check`` prints them, and the commands, which
   know their images, record a too-small one as a failed sample.
3. :func:`augkit.recipes.probe.probe`: a dry run of each transform and of the whole
   recipe on synthetic images, in a child process with a time and memory limit.

This module imports no other recipe module at run time (:mod:`augkit.recipes.build` calls
it while building), so the recipe modules form no circle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from augkit.recipes.build import Step

MAX_KERNEL = 255  # px: OpenCV's median filter stops near it; a box or Gaussian filter past it takes seconds
INT_LIMIT = 2**31 - 1  # OpenCV takes sizes and counts as 32-bit integers


# --- 1. arguments that build but cannot run ------------------------------------------------


def _numbers_in(value: Any) -> Iterator[float | int]:
    """Every number inside an argument's value, however nested (booleans are not numbers).
    Not :func:`augkit.core.words.numbers`, which reads a fixed count from text a person typed."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers_in(item)


def number_problems(args: dict[str, Any]) -> list[tuple[str, str]]:
    """(argument, message) for each argument holding a number no transform can use: not
    finite, or past OpenCV's 32-bit integers. Checked before building."""
    problems: list[tuple[str, str]] = []
    for key, value in args.items():
        for number in _numbers_in(value):
            if isinstance(number, float) and not math.isfinite(number):
                problems.append((key, f"{key}: {number} is not a finite number"))
                break
            if abs(number) > INT_LIMIT:
                problems.append((key, f"{key}: {number:g} is past what OpenCV takes (2^31 - 1)"))
                break
    return problems


def composition_problems(args: dict[str, Any]) -> list[tuple[str, str]]:
    """(argument, message) for a composition's own arguments, which albumentations does
    not validate: ``OneOf(p="x")`` builds and fails on the first image."""
    problems: list[tuple[str, str]] = []
    p = args.get("p", 1)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        problems.append(("p", f"p: must be a number from 0 to 1 (got {p!r:.40})"))
    n = args.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int):
        problems.append(("n", f"n: must be a whole number (got {n!r:.40})"))
    if not isinstance(args.get("replace", False), bool):
        problems.append(("replace", f"replace: must be true or false (got {args['replace']!r:.40})"))
    return problems


def argument_problems(step: Step, transform: Any) -> list[tuple[str | None, str]]:
    """(argument or None, message) for each value of a built transform that no image can
    run with, or that would cost seconds per image or crash OpenCV."""
    problems: list[tuple[str | None, str]] = []
    kind = type(transform).__name__
    if "blur_limit" in step.args and hasattr(transform, "blur_limit"):
        largest = max(_numbers_in(transform.blur_limit), default=0)
        if largest > MAX_KERNEL:
            problems.append(("blur_limit", f"blur_limit: a {largest:g} px kernel is past {MAX_KERNEL} px (larger "
                                           f"kernels take seconds per image, or crash OpenCV's median filter)"))
    if kind in ("SomeOf", "RandomOrder") and transform.n < 1:
        problems.append(("n", f"n: {transform.n} transforms cannot be applied; n is how many of the "
                              f"{len(transform.transforms)} to apply, at least 1"))
    if kind == "RandomScale" and 1 + min(transform.scale_limit) <= 0:  # the factor is 1 + a limit
        lowest = min(transform.scale_limit)
        problems.append(("scale_limit", f"scale_limit: the factor reaches 1 + ({lowest:g}) = {1 + lowest:g}x, an "
                                        f"empty image; keep the limits above -1"))
    if kind == "Downscale" and min(transform.scale_range) <= 0:
        problems.append(("scale_range", "scale_range: a scale of 0 makes an empty image; keep it above 0"))
    return problems


# --- 2. the image size a recipe needs --------------------------------------------------------


@dataclass(frozen=True)
class SizeNeed:
    """A step that fails on images smaller than ``height`` x ``width`` where it runs."""

    height: int
    width: int
    name: str
    line: int | None
    after_resize: bool  # a step before it changes the size: the need is not the input's

    def describe(self) -> str:
        where = " where it runs (after the resizing before it)" if self.after_resize else ""
        at = f" at line {self.line}" if self.line else ""
        return f"needs images at least {self.width} wide and {self.height} high{where} ({self.name}{at})"


@dataclass(frozen=True)
class _Bound:
    """What is known of the image size before a step: at least ``height`` x ``width``, and
    whether it is still the input's size."""

    height: int = 0
    width: int = 0
    resized: bool = False

    def meet(self, other: _Bound) -> _Bound:
        return _Bound(min(self.height, other.height), min(self.width, other.width), self.resized or other.resized)


_UNKNOWN = _Bound(0, 0, True)
# DualTransforms that keep the size (an ImageOnlyTransform always does), some when an
# argument says so.
_KEEP_SIZE = {
    "HorizontalFlip", "VerticalFlip", "ShiftScaleRotate", "SafeRotate", "ElasticTransform", "GridDistortion",
    "OpticalDistortion", "PiecewiseAffine", "ThinPlateSpline", "GridElasticDeform", "CoarseDropout", "GridDropout",
    "XYMasking", "Erasing", "FrequencyMasking", "TimeMasking", "TimeReverse", "PixelDropout", "RandomGridShuffle",
    "Morphological", "NoOp",
}
_KEEP_SIZE_UNLESS = {"Affine": ("fit_output", True), "Perspective": ("keep_size", False),
                     "Rotate": ("crop_border", True), "CropAndPad": ("keep_size", False)}


def leaf_need(transform: Any) -> tuple[int, int] | None:
    """(height, width) a crop needs of its input, or None."""
    kind = type(transform).__name__
    if kind in ("RandomCrop", "CenterCrop") and not transform.pad_if_needed:
        return int(transform.height), int(transform.width)
    if kind == "Crop" and not transform.pad_if_needed:
        return int(transform.y_max), int(transform.x_max)
    if kind == "RandomSizedCrop":
        tallest = int(max(transform.min_max_height))
        return tallest, int(tallest * transform.w2h_ratio)
    return None


def _leaf_after(transform: Any, bound: _Bound) -> _Bound:
    from albumentations.core.transforms_interface import ImageOnlyTransform

    kind = type(transform).__name__
    if isinstance(transform, ImageOnlyTransform) or kind in _KEEP_SIZE:
        return bound
    if kind in _KEEP_SIZE_UNLESS:
        attribute, changes = _KEEP_SIZE_UNLESS[kind]
        return _UNKNOWN if getattr(transform, attribute) == changes else bound
    if kind in ("RandomCrop", "CenterCrop", "Resize"):
        return _Bound(int(transform.height), int(transform.width), True)
    if kind == "Crop":
        return _Bound(int(transform.y_max - transform.y_min), int(transform.x_max - transform.x_min), True)
    if kind in ("RandomResizedCrop", "RandomSizedCrop"):
        return _Bound(int(transform.size[0]), int(transform.size[1]), True)
    if kind == "SmallestMaxSize" and transform.max_size is not None:
        side = int(min(_numbers_in(transform.max_size)))
        return _Bound(side, side, True)
    if kind == "PadIfNeeded":
        return _Bound(max(bound.height, transform.min_height or 0), max(bound.width, transform.min_width or 0), True)
    return _UNKNOWN


def _walk_sizes(step: Step, transform: Any, bound: _Bound, needs: list[SizeNeed]) -> _Bound:
    kind = type(transform).__name__
    if step.children is None:
        need = leaf_need(transform)
        if need and (not bound.resized or bound.height < need[0] or bound.width < need[1]):
            needs.append(SizeNeed(need[0], need[1], step.name, step.line, bound.resized))
        return _leaf_after(transform, bound)
    pairs = list(zip(step.children, transform.transforms, strict=True))
    if kind == "Sequential":
        after = bound
        for child, child_transform in pairs:
            after = _walk_sizes(child, child_transform, after, needs)
        return after if transform.p >= 1 else after.meet(bound)
    results = [_walk_sizes(child, child_transform, bound, needs) for child, child_transform in pairs]
    if kind == "OneOf":
        after = results[0]
        for result in results[1:]:
            after = after.meet(result)
        return after if transform.p >= 1 else after.meet(bound)
    return bound if all(r == bound for r in results) else _UNKNOWN  # SomeOf, RandomOrder: any order


def size_needs(steps: list[Step], transforms: list) -> list[SizeNeed]:
    """The crops that need images of some size where they run, in recipe order."""
    needs: list[SizeNeed] = []
    bound = _Bound()
    for step, transform in zip(steps, transforms, strict=True):
        bound = _walk_sizes(step, transform, bound, needs)
    return needs


# --- the words for a failure ---------------------------------------------------------------


def describe_exception(exc: BaseException) -> str:
    """One line: the exception's type and message, OpenCV's source location left out."""
    text = " ".join(str(exc).split())
    if "error: (" in text and text.startswith("OpenCV"):
        text = text[text.index("error: (") + len("error: "):]  # "(-215:Assertion failed) ksize > 0 in ..."
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
