"""Fixtures shared by several test modules: structured RGB images built in code."""

from __future__ import annotations

import numpy as np
import pytest


def make_structured_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with what photos have: smooth gradients, edges and some noise,
    with the channels correlated but not equal."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 60 + 120 * (x / width) + 40 * np.sin(y / 7.0)
    red = base + 30 * (y / height)
    green = 0.8 * base + 20 * np.cos(x / 11.0)
    blue = 0.5 * base + 60 * ((x // 16 + y // 16) % 2)  # a checker of hard edges
    image = np.stack([red, green, blue], axis=-1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@pytest.fixture
def small_rgb() -> np.ndarray:
    """120x160 structured RGB uint8: big enough for 64 px crops, small enough to be fast."""
    return make_structured_rgb(120, 160)


@pytest.fixture
def photo_sized_rgb() -> np.ndarray:
    """300x400 structured RGB uint8: big enough for the 224x224 recipes."""
    return make_structured_rgb(300, 400, seed=1)


@pytest.fixture
def python_ctrl_c():
    """Ctrl-C handled as Python does by default (KeyboardInterrupt), whatever the test run
    inherited: a process started with SIGINT ignored (a background job of a script) passes
    that on, and Python then leaves it ignored."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)

