"""Preview: a captioned grid of augmented samples, to see what a recipe does before using it.

Each tile shows one augmented sample, letterboxed into a square, with a caption naming
the transforms that fired and their key drawn values (``Affine rot=-8.7 scale=1.03``).
The first tile of each row is the original. One image gives a near-square grid; several
images give one row each. Sample ``i`` of image ``key`` uses ``derive_seed(seed, key, i)``,
the same seeding as ``augment``, so the same seed gives the same grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from augkit.errors import AugkitError
from augkit.recipes import NotAnImageError, require_image
from augkit.seeds import derive_seed

# What to do about a recipe that does not return uint8 RGB (see Recipe.require_image_output).
EIGHT_BIT_IMAGES = "drop {name}: images are written as 8-bit"

# Drawn values that say little in a caption.
_HIDDEN = {
    "shape", "interpolation", "mask_interpolation", "fill", "fill_mask", "matrix", "bbox_matrix",
    "output_shape", "seed", "pad_params", "border_mode", "rotate_method",
}
_SHORT = {
    "rotate": "rot", "angle": "rot", "clip_limit": "clip", "noise_map": "shift", "crop_coords": "crop",
    "brightness": "bright", "contrast": "contr", "saturation": "sat", "alpha": "alpha",
    "beta": "beta", "kernel": "k", "holes": "holes", "gamma": "gamma", "tile_grid_size": "tiles",
}
_BG = (32, 32, 32)
_FG = (235, 235, 235)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_LINE_HEIGHT = 14


def _fmt_number(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _fmt_value(key: str, value: Any) -> str | None:
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _fmt_number(float(value) if isinstance(value, (float, np.floating)) else int(value))
    if isinstance(value, dict) and set(value) == {"x", "y"}:
        x, y = float(value["x"]), float(value["y"])
        return _fmt_number(x) if abs(x - y) < 5e-3 else f"{x:.2f}/{y:.2f}"
    if key == "crop_coords" and len(value) == 4:
        x1, y1, x2, y2 = (int(v) for v in value)
        return f"{x2 - x1}x{y2 - y1}@{x1},{y1}"
    array = np.asarray(value)
    if key == "holes" and array.ndim == 2:
        return str(len(array))
    if array.dtype.kind in "iuf" and 0 < array.size <= 4:
        return ",".join(_fmt_number(round(float(v), 2) if array.dtype.kind == "f" else int(v)) for v in array.ravel())
    return None


def caption_for(name: str, params: dict[str, Any], max_values: int = 3) -> str:
    """``Affine rot=-8.7 scale=1.03``: a transform's name and its key drawn values."""
    parts = [name]
    for key, value in params.items():
        if key in _HIDDEN or len(parts) > max_values:
            continue
        text = _fmt_value(key, value)
        if text is not None:
            parts.append(f"{_SHORT.get(key, key)}={text}")
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


def sample_captions(recipe, image: np.ndarray, key: str, n: int, seed: int) -> list[tuple[np.ndarray, list[str]]]:
    """The original and n augmented samples of one image, each with its caption items.

    Raises RecipeError for a recipe that does not return uint8 RGB images, and AugkitError
    when a sample is not one all the same (a Lambda): a grid cannot show either."""
    recipe.require_image_output(EIGHT_BIT_IMAGES)
    h, w = image.shape[:2]
    out: list[tuple[np.ndarray, list[str]]] = [(image, [_ascii(f"original {w}x{h}"), _ascii(key)])]
    for i in range(n):
        augmented, applied = recipe.trace(image, seed=derive_seed(seed, key, i))
        try:
            require_image(augmented)
        except NotAnImageError as exc:
            raise AugkitError(f"{key}: sample #{i + 1}: {exc}") from None
        ah, aw = augmented.shape[:2]
        items = [caption_for(name, params) for name, params in applied] or ["(no transform fired)"]
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


def preview(recipe, images: list[tuple[np.ndarray, str]], *, n: int = 8, seed: int = 0, tile: int = 256) -> np.ndarray:
    """The grid for one or several (image, key) pairs, as an RGB uint8 array."""
    rows = [sample_captions(recipe, image, key, n, seed) for image, key in images]
    if len(rows) == 1:
        return render_grid(rows, tile, columns=math.ceil(math.sqrt(n + 1)))
    return render_grid(rows, tile)
