"""What albumentations 1.x called things, and what to write for albumentations 2.0.8.

Old recipes and tutorials use 1.x names; 2.0.8 only warns about them and runs with its
defaults. augkit refuses them (see :mod:`augkit.recipes`), and says what to write
instead, with the recipe's own values converted where 2.0 changed the unit:

- ``GaussNoise var_limit`` was a variance of 0-255 pixel values, sampled uniformly
  (``var_limit: v`` meant ``[0, v]``); ``std_range`` is a standard deviation as a fraction
  of 255, so ``std = sqrt(var) / 255`` (``[10, 50]`` -> ``[0.0124, 0.0277]``). ``mean`` was
  in pixel values, ``mean_range`` is a fraction of 255. (albumentations 1.4.x's own
  conversion gave ``(sqrt(10/255), sqrt(50/255))`` = ``(0.198, 0.443)`` whatever the
  values, 16 times the 1.x noise.)
- ``Solarize threshold`` was a pixel value (default 128); ``threshold_range`` is a
  fraction of 255.
- Paired ``*_lower``/``*_upper``, ``min_*``/``max_*`` arguments became one ``[min, max]``
  range in the same unit, with 1.x's default for the half that is not written
  (CoarseDropout's ``min_holes`` defaulted to ``max_holes``, which defaulted to 8).

Values that cannot be converted (not numbers) get the form to write instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_BORDER_WORDS = {0: "constant", 1: "replicate", 2: "reflect", 3: "wrap", 4: "reflect_101"}
_INTERPOLATION_WORDS = {0: "nearest", 1: "linear", 2: "cubic", 3: "area", 4: "lanczos"}


@dataclass(frozen=True)
class Legacy:
    """1.x arguments of a transform that 2.0.8 spells as one argument ``new``, or not at all."""

    old: tuple[str, ...]
    new: str | None  # None: 2.0 has no such setting
    form: str = ""  # what to write when the value cannot be worked out: "[min, max]"
    defaults: tuple[Any, ...] = ()  # 1.x defaults of ``old``, in order (None: required or derived)
    convert: Callable[..., Any] | None = None  # ``old`` values, in order -> the value of ``new``
    note: str = ""  # why the number changed, when 2.0 changed the unit; why it is gone


def _range(*old: str, new: str, defaults: tuple[Any, Any]) -> Legacy:
    return Legacy(old, new, "[min, max]", defaults, lambda lo, hi: [lo, hi])


def _holes(lo: Any, hi: Any) -> list[Any]:
    return [hi if lo is None else lo, hi]  # 1.x: min_holes (min_height...) defaulted to the max


def _gauss_std(var_limit: Any) -> list[float]:
    lo, hi = (0, var_limit) if isinstance(var_limit, (int, float)) else var_limit
    return [math.sqrt(lo) / 255, math.sqrt(hi) / 255]


def _solarize(threshold: Any) -> list[float]:
    lo, hi = (threshold, threshold) if isinstance(threshold, (int, float)) else threshold
    return [lo / 255, hi / 255] if hi > 1 else [lo, hi]


def _border_word(mode: Any) -> Any:
    return _BORDER_WORDS.get(mode, mode) if isinstance(mode, int) else mode


def _interpolation_pair(interpolation: Any) -> dict[str, Any]:
    word = _INTERPOLATION_WORDS.get(interpolation, interpolation) if isinstance(interpolation, int) else interpolation
    return {"downscale": word, "upscale": word}


_FILL = {
    "value": "fill", "cval": "fill", "pad_cval": "fill", "pad_val": "fill", "fill_value": "fill",
    "mask_value": "fill_mask", "cval_mask": "fill_mask", "pad_cval_mask": "fill_mask", "mask_pad_val": "fill_mask",
    "mask_fill_value": "fill_mask", "mode": "border_mode", "pad_mode": "border_mode",
}
# Any transform: 1.x argument -> the 2.0 one (same value; a cv2 border constant as its word).
ANY_TRANSFORM = {
    old: Legacy((old,), new, "", (), _border_word if new == "border_mode" else (lambda v: v))
    for old, new in _FILL.items()
}

PER_TRANSFORM: dict[str, list[Legacy]] = {
    "CoarseDropout": [
        Legacy(("min_holes", "max_holes"), "num_holes_range", "[min, max]", (None, 8), _holes),
        Legacy(("min_height", "max_height"), "hole_height_range", "[min, max]", (None, 8), _holes),
        Legacy(("min_width", "max_width"), "hole_width_range", "[min, max]", (None, 8), _holes),
    ],
    "GaussNoise": [
        Legacy(("var_limit",), "std_range", "[min, max] (a fraction of 255)", (), _gauss_std,
               "var_limit was a variance of 0-255 values; std_range is a standard deviation as a fraction of "
               "255: sqrt(variance) / 255"),
        Legacy(("mean",), "mean_range", "[min, max] (a fraction of 255)", (), lambda m: [m / 255, m / 255],
               "mean was in 0-255 values; mean_range is a fraction of 255"),
    ],
    "Solarize": [
        Legacy(("threshold",), "threshold_range", "[min, max] (a fraction of 255)", (), _solarize,
               "threshold was a 0-255 value; threshold_range is a fraction of 255"),
    ],
    "ImageCompression": [_range("quality_lower", "quality_upper", new="quality_range", defaults=(99, 100))],
    "Downscale": [
        _range("scale_min", "scale_max", new="scale_range", defaults=(0.25, 0.25)),
        Legacy(("interpolation",), "interpolation_pair", "{downscale: nearest, upscale: nearest}", (),
               _interpolation_pair),
    ],
    "RandomFog": [_range("fog_coef_lower", "fog_coef_upper", new="fog_coef_range", defaults=(0.3, 1))],
    "RandomShadow": [_range("num_shadows_lower", "num_shadows_upper", new="num_shadows_limit", defaults=(1, 2))],
    "RandomSnow": [_range("snow_point_lower", "snow_point_upper", new="snow_point_range", defaults=(0.1, 0.3))],
    "RandomRain": [_range("slant_lower", "slant_upper", new="slant_range", defaults=(-10, 10))],
    "RandomSunFlare": [
        _range("angle_lower", "angle_upper", new="angle_range", defaults=(0, 1)),
        _range("num_flare_circles_lower", "num_flare_circles_upper", new="num_flare_circles_range",
               defaults=(6, 10)),
    ],
    "GridDropout": [
        _range("unit_size_min", "unit_size_max", new="unit_size_range", defaults=(None, None)),
        Legacy(("holes_number_x", "holes_number_y"), "holes_number_xy", "[x, y]", (None, None),
               lambda x, y: [x, y]),
        Legacy(("shift_x", "shift_y"), "shift_xy", "[x, y]", (0, 0), lambda x, y: [x, y]),
    ],
    "RandomResizedCrop": [Legacy(("height", "width"), "size", "[height, width]", (None, None),
                                 lambda h, w: [h, w])],
    "RandomSizedCrop": [Legacy(("height", "width"), "size", "[height, width]", (None, None), lambda h, w: [h, w])],
    "AdvancedBlur": [
        Legacy(("sigmaX_limit",), "sigma_x_limit", convert=lambda v: v),
        Legacy(("sigmaY_limit",), "sigma_y_limit", convert=lambda v: v),
    ],
    "Lambda": [Legacy(("keypoint",), "keypoints", convert=lambda v: v), Legacy(("bbox",), "bboxes", convert=lambda v: v)],
    "ElasticTransform": [Legacy(("alpha_affine",), None, note="2.0 has no affine part: add an Affine for it")],
    "OpticalDistortion": [Legacy(("shift_limit",), None, note="it had no effect since 1.4")],
    "PiecewiseAffine": [Legacy(("keypoints_threshold",), None, note="2.0 has no such setting")],
    "RandomGamma": [Legacy(("eps",), None, note="2.0 has no such setting")],
}

# Transforms 2.0 has under another name, or not at all.
RENAMED_TRANSFORMS = {
    "Cutout": "CoarseDropout",
    "JpegCompression": "ImageCompression",
    "RandomBrightness": "RandomBrightnessContrast",
    "RandomContrast": "RandomBrightnessContrast",
    "IAAAffine": "Affine",
    "IAAPerspective": "Perspective",
    "IAAPiecewiseAffine": "PiecewiseAffine",
    "IAASharpen": "Sharpen",
    "IAAEmboss": "Emboss",
    "IAASuperpixels": "Superpixels",
    "IAAAdditiveGaussianNoise": "GaussNoise",
    "IAACropAndPad": "CropAndPad",
    "IAAFliplr": "HorizontalFlip",
    "IAAFlipud": "VerticalFlip",
}


def yaml_value(value: Any) -> str:
    """A value as a recipe would write it: ``[0.0124, 0.0277]``, ``reflect_101``, ``80``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3g}" if 1e-4 <= abs(value) < 1e4 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


@dataclass(frozen=True)
class Fix:
    """What to write for some 1.x arguments of one transform."""

    old: tuple[str, ...]  # those the recipe wrote
    advice: str  # "write std_range: [0.0124, 0.0277] instead (...)", "drop it (...)"
    new: str | None = None  # the 2.0 argument it advises


def _advise(legacy: Legacy, given: Mapping[str, Any], valid: Mapping[str, Any] | None) -> str:
    if legacy.new is None:
        return f"drop it ({legacy.note})"
    if valid is not None and legacy.new not in valid:
        return f"drop it (2.0 has no {legacy.new} for this transform)"
    value = None
    if legacy.convert is not None:
        defaults = legacy.defaults or (None,) * len(legacy.old)
        values = [given.get(name, default) for name, default in zip(legacy.old, defaults)]
        try:
            if all(v is not None for v in values) or legacy.convert is _holes:
                value = legacy.convert(*values)
        except (TypeError, ValueError, ArithmeticError):  # not numbers: give the form instead
            value = None
    written = yaml_value(value) if value is not None else legacy.form
    note = f" ({legacy.note})" if legacy.note and value is not None else ""
    return f"write {legacy.new}: {written} instead{note}" if written else f"write {legacy.new} instead"


def fixes(transform: str, given: Mapping[str, Any], valid: Mapping[str, Any] | None = None) -> list[Fix]:
    """For the 1.x arguments among ``given`` (argument -> value), what to write instead;
    ``valid`` (2.0's arguments of ``transform``) tells a renamed argument from one that is
    gone. One Fix per 2.0 argument, so ``min_holes`` and ``max_holes`` give one Fix."""
    found: list[Fix] = []
    taken: set[str] = set()
    for legacy in PER_TRANSFORM.get(transform, []):
        old = tuple(name for name in legacy.old if name in given)
        if old:
            found.append(Fix(old, _advise(legacy, given, valid), legacy.new))
            taken.update(old)
    for name in given:
        if name in taken:
            continue
        if name == "always_apply":
            advice = "write p: 1 instead" if given[name] else "drop it (p alone decides)"
            found.append(Fix((name,), advice, "p"))
        elif name in ANY_TRANSFORM:
            found.append(Fix((name,), _advise(ANY_TRANSFORM[name], given, valid), ANY_TRANSFORM[name].new))
    return found


def renamed_argument(transform: str, arg: str) -> str | None:
    """What albumentations 2.0 calls a 1.x argument (the form, no value), or None."""
    if arg == "always_apply":
        return "p: 1"
    for legacy in PER_TRANSFORM.get(transform, []):
        if arg in legacy.old:
            return f"{legacy.new}: {legacy.form}".rstrip(": ") if legacy.new else "nothing (drop it)"
    legacy = ANY_TRANSFORM.get(arg)
    return legacy.new if legacy else None
