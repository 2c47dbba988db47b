"""The order of an epoch: which samples, in which order, for ``flow`` and its adapters.

Both orders depend on ``(seed, epoch)`` alone, so every worker count gives the same epoch,
and each epoch differs.

- :func:`epoch_order`: every sample once, shuffled (or in order).
- :func:`balanced_order` (``balance=True``): as many draws as samples, the classes drawn
  equally often (each gets ``n // classes``; the ``n % classes`` left over go one each to
  classes drawn at random, so every class is drawn equally often in expectation). Within a
  class its images take turns: each is drawn ``q // m`` or ``q // m + 1`` times for a class of
  ``m`` images drawn ``q`` times, those with one more chosen at random. Less variance than
  drawing each sample independently with weight ``1 / (its class's size)``, which
  ``WeightedRandomSampler`` does, with the same expectation.

An image drawn more than once in an epoch is augmented differently each time: its draws
are numbered in the epoch's order (:func:`draw_numbers`), and draw ``d > 0`` of sample
``key`` is seeded ``derive_seed(seed, epoch, key, d)`` (draw 0 keeps
``derive_seed(seed, epoch, key)``). Oversampling a small class thus shows new
augmentations of its images, not copies of one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augkit.core.errors import UsageError
from augkit.core.seeds import derive_seed


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng(derive_seed(seed, "order", epoch)).permutation(n)


def balanced_order(targets: Sequence[int], seed: int, epoch: int) -> np.ndarray:
    """``len(targets)`` sample indices for one epoch, every class drawn equally often (see
    the module's docstring). ``targets``: class index per sample, none negative."""
    targets = np.asarray(targets, np.int64)
    rng = np.random.default_rng(derive_seed(seed, "balance", epoch))
    classes = np.unique(targets)
    if len(classes) == 0:
        return np.arange(0)
    quota, left = divmod(len(targets), len(classes))
    quotas = np.full(len(classes), quota)
    quotas[rng.permutation(len(classes))[:left]] += 1
    drawn = []
    for c, q in zip(classes, quotas):
        members = np.flatnonzero(targets == c)
        rounds, rest = divmod(int(q), len(members))
        drawn.append(np.repeat(members, rounds))
        drawn.append(rng.permutation(members)[:rest])
    return rng.permutation(np.concatenate(drawn))


def draw_numbers(order: np.ndarray) -> np.ndarray:
    """For each position of an epoch's ``order``, how many times its sample was drawn
    before it in that order (0 for a first draw), so repeated draws can be told apart."""
    order = np.asarray(order, np.int64)
    by_sample = np.argsort(order, kind="stable")  # positions grouped by sample, in order
    grouped = order[by_sample]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    lengths = np.diff(np.r_[starts, len(order)])
    draws = np.empty(len(order), np.int64)
    draws[by_sample] = np.arange(len(order)) - np.repeat(starts, lengths)
    return draws


def require_classes(labels: Sequence, what: str = "balance=True") -> None:
    """UsageError unless every sample has a class: balancing needs them."""
    unlabelled = sum(label is None for label in labels)
    if unlabelled:
        raise UsageError(f"{what} draws every class equally often, but {unlabelled} of the {len(labels)} images "
                         f"have no class; use a folder of class folders or a manifest with a label for every image")
