"""A dataset a random-weight MobileNet-shaped backbone separates, built in code.

No pretrained weights can be downloaded on test machines, so the transfer-learning tests
need classes whose difference survives random convolutions: each class has its own
colour and texture (stripes, dots, a checker), varied per image (hue jitter, frequency,
phase, size, noise), so no two images are the same and a linear head on pooled random
features still tells them apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagefiles import encoded, write_tree

CLASSES = ("blue_checker", "green_dots", "red_stripes")
_COLOURS = {"red_stripes": (200, 60, 50), "green_dots": (60, 180, 70), "blue_checker": (50, 80, 200)}


def image(name: str, seed: int, height: int = 72, width: int = 96) -> np.ndarray:
    """One RGB uint8 image of class ``name``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    colour = np.array(_COLOURS[name], np.float64) + rng.uniform(-90, 90, 3)  # wide: classes overlap a little, so accuracy is not 1
    if name == "red_stripes":
        period, phase = rng.uniform(6, 12), rng.uniform(0, 2 * np.pi)
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.3 * y) / period + phase)
    elif name == "green_dots":
        step = rng.uniform(9, 14)
        dx, dy = rng.uniform(0, step, 2)
        pattern = (((x + dx) % step - step / 2) ** 2 + ((y + dy) % step - step / 2) ** 2 < (step / 4) ** 2) * 1.0
    else:
        cell = int(rng.integers(6, 12))
        pattern = ((x // cell + y // cell) % 2) * 1.0
    pixels = colour * (0.45 + 0.55 * pattern[..., None]) + rng.normal(0, 6, (height, width, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def write_dataset(root: Path, per_class: int = 10, seed: int = 0, fmt: str = "PNG", size: tuple[int, int] | None = None
                  ) -> Path:
    """``root/<class>/<class>_NN.png``, ``per_class`` images each, of varied sizes (or all
    ``size`` = (height, width))."""
    files = {}
    suffix = "png" if fmt == "PNG" else "jpg"
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            s = seed * 10_000 + c * 1000 + i
            h, w = size or ((72, 96) if i % 3 else (96, 72))
            files[f"{name}/{name}_{i:02d}.{suffix}"] = encoded(image(name, s, h, w), fmt)
    return write_tree(root, files)
