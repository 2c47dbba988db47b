"""Preview: a captioned grid of augmented samples, to see what a recipe does before using it.

Each tile shows one augmented sample, letterboxed into a square, with a caption naming
the transforms that fired and their key drawn values (``Affine rot=-8.7 scale=1.03``,
``GaussNoise noise_sd=12.4``, ``Resize to=224x224``, ``RandAugment Rotate=-8.1 Posterize=6``):
numbers to 3 significant digits,
arrays as up to 4 values, a mask as the share it covers, a kernel as its size.
The first tile of each row is the original. One image gives a near-square grid; several
images give one row each. Sample ``i`` of image ``key`` uses ``derive_seed(seed, key, i)``,
the same seeding as ``augment``, so the same seed gives the same grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from augkit.core.errors import AugkitError, UsageError
from augkit.recipes import NotAnImageError, TransformError, require_image
from augkit.recipes.auto_augment import applied_magnitude
from augkit.core.seeds import derive_seed, run_seed

# What to do about a recipe that does not return uint8 RGB (see Recipe.require_image_output).
EIGHT_BIT_IMAGES = "drop {name}: images are written as 8-bit"

# Drawn values that say little in a caption.
_HIDDEN = {
    "shape", "interpolation", "mask_interpolation", "fill", "fill_mask", "matrix", "bbox_matrix", "matrix_bbox",
    "output_shape", "seed", "random_seed", "pad_params", "border_mode", "rotate_method", "order", "image_type",
    "x_min", "x_max", "y_min", "y_max",
}
_SHORT = {
    "rotate": "rot", "angle": "rot", "clip_limit": "clip", "noise_map": "shift", "crop_coords": "crop",
    "brightness": "bright", "contrast": "contr", "saturation": "sat", "kernel": "k", "ksize": "k",
    "tile_grid_size": "tiles", "drop_mask": "dropped", "salt_mask": "salt", "pepper_mask": "pepper",
}
_SHOWN_TEXT = {"mode", "group_element", "method"}  # words worth showing (Spatter's mode, D4's element)
MAX_CAPTION_VALUES = 4  # ColorJitter's four; a tile's caption is a few short lines
_BG = (32, 32, 32)
_FG = (235, 235, 235)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_LINE_HEIGHT = 14


def _fmt_number(value: float | int) -> str:
    """3 significant digits, no exponent for what a caption shows, never ``-0``."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        text = f"{value:.0f}"
    elif abs(value) < 0.0005:
        text = "0"
    else:
        text = f"{value:.3g}"
    return "0" if text in ("-0", "-0.0") else text


def _fmt_size(shape: Any) -> str | None:
    try:
        return f"{int(shape[1])}x{int(shape[0])}"
    except (TypeError, IndexError, ValueError):
        return None


def _fmt_value(key: str, value: Any) -> str | None:
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, str):
        return value if key in _SHOWN_TEXT and len(value) <= 16 else None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _fmt_number(value)
    if isinstance(value, dict):
        if set(value) == {"x", "y"}:
            x, y = float(value["x"]), float(value["y"])
            return _fmt_number(x) if abs(x - y) < 5e-3 else f"{x:.2f}/{y:.2f}"
        return None
    if key == "crop_coords" and len(value) == 4:
        x1, y1, x2, y2 = (int(v) for v in value)
        return f"{x2 - x1}x{y2 - y1}@{x1},{y1}"
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged (RandomSunFlare's circles): nothing short to say
        return None
    if key == "holes" and array.ndim == 2:
        return str(len(array))
    if array.dtype.kind == "b" and array.size > 4:  # a mask: how much of the image it covers
        return f"{_fmt_number(100 * array.mean())}%"
    if array.dtype.kind not in "iuf" or array.size == 0:
        return None
    if key in ("kernel", "ksize") and array.ndim in (1, 2) and array.size > 1:  # a blur kernel: its size
        h, w = array.shape if array.ndim == 2 else (array.size, array.size)
        return str(h) if h == w else f"{w}x{h}"
    if key == "noise_map" and array.size > 4:  # GaussNoise: per pixel; its spread says how strong
        return _fmt_number(float(array.std()))
    if array.size <= 4:
        return ",".join(_fmt_number(v) for v in array.ravel().tolist())
    return None


def _rotation_of(matrix: Any) -> float | None:
    """The angle of a rotation matrix (Rotate reports only the matrix), in degrees."""
    try:
        m = np.asarray(matrix, dtype=np.float64)
        return math.degrees(math.atan2(m[0, 1], m[0, 0])) if m.shape in ((2, 3), (3, 3)) else None
    except (ValueError, TypeError, IndexError):
        return None


def caption_for(name: str, params: dict[str, Any], max_values: int = MAX_CAPTION_VALUES,
                output_shape: Any = None) -> str:
    """``Affine rot=-8.73 scale=1.03``: a transform's name and its key drawn values;
    ``Resize to=224x224`` when it changed the size and says so nowhere else."""
    parts = [name]
    if name in ("Rotate", "SafeRotate") and "rotate" not in params and "matrix" in params:
        angle = _rotation_of(params["matrix"])
        if angle is not None:
            parts.append(f"rot={_fmt_number(angle)}")
    for key, value in params.items():
        if key == "ops":  # RandAugment / TrivialAugmentWide: each operation drawn, at its magnitude
            parts.extend(name if magnitude is None else f"{name}={_fmt_number(applied_magnitude(name, magnitude))}"
                         for name, magnitude in value)
            continue
        if key in _HIDDEN or len(parts) > max_values:
            continue
        text = _fmt_value(key, value)
        if text is not None:
            big_noise = key == "noise_map" and np.size(value) > 4
            parts.append(f"{'noise_sd' if big_noise else _SHORT.get(key, key)}={text}")
    before, after = params.get("shape"), output_shape
    if after is not None and before is not None and tuple(before)[:2] != tuple(after)[:2] and "crop_coords" not in params:
        size = _fmt_size(after)
        if size:
            parts.append(f"to={size}")
    return " ".join(parts)


def _wrap(text_items: Sequence[str], width: int) -> list[str]:
    lines: list[str] = []
    for item in text_items:
        line = ""
        for word in item.split(" "):
            trial = f"{line} {word}".strip()
            if line and cv2.getTextSize(trial, _FONT, _FONT_SCALE, 1)[0][0] > width:
                lines.append(line)
                line = "  " + word
            else:
                line = trial
        lines.append(line)
    return lines


def _letterbox(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    tile = np.full((size, size, 3), _BG, np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    tile[y : y + nh, x : x + nw] = resized
    return tile


def _ascii(text: str) -> str:
    # Hershey fonts draw ASCII only; a non-ASCII file name must not turn into '?????'.
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _tile(image: np.ndarray, caption_lines: list[str], size: int, n_lines: int) -> np.ndarray:
    caption = np.full((n_lines * _LINE_HEIGHT + 8, size, 3), _BG, np.uint8)
    for i, line in enumerate(caption_lines[:n_lines]):
        cv2.putText(caption, line, (4, 14 + i * _LINE_HEIGHT), _FONT, _FONT_SCALE, _FG, 1, cv2.LINE_AA)
    return np.vstack([_letterbox(image, size), caption])


def _captions(applied: list[tuple[str, dict[str, Any]]], final_shape: tuple[int, ...]) -> list[str]:
    """One caption per transform that fired; each one's output size is the next one's input."""
    shapes = [params.get("shape") for _, params in applied[1:]] + [final_shape]
    return [caption_for(name, params, output_shape=after) for (name, params), after in zip(applied, shapes)]


def sample_captions(recipe, image: np.ndarray, key: str, n: int, seed: int) -> list[tuple[np.ndarray, list[str]]]:
    """The original and n augmented samples of one image, each with its caption items.

    Raises RecipeError for a recipe that does not return uint8 RGB images, and AugkitError
    naming the image, the sample and the transform when a transform fails on the image (a
    crop larger than it) or a sample is not uint8 RGB all the same (a Lambda): a grid
    cannot show either."""
    recipe.require_image_output(EIGHT_BIT_IMAGES)
    h, w = image.shape[:2]
    out: list[tuple[np.ndarray, list[str]]] = [(image, [_ascii(f"original {w}x{h}"), _ascii(key)])]
    for i in range(n):
        try:
            augmented, applied = recipe.trace(image, seed=derive_seed(seed, key, i))
            require_image(augmented)
        except (TransformError, NotAnImageError) as exc:
            raise AugkitError(f"{key}: sample #{i + 1}: {exc}") from None
        ah, aw = augmented.shape[:2]
        items = _captions(applied, augmented.shape) or ["(no transform fired)"]
        out.append((augmented, [f"#{i + 1} {aw}x{ah}", *items]))
    return out


def render_grid(rows: list[list[tuple[np.ndarray, list[str]]]], tile: int = 256, columns: int | None = None) -> np.ndarray:
    """Lay captioned samples out in a grid; one row per entry of ``rows`` unless ``columns``
    is given, in which case the single row is wrapped to that many columns."""
    if columns is not None:
        flat = [cell for row in rows for cell in row]
        rows = [flat[i : i + columns] for i in range(0, len(flat), columns)]
    wrapped = [[(img, _wrap(items, tile - 8)) for img, items in row] for row in rows]
    n_lines = max(len(lines) for row in wrapped for _, lines in row)
    n_cols = max(len(row) for row in wrapped)
    gap = 4
    cell_h = tile + n_lines * _LINE_HEIGHT + 8
    grid = np.full((len(wrapped) * (cell_h + gap) + gap, n_cols * (tile + gap) + gap, 3), 12, np.uint8)
    for r, row in enumerate(wrapped):
        for c, (img, lines) in enumerate(row):
            y, x = gap + r * (cell_h + gap), gap + c * (tile + gap)
            grid[y : y + cell_h, x : x + tile] = _tile(img, lines, tile, n_lines)
    return grid


def preview(recipe, images: list[tuple[np.ndarray, str]], *, n: int = 8, seed: int | None = None, tile: int = 256,
            on_failure: Callable[[AugkitError], None] | None = None) -> np.ndarray:
    """The grid for one or several (image, key) pairs, as an RGB uint8 array.

    An image the recipe fails on raises the AugkitError of :func:`sample_captions`, or,
    with ``on_failure``, is passed to it and left out (AugkitError if none is left).
    ``seed`` None: the recipe's ``seed:`` (:func:`~augkit.core.seeds.run_seed`), as ``augment`` takes it."""
    recipe.require_image_output(EIGHT_BIT_IMAGES)
    seed = run_seed(seed, recipe)
    rows = []
    for image, key in images:
        try:
            rows.append(sample_captions(recipe, image, key, n, seed))
        except UsageError:
            raise
        except AugkitError as exc:
            if on_failure is None:
                raise
            on_failure(exc)
    if not rows:
        raise AugkitError(f"the recipe failed on every image ({len(images)})")
    if len(rows) == 1:
        return render_grid(rows, tile, columns=math.ceil(math.sqrt(n + 1)))
    return render_grid(rows, tile)
