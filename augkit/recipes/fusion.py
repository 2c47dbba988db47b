"""One warp for a run of geometric transforms (a recipe's ``fuse_geometry: true``).

albumentations resamples the image once per geometric transform: a resize, then a crop
(a copy), a flip (a copy), an affine warp. :func:`fuse_runs` replaces each run of two or
more consecutive transforms it can express (``Resize``, ``SmallestMaxSize``,
``LongestMaxSize``, ``RandomCrop``, ``CenterCrop``, ``Crop``, ``HorizontalFlip``,
``VerticalFlip``, ``Affine``, ``ShiftScaleRotate``, ``Rotate``) by one
:class:`FusedGeometry`, which composes them into one affine matrix and makes the result
with one ``cv2.warpAffine`` from the run's input (or, when the run only flips and crops,
by picking the pixels, bit-identical).

What stays exactly as without fusion: every random number. Each transform of the run
draws through albumentations' own ``should_apply``, ``get_params`` and
``get_params_dependent_on_data``, in order, from the pipeline's one stream, on a stand-in
of the image's current shape; so the drawn values, the draws of every later transform,
the applied parameters a preview captions and the errors (a crop larger than the image)
are those of the unfused pipeline, which tests compare. Only the resampling changes:
one interpolation instead of several, measured in benchmarks/RESULTS.md ("One warp for
the geometric chain").

What is not fused (the run is cut there, and the transform runs as albumentations runs
it): a crop that pads, a resize by INTER_AREA (or ``area_for_downscale``), an
interpolation other than nearest, linear or cubic, or another than the run's; and a
second warp that may show the border (``Affine``, ``ShiftScaleRotate``, ``Rotate``) in one
run, since the first one's border would be the source's, nor a resize after a warp whose
border is not constant (the border would be resampled anew). A warp after a crop samples only
the crop's window of the source, so what lies outside it stays the fill, as unfused; when
a resize came before that crop, the window is rounded out to whole source pixels, which
only a constant border (the default) allows: up to one source pixel of picture may then
show at the window's edge where the unfused pipeline blends it with the fill.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from augkit.core._albu import albumentations
from augkit.recipes.size_hint import transform_hint

_FLIPS = {"HorizontalFlip", "VerticalFlip"}
_CROPS = {"RandomCrop", "CenterCrop", "Crop"}
_RESIZES = {"Resize", "SmallestMaxSize", "LongestMaxSize"}
_WARPS = {"Affine", "ShiftScaleRotate", "Rotate"}
_INTERPOLATIONS = {cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC}
_ZERO = np.zeros((), np.uint8)  # broadcast to a stand-in of the image's shape, for the draws


def fusable(transform) -> bool:
    """Whether ``transform`` can be part of a fused run (its arguments allow it)."""
    name = type(transform).__name__
    if type(transform).__module__.split(".")[0] != "albumentations":
        return False
    if name in _FLIPS:
        return True
    if name in _CROPS:
        return not getattr(transform, "pad_if_needed", False)
    if name in _RESIZES:
        return transform.interpolation in _INTERPOLATIONS and getattr(transform, "area_for_downscale", None) is None
    return name in _WARPS and transform.interpolation in _INTERPOLATIONS


def runs(transforms: list) -> list[tuple[int, int]]:
    """(start, end) of each run of two or more fusable transforms. A leading shrink stays
    out (its ``size_hint``): a recipe's deterministic head is made once per image and
    shared by all its copies (:class:`~augkit.recipes.augmenter.ImageAugmenter`), where
    in each copy's warp it would be made again per copy, and a copy that only crops and
    flips would then resample instead of picking pixels (measured slower: RESULTS.md)."""
    found, start = [], 1 if transforms and transform_hint(transforms[0]) is not None else 0
    for i in range(start, len(transforms) + 1):
        if i < len(transforms) and fusable(transforms[i]):
            continue
        if i - start > 1:
            found.append((start, i))
        start = i + 1
    return found


def fuse_runs(transforms: list, start: int = 0) -> list:
    """``transforms[start:]`` with each run of :func:`runs` made a :class:`FusedGeometry`
    (``start`` is never inside a run: see :func:`first_run`)."""
    out, i = [], start
    for begin, end in runs(transforms):
        if end <= start:
            continue
        out += transforms[i:begin]
        out.append(FusedGeometry(transforms[max(begin, start):end]))
        i = end
    return out + transforms[i:]


def first_run(transforms: list) -> int:
    """Where the first fused run starts (``len(transforms)``: none): an ImageAugmenter's
    head ends there, so that its tail is fused as ``recipe(image)`` is."""
    found = runs(transforms)
    return found[0][0] if found else len(transforms)


class FusedGeometry(albumentations().ImageOnlyTransform):
    """A run of geometric transforms made with one warp; see the module's docstring.

    Applied parameters are recorded for each transform of the run, as the unfused
    pipeline records them; the run itself records none."""

    def __init__(self, transforms: list):
        super().__init__(p=1.0)
        self.transforms = list(transforms)
        self.params = {}

    def set_random_state(self, random_generator, py_random) -> None:
        super().set_random_state(random_generator, py_random)
        for transform in self.transforms:
            transform.set_random_state(random_generator, py_random)

    def __call__(self, *args, force_apply: bool = False, **data):
        self.params = {}
        image = data["image"]
        plan = _Plan(image.shape)
        applied = data.get("applied_transforms")
        for transform in self.transforms:
            params = _draw(transform, plan, data, force_apply)
            if params is None:
                continue
            if applied is not None:
                applied.append((transform.__class__.__name__, params.copy()))
            if not plan.add(transform, params):  # not in one warp with the rest: as albumentations does it
                image = plan.render(image)
                image = transform.apply_with_params(params, image=image)["image"]
                plan = _Plan(image.shape)
        data["image"] = plan.render(image)
        return data


def _draw(transform, plan: _Plan, data: dict, force_apply: bool) -> dict | None:
    """The draws ``transform(**data)`` makes (BasicTransform.__call__), on a stand-in of
    the current shape; None when it does not apply."""
    transform.params = {}
    if not transform.should_apply(force_apply=force_apply):
        return None
    stand_in = {**data, "image": np.broadcast_to(_ZERO, plan.image_shape)}
    params = transform.update_transform_params(params=transform.get_params(), data=stand_in)
    params.update(transform.get_params_dependent_on_data(params=params, data=stand_in))
    transform.params = params
    return params


def _translation(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


class _Plan:
    """The run so far: the matrix from the source's pixel grid to the current one, the
    current size, and the window of the source that the current image shows."""

    def __init__(self, shape: tuple[int, ...]):
        self.image_shape = tuple(shape)
        self.matrix = np.eye(3)
        self.window = (0, 0, shape[1], shape[0])  # x0, y0, x1, y1 in source pixels
        self.rounded = False  # the window was rounded out (a crop after a resize)
        self.resampled = False
        self.interpolation: int | None = None
        self.border: tuple[int, object] | None = None  # (mode, fill) of the run's one warp
        self.steps = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.image_shape[0], self.image_shape[1]

    def _then(self, matrix: np.ndarray, shape: tuple[int, int]) -> None:
        self.matrix = matrix @ self.matrix
        self.image_shape = (int(shape[0]), int(shape[1]), *self.image_shape[2:])
        self.steps += 1

    def add(self, transform, params: dict) -> bool:
        """Compose ``transform`` (with its drawn ``params``) into the run, or False."""
        name = type(transform).__name__
        h, w = self.shape
        if name in _FLIPS:
            flip = np.eye(3)
            axis = 0 if name == "HorizontalFlip" else 1
            flip[axis, axis], flip[axis, 2] = -1.0, (w if axis == 0 else h) - 1.0
            self._then(flip, (h, w))
            return True
        if name in _CROPS:
            return self._crop(params)
        if not self._same_interpolation(transform.interpolation):
            return False
        if name in _RESIZES:
            return self._resize(transform, params)
        return self._warp(transform, params)

    def _same_interpolation(self, interpolation: int) -> bool:
        if self.interpolation is None:
            self.interpolation = interpolation
        return interpolation == self.interpolation

    def _crop(self, params: dict) -> bool:
        if params.get("pad_params") is not None:
            return False
        x0, y0, x1, y1 = params["crop_coords"]
        if self.border is None:  # before the warp, the crop is the window of the source the warp may sample
            self._narrow_window(x0, y0, x1, y1)
        self._then(_translation(-x0, -y0), (y1 - y0, x1 - x0))
        return True

    def _narrow_window(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Narrow the source window to what the current pixels [x0, x1) x [y0, y1) show.
        Before the warp the matrix only scales, flips and shifts each axis on its own."""
        (sx, _, tx), (_, sy, ty) = self.matrix[0], self.matrix[1]
        # pixel i covers [i - 0.5, i + 0.5]; back in the source, edges at (e - t) / s + 0.5
        left, right = sorted(((x0 - 0.5 - tx) / sx + 0.5, (x1 - 0.5 - tx) / sx + 0.5))
        top, bottom = sorted(((y0 - 0.5 - ty) / sy + 0.5, (y1 - 0.5 - ty) / sy + 0.5))
        edges = [left, top, right, bottom]
        whole = [round(v) for v in edges]
        if any(abs(v - r) > 1e-6 for v, r in zip(edges, whole)):
            self.rounded = True
            whole = [math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)]
        wx0, wy0, wx1, wy1 = self.window
        self.window = (max(wx0, whole[0]), max(wy0, whole[1]), min(wx1, whole[2]), min(wy1, whole[3]))

    def _resize(self, transform, params: dict) -> bool:
        h, w = self.shape
        if type(transform).__name__ == "Resize":
            new_h, new_w = transform.height, transform.width
        else:
            new_h, new_w = max(1, round(h * params["scale"])), max(1, round(w * params["scale"]))
        if (new_h, new_w) == (h, w):
            return True  # albumentations returns the image as it is
        if self.border is not None and self.border[0] != cv2.BORDER_CONSTANT:
            return False  # unfused, the resize samples the warp's border as it was made
        a, b = new_w / w, new_h / h  # OpenCV's pixel centres: x' = (x + 0.5) * a - 0.5
        self._then(np.array([[a, 0.0, 0.5 * a - 0.5], [0.0, b, 0.5 * b - 0.5], [0.0, 0.0, 1.0]]), (new_h, new_w))
        self.resampled = True
        return True

    def _warp(self, transform, params: dict) -> bool:
        albu = albumentations()
        matrix = np.asarray(params["matrix"], np.float64)
        shape = params.get("output_shape", self.shape)
        cropped = type(transform).__name__ == "Rotate" and transform.crop_border
        if albu.augmentations.geometric.functional.is_identity_matrix(matrix):
            self.steps += 1
        else:
            if self.border is not None or (self.rounded and transform.border_mode != cv2.BORDER_CONSTANT):
                return False
            self._then(matrix, shape)
            self.border = (transform.border_mode, transform.fill)
            self.resampled = True
        if cropped:
            x0, y0, x1, y1 = params["x_min"], params["y_min"], params["x_max"], params["y_max"]
            self._then(_translation(-x0, -y0), (y1 - y0, x1 - x0))
        return True

    def render(self, image: np.ndarray) -> np.ndarray:
        """The run's output from its input ``image``."""
        if self.steps == 0:
            return image
        x0, y0, x1, y1 = self.window
        source = image[y0:y1, x0:x1]
        matrix = self.matrix @ _translation(x0, y0)
        h, w = self.shape
        if not self.resampled:
            return _pick(source, matrix, h, w)
        mode, fill = self.border or (cv2.BORDER_REPLICATE, 0)
        channels = image.shape[2] if image.ndim == 3 else 1
        fill = tuple(fill) if isinstance(fill, (tuple, list)) else (fill,) * channels
        out = cv2.warpAffine(source, matrix[:2], (w, h), flags=self.interpolation, borderMode=mode, borderValue=fill)
        return out if out.ndim == image.ndim else out[..., None]


def _pick(source: np.ndarray, matrix: np.ndarray, h: int, w: int) -> np.ndarray:
    """Flips and whole-pixel crops: the output's pixels taken from ``source``, exactly (the
    window by slicing, the flips by cv2.flip: a reversed NumPy view copies slowly)."""
    sx, tx, sy, ty = matrix[0, 0], matrix[0, 2], matrix[1, 1], matrix[1, 2]
    x0 = int(round(-tx)) if sx > 0 else int(round(tx)) - w + 1  # the leftmost source column shown
    y0 = int(round(-ty)) if sy > 0 else int(round(ty)) - h + 1
    window = source[y0:y0 + h, x0:x0 + w]
    code = {(True, True): None, (False, True): 1, (True, False): 0, (False, False): -1}[(sx > 0, sy > 0)]
    return np.ascontiguousarray(window) if code is None else cv2.flip(window, code)
