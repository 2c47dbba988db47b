"""MixUp and CutMix: batches whose images and labels are mixed, with soft targets.

The options and their meaning are timm's ``Mixup`` (Zhang et al. 2018; Yun et al. 2019),
in its default per-batch mode: each sample is mixed with the sample at the mirrored
position of the batch (sample ``i`` with ``n - 1 - i``), with one ``lam`` for the batch.

- ``mixup=alpha``: ``x = lam * x + (1 - lam) * x_mirrored``, ``lam ~ Beta(alpha, alpha)``.
- ``cutmix=alpha``: a box of area ``1 - lam`` of the mirrored sample is pasted in; the label
  weight is the area truly pasted once the box is clipped to the image (timm's
  ``correct_lam``), not the ``lam`` drawn.
- Both: CutMix with probability ``switch_prob``, else MixUp. A batch is mixed at all with
  probability ``mix_prob``.
- Targets become ``(n, classes)`` float32 rows summing to 1: ``lam * one_hot(y) + (1 - lam)
  * one_hot(y_mirrored)``, with ``label_smoothing`` spread as timm does (``smoothing /
  classes`` off the true class, ``1 - smoothing + smoothing / classes`` on it).

The draw for batch ``b`` of epoch ``e`` comes from ``derive_seed(seed, "mix", e, b)`` and
nothing else, so it is the same for any number of workers and differs between epochs.
Mixing runs where the batch is, in place: in a flow's worker, straight in the shared-memory
slot the batch was built in. Its only extra memory is one sample of float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from augkit.core.errors import UsageError
from augkit.core.seeds import derive_seed


@dataclass(frozen=True)
class MixOptions:
    """timm's ``Mixup`` options (``mixup_alpha`` is ``mixup``, ``cutmix_alpha`` ``cutmix``,
    ``prob`` ``mix_prob``); 0 turns a kind of mixing off. Targets are soft when any of
    ``mixup``, ``cutmix`` or ``label_smoothing`` is set, or ``one_hot`` (one-hot rows without
    mixing: a validation set for a loss that takes soft targets, as Keras's
    ``categorical_crossentropy``)."""

    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.0
    one_hot: bool = False

    @property
    def soft(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0 or self.label_smoothing > 0 or bool(self.one_hot)

    def check(self) -> MixOptions:
        """Self, or a UsageError naming the option and what it takes."""
        for name in ("mixup", "cutmix"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UsageError(f"{name}={value!r}: give the alpha of its Beta(alpha, alpha) draw, a number >= 0 "
                                 f"(0 = off; timm's usual values: mixup 0.8, cutmix 1.0)")
        for name in ("mix_prob", "switch_prob"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise UsageError(f"{name}={value!r}: a probability, from 0 to 1")
        if not (isinstance(self.label_smoothing, (int, float)) and 0 <= self.label_smoothing < 1):
            raise UsageError(f"label_smoothing={self.label_smoothing!r}: from 0 (none) to below 1 (0.1 is usual)")
        if not isinstance(self.one_hot, bool):
            raise UsageError(f"one_hot={self.one_hot!r}: True or False")
        return self


@dataclass(frozen=True)
class MixDraw:
    """What one batch gets: ``lam``, the weight of each sample's own label, and for CutMix
    the box pasted from the mirrored sample, ``(top, bottom, left, right)``, end-exclusive."""

    lam: float = 1.0
    box: tuple[int, int, int, int] | None = None


def draw(options: MixOptions, seed: int, epoch: int, batch: int, height: int, width: int) -> MixDraw:
    """The mix of batch ``batch`` of ``epoch``, drawn as timm draws it (per batch)."""
    if not (options.mixup > 0 or options.cutmix > 0):
        return MixDraw()
    rng = np.random.default_rng(derive_seed(seed, "mix", epoch, batch))
    if rng.random() >= options.mix_prob:
        return MixDraw()
    use_cutmix = options.cutmix > 0 and (options.mixup <= 0 or rng.random() < options.switch_prob)
    alpha = options.cutmix if use_cutmix else options.mixup
    lam = float(rng.beta(alpha, alpha))
    if not use_cutmix:
        return MixDraw(lam)
    return cutmix_box(lam, height, width, rng)


def cutmix_box(lam: float, height: int, width: int, rng: np.random.Generator) -> MixDraw:
    """timm's ``rand_bbox``: a box of about ``1 - lam`` of the image, centred anywhere in it,
    clipped to it; ``lam`` becomes one minus the area truly pasted."""
    ratio = math.sqrt(1 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    left, right = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    pasted = (bottom - top) * (right - left)
    return MixDraw(1.0 - pasted / float(height * width), (top, bottom, left, right))


def mix_in_place(x: np.ndarray, mix: MixDraw, channels_first: bool) -> None:
    """Mix the batch ``x`` (N, H, W, C or N, C, H, W) with its mirror image, in place.

    Each pair (i, n - 1 - i) is computed from both old values at once, so no copy of the
    batch is made: MixUp needs one sample of float32 more (three for a uint8 batch, which
    is rounded back to whole levels), pair after pair, so it stays in the CPU's cache
    (faster than whole half-batches: benchmarks/RESULTS.md); CutMix one box, pair after pair."""
    n = len(x)
    half = n // 2
    if mix.lam >= 1.0 or half == 0:
        return
    if mix.box is not None:
        top, bottom, left, right = mix.box
        box = (slice(None), slice(top, bottom), slice(left, right)) if channels_first else \
            (slice(top, bottom), slice(left, right))
        for i in range(half):  # sample i and its partner n - 1 - i swap the box
            a, b = x[i][box], x[n - 1 - i][box]
            kept = a.copy()
            a[...] = b
            b[...] = kept
        return
    weight = 1.0 - mix.lam  # lam * a + (1 - lam) * b = a - (1 - lam) * (a - b), and the other way round
    for i in range(half):
        a, b = x[i], x[n - 1 - i]
        if x.dtype.kind == "f":
            moved = a - b
            moved *= weight
            a -= moved
            b += moved
            continue
        fa, fb = a.astype(np.float32), b.astype(np.float32)
        moved = fa - fb
        moved *= weight
        fa -= moved
        fb += moved
        a[...] = np.rint(fa)
        b[...] = np.rint(fb)


def soft_targets(y: np.ndarray, classes: int, lam: float, smoothing: float = 0.0) -> np.ndarray:
    """``lam * one_hot(y) + (1 - lam) * one_hot(y mirrored)``, smoothed: (n, classes) float32."""
    off = smoothing / classes
    hot = np.full((len(y), classes), off, np.float64)
    hot[np.arange(len(y)), y] = 1.0 - smoothing + off
    return (lam * hot + (1.0 - lam) * hot[::-1]).astype(np.float32)


class BatchMixer:
    """Mixes a built batch and makes its soft targets: what ``flow``'s workers, the Keras
    adapter and the PyTorch adapter's ``mix`` call. Picklable (it travels to workers)."""

    def __init__(self, options: MixOptions, seed: int, classes: int, channels_first: bool):
        self.options = options.check()
        self.seed = seed
        self.classes = classes
        self.channels_first = channels_first

    def draw_for(self, shape: tuple[int, ...], epoch: int, batch: int) -> MixDraw:
        h, w = shape[2:4] if self.channels_first else shape[1:3]
        return draw(self.options, self.seed, epoch, batch, h, w)

    def __call__(self, x: np.ndarray, y: np.ndarray, epoch: int, batch: int) -> np.ndarray:
        """Mix ``x`` in place; the soft targets of ``y`` (class indices)."""
        mix = self.draw_for(x.shape, epoch, batch)
        mix_in_place(x, mix, self.channels_first)
        return soft_targets(np.asarray(y), self.classes, mix.lam, self.options.label_smoothing)


def mixer_for(options: dict[str, Any] | MixOptions | None, seed: int, classes: list[str], labels: list,
              channels_first: bool) -> BatchMixer | None:
    """The mixer a flow or adapter needs, or None when targets stay class indices. Soft
    targets need a class for every image: UsageError otherwise."""
    options = options if isinstance(options, MixOptions) else MixOptions(**(options or {}))
    if not options.check().soft:
        return None
    unlabelled = sum(label is None for label in labels)
    if unlabelled or not classes:
        raise UsageError(f"mixup, cutmix, label_smoothing and one_hot make targets over the classes, but {unlabelled} "
                         f"of the {len(labels)} images have no class; use a folder of class folders or a manifest "
                         f"with a label for every image")
    return BatchMixer(options, seed, len(classes), channels_first)
