"""``RandAugment`` and ``TrivialAugmentWide``: the automatic policies of Cubuk et al. (2019) and
Muller and Hutter (2021), as torchvision implements them, built from albumentations 2.0.8
operations.

Both choose among torchvision's 14 operations (:data:`OPS`) with torchvision's magnitude
ranges (``RandAugment._augmentation_space`` and ``TrivialAugmentWide._augmentation_space`` in
``torchvision.transforms.autoaugment``):

- ``RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31)``: ``num_ops`` times, an
  operation drawn uniformly, at the fixed bin ``magnitude`` of its range; a signed
  operation's sign drawn with even odds.
- ``TrivialAugmentWide(num_magnitude_bins=31)``: one operation drawn uniformly, at a bin
  drawn uniformly from its (wider) range, its sign drawn with even odds.

Every draw comes from the transform's random generator, which augkit seeds per sample with
the rest of the recipe (:func:`augkit.core.seeds.seed_pipeline`), so a sample's operations
follow its seed like every other transform's parameters. The drawn operations and their
magnitudes are the transform's parameters (``ops``), which ``preview`` captions show.

Each operation is the albumentations function that does the same thing (the README's table
says which, and how each differs from torchvision's): the geometric ones are one
``warp_affine`` with torchvision's own matrix (shears about the top-left corner, rotations
about the centre, nearest-neighbour and black fill by default); ``Brightness``, ``Color`` and
``Contrast`` albumentations' torchvision-style ``adjust_*`` functions; ``Sharpness``
torchvision's smoothing kernel through albumentations' ``convolve``; ``Posterize`` and
``Solarize`` albumentations' own. ``AutoContrast`` and ``Equalize`` follow PIL's rules here,
as torchvision does, since albumentations' differ by a few levels (see their functions).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from augkit.core._albu import albumentations

A = albumentations()
from albumentations.augmentations.geometric import functional as fgeometric  # noqa: E402
from albumentations.augmentations.pixel import functional as fpixel  # noqa: E402
from albumentations.core.transforms_interface import BaseTransformInitSchema  # noqa: E402

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
SIGNED = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
                    "Sharpness"})
INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_LANCZOS4)

# torchvision's smoothing kernel (PIL's ImageFilter.SMOOTH), the "degenerate" image of Sharpness
_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13


def rand_augment_space(num_bins: int, height: int, width: int) -> dict[str, np.ndarray | None]:
    """RandAugment's magnitudes per operation, bin by bin (None: it takes none)."""
    return {
        "Identity": None,
        "ShearX": np.linspace(0.0, 0.3, num_bins),
        "ShearY": np.linspace(0.0, 0.3, num_bins),
        "TranslateX": np.linspace(0.0, 150.0 / 331.0 * width, num_bins),
        "TranslateY": np.linspace(0.0, 150.0 / 331.0 * height, num_bins),
        "Rotate": np.linspace(0.0, 30.0, num_bins),
        "Brightness": np.linspace(0.0, 0.9, num_bins),
        "Color": np.linspace(0.0, 0.9, num_bins),
        "Contrast": np.linspace(0.0, 0.9, num_bins),
        "Sharpness": np.linspace(0.0, 0.9, num_bins),
        "Posterize": 8 - np.round(np.arange(num_bins) / ((num_bins - 1) / 4)),
        "Solarize": np.linspace(255.0, 0.0, num_bins),
        "AutoContrast": None,
        "Equalize": None,
    }


def trivial_augment_wide_space(num_bins: int) -> dict[str, np.ndarray | None]:
    """TrivialAugmentWide's magnitudes per operation, bin by bin (None: it takes none)."""
    return {
        "Identity": None,
        "ShearX": np.linspace(0.0, 0.99, num_bins),
        "ShearY": np.linspace(0.0, 0.99, num_bins),
        "TranslateX": np.linspace(0.0, 32.0, num_bins),
        "TranslateY": np.linspace(0.0, 32.0, num_bins),
        "Rotate": np.linspace(0.0, 135.0, num_bins),
        "Brightness": np.linspace(0.0, 0.99, num_bins),
        "Color": np.linspace(0.0, 0.99, num_bins),
        "Contrast": np.linspace(0.0, 0.99, num_bins),
        "Sharpness": np.linspace(0.0, 0.99, num_bins),
        "Posterize": 8 - np.round(np.arange(num_bins) / ((num_bins - 1) / 6)),
        "Solarize": np.linspace(255.0, 0.0, num_bins),
        "AutoContrast": None,
        "Equalize": None,
    }


# --- the operations ---------------------------------------------------------------------------


def _torchvision_affine(center: tuple[float, float], angle: float, translate: tuple[float, float],
                        shear: tuple[float, float]) -> np.ndarray:
    """The forward 3x3 matrix torchvision's ``F.affine`` applies (``_get_inverse_affine_matrix``
    with ``inverted=False``, scale 1), in PIL's frame: pixel ``x`` spans ``[x, x + 1)``."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    cx, cy = center
    tx, ty = translate
    return np.array([[a, b, cx + tx - a * cx - b * cy], [c, d, cy + ty - c * cx - d * cy], [0.0, 0.0, 1.0]])


def _warp(img: np.ndarray, matrix: np.ndarray, interpolation: int, fill) -> np.ndarray:
    """``matrix`` (PIL's frame) applied with albumentations' ``warp_affine``, whose frame puts
    pixel centres on whole numbers: half a pixel apart."""
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    return fgeometric.warp_affine(img, back @ matrix @ half, interpolation, fill, cv2.BORDER_CONSTANT, img.shape[:2])


def _sharpness(img: np.ndarray, factor: float) -> np.ndarray:
    """torchvision's ``adjust_sharpness``: blend with the smoothed image, whose border pixels
    stay as they were; a factor below 1 blurs, above 1 sharpens."""
    degenerate = fpixel.convolve(img, _SMOOTH)
    degenerate[0, :], degenerate[-1, :], degenerate[:, 0], degenerate[:, -1] = img[0, :], img[-1, :], img[:, 0], img[:, -1]
    return cv2.addWeighted(img, factor, degenerate, 1.0 - factor, 0.0)


def _equalize(img: np.ndarray) -> np.ndarray:
    """PIL's ``ImageOps.equalize`` per channel, which torchvision follows: level ``v`` maps to
    ``(step // 2 + pixels below v) // step``, ``step`` the pixels not at the top level / 255.
    (albumentations 2.0.8's ``equalize(mode="pil")`` counts the pixels at ``v`` too: a level
    higher, 3 levels on average on photos.)"""
    out = np.empty_like(img)
    for c in range(img.shape[2]):
        channel = np.ascontiguousarray(img[..., c])
        hist = cv2.calcHist([channel], [0], None, [256], (0, 256)).ravel().astype(np.int64)
        used = hist[hist > 0]
        step = int(used[:-1].sum()) // 255
        if step == 0:
            out[..., c] = channel
            continue
        below = np.concatenate(([0], np.cumsum(hist)[:-1]))
        out[..., c] = cv2.LUT(channel, np.minimum((below + step // 2) // step, 255).astype(np.uint8))
    return out


def _autocontrast(img: np.ndarray) -> np.ndarray:
    """PIL's ``ImageOps.autocontrast`` per channel, which torchvision follows: the darkest level
    to 0, the brightest to 255, truncated. (albumentations 2.0.8's ``auto_contrast`` rounds,
    and its histogram, spread over [0, 255), loses level 255: up to 3 levels apart.)"""
    out = np.empty_like(img)
    for c in range(img.shape[2]):
        channel = np.ascontiguousarray(img[..., c])
        lo, hi = int(channel.min()), int(channel.max())
        if hi <= lo:
            out[..., c] = channel
            continue
        scale = 255.0 / (hi - lo)
        lut = np.clip(np.trunc(np.arange(256) * scale - lo * scale), 0, 255).astype(np.uint8)
        out[..., c] = cv2.LUT(channel, lut)
    return out


def applied_magnitude(name: str, magnitude: float | None) -> float | None:
    """The magnitude an operation is applied at: a translation in whole pixels, as
    torchvision's ``int()`` truncates it (the drawn value is the table's); the rest as drawn.
    Preview captions show this value."""
    if magnitude is not None and name in ("TranslateX", "TranslateY"):
        return float(int(magnitude))
    return magnitude


def apply_op(img: np.ndarray, name: str, magnitude: float | None, interpolation: int = cv2.INTER_NEAREST,
             fill: Any = 0) -> np.ndarray:
    """One operation at ``magnitude``, as torchvision's ``_apply_op`` applies it, on RGB uint8."""
    h, w = img.shape[:2]
    if name == "ShearX":  # torchvision shears about the top-left corner, by atan(magnitude)
        return _warp(img, _torchvision_affine((0, 0), 0, (0, 0), (math.degrees(math.atan(magnitude)), 0)),
                     interpolation, fill)
    if name == "ShearY":
        return _warp(img, _torchvision_affine((0, 0), 0, (0, 0), (0, math.degrees(math.atan(magnitude)))),
                     interpolation, fill)
    if name in ("TranslateX", "TranslateY"):  # whole pixels, as int() makes them
        pixels = int(applied_magnitude(name, magnitude))
        shift = (pixels, 0) if name == "TranslateX" else (0, pixels)
        return _warp(img, _torchvision_affine((w * 0.5, h * 0.5), 0, shift, (0, 0)), interpolation, fill)
    if name == "Rotate":  # counter-clockwise about the centre: F.rotate is F.affine by -angle
        return _warp(img, _torchvision_affine((w * 0.5, h * 0.5), -magnitude, (0, 0), (0, 0)), interpolation, fill)
    if name == "Brightness":
        return fpixel.adjust_brightness_torchvision(img, 1.0 + magnitude)
    if name == "Color":
        return fpixel.adjust_saturation_torchvision(img, 1.0 + magnitude)
    if name == "Contrast":
        return fpixel.adjust_contrast_torchvision(img, 1.0 + magnitude)
    if name == "Sharpness":
        return _sharpness(img, 1.0 + magnitude)
    if name == "Posterize":
        bits = int(magnitude)
        return img if bits >= 8 else fpixel.posterize(img, bits)
    if name == "Solarize":  # pixels >= magnitude inverted; a threshold between whole levels, as uint8 compares
        return fpixel.solarize(img, (math.ceil(magnitude) - 0.5) / 255.0)
    if name == "AutoContrast":
        return _autocontrast(img)
    if name == "Equalize":
        return _equalize(img)
    if name == "Identity":
        return img
    raise ValueError(f"unknown operation {name!r}")


# --- the transforms ---------------------------------------------------------------------------


class _PolicySchema(BaseTransformInitSchema):
    num_magnitude_bins: int = Field(ge=2)
    interpolation: int
    fill: float | tuple[float, float, float]

    @field_validator("interpolation")
    @classmethod
    def _known_interpolation(cls, value: int) -> int:
        if value not in INTERPOLATIONS:
            raise ValueError("use nearest (as torchvision), linear, cubic, area or lanczos")
        return value

    @field_validator("fill")
    @classmethod
    def _fill_levels(cls, value):
        levels = value if isinstance(value, tuple) else (value,)
        if not all(0 <= v <= 255 for v in levels):
            raise ValueError("a grey level 0-255, or [r, g, b] levels")
        return value


class _Policy(A.ImageOnlyTransform):
    """What both policies share: applying the drawn operations, and their caption."""

    def __init__(self, num_magnitude_bins: int, interpolation: int, fill: Any, p: float):
        super().__init__(p=p)
        self.num_magnitude_bins = num_magnitude_bins
        self.interpolation = interpolation
        self.fill = tuple(fill) if isinstance(fill, (list, tuple)) else fill

    def _draw_op(self, space: dict[str, np.ndarray | None], bin_index: int | None) -> tuple[str, float | None]:
        """An operation drawn uniformly, at ``bin_index`` (None: a bin drawn uniformly), signed
        with even odds, drawing in torchvision's order."""
        name = OPS[int(self.random_generator.integers(len(OPS)))]
        magnitudes = space[name]
        if magnitudes is None:
            return name, None
        index = int(self.random_generator.integers(len(magnitudes))) if bin_index is None else bin_index
        magnitude = float(magnitudes[index])
        if name in SIGNED and self.random_generator.integers(2):
            magnitude = -magnitude
        return name, magnitude

    def apply(self, img: np.ndarray, ops: tuple[tuple[str, float | None], ...] = (), **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(f"{type(self).__name__} needs an RGB uint8 image, got {img.dtype} {img.shape}")
        for name, magnitude in ops:
            img = apply_op(img, name, magnitude, self.interpolation, self.fill)
        return img


class RandAugment(_Policy):
    """RandAugment (Cubuk et al. 2019) as torchvision's: ``num_ops`` operations, each drawn
    uniformly from 14, at bin ``magnitude`` of ``num_magnitude_bins``.

    Args:
        num_ops: operations applied in turn (torchvision: 2).
        magnitude: the bin of every operation's range, 0 to ``num_magnitude_bins - 1`` (9).
        num_magnitude_bins: bins each range is cut into (31).
        interpolation: for the geometric operations (nearest, as torchvision).
        fill: the grey level (or [r, g, b]) of the area a geometric operation uncovers (0).
        p: probability of applying the transform (1).
    """

    class InitSchema(_PolicySchema):
        num_ops: int = Field(ge=0, le=100)
        magnitude: int = Field(ge=0)

        @model_validator(mode="after")
        def _magnitude_in_bins(self) -> RandAugment.InitSchema:
            if self.magnitude >= self.num_magnitude_bins:
                raise ValueError(f"magnitude must be below num_magnitude_bins ({self.num_magnitude_bins}): it is a "
                                 f"bin of each operation's range, 0 to {self.num_magnitude_bins - 1}")
            return self

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 interpolation: int = cv2.INTER_NEAREST, fill: Any = 0, p: float = 1.0):
        super().__init__(num_magnitude_bins, interpolation, fill, p)
        self.num_ops = num_ops
        self.magnitude = magnitude

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        space = rand_augment_space(self.num_magnitude_bins, h, w)
        return {"ops": tuple(self._draw_op(space, self.magnitude) for _ in range(self.num_ops))}

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("num_ops", "magnitude", "num_magnitude_bins", "interpolation", "fill")


class TrivialAugmentWide(_Policy):
    """TrivialAugmentWide (Muller and Hutter 2021) as torchvision's: one operation drawn
    uniformly from 14, at a bin drawn uniformly from its wide range.

    Args:
        num_magnitude_bins: bins each range is cut into (31).
        interpolation: for the geometric operations (nearest, as torchvision).
        fill: the grey level (or [r, g, b]) of the area a geometric operation uncovers (0).
        p: probability of applying the transform (1).
    """

    class InitSchema(_PolicySchema):
        pass

    def __init__(self, num_magnitude_bins: int = 31, interpolation: int = cv2.INTER_NEAREST, fill: Any = 0,
                 p: float = 1.0):
        super().__init__(num_magnitude_bins, interpolation, fill, p)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {"ops": (self._draw_op(trivial_augment_wide_space(self.num_magnitude_bins), None),)}

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("num_magnitude_bins", "interpolation", "fill")
