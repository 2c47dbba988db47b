"""Per-sample random seeds that depend on what a sample is, never on which process runs it.

albumentations 2.0.8 does not reseed per worker process, so a pipeline pickled into N
workers would repeat one random stream N times. augkit instead seeds the pipeline before
every sample with ``derive_seed(run_seed, sample_key, copy_or_epoch)``, through
:func:`seed_pipeline`: the output is the same for any worker count, scheduling order or
rerun, and differs between seeds.
"""

from __future__ import annotations

import hashlib

# How a seed becomes augmentations, recorded with every augment run and feature cache so that
# a resumed run never mixes outputs seeded one way with outputs seeded another. Change it
# whenever the same seed would give other augmentations (before "one-stream", augkit used
# albumentations' per-transform set_random_seed, and recorded nothing).
SEEDING = "one-stream"
SEEDING_BEFORE = "per-transform"  # what a record without "seeding" used, in words


def run_seed(seed: int | None, recipe=None) -> int:
    """The seed of a run: the one given, else the recipe's ``seed:``, else 0. Every entry
    point (the commands, ``flow``, the PyTorch and Keras adapters, ``augment``,
    ``cache_features``, ``preview``) takes its seed from here, so the library and the CLI
    make the same run from the same recipe."""
    if seed is not None:
        return seed
    return (getattr(recipe, "seed", None) if recipe is not None else None) or 0


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' text (stable across processes, Python and NumPy versions)."""
    # surrogateescape: a file name that is not UTF-8 seeds from its own bytes
    text = "\x1f".join(str(p) for p in parts).encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def seed_pipeline(compose, seed: int) -> None:
    """Seed ``compose`` and every transform in it with ONE random stream derived from ``seed``.

    albumentations' own ``Compose.set_random_seed(s)`` gives every transform a generator of
    its own, each seeded with the same ``s``. Their draws then coincide: every ``p`` test
    compares the same first number, so with the standard recipe HorizontalFlip (p 0.5)
    fired exactly when Affine (p 0.5) did, and RGBShift, CLAHE and CoarseDropout only
    together with both: 4 of the 32 combinations ever occurred. Sharing one generator pair
    makes each transform take the next draws of one stream, so its decisions are
    independent of the others'. It is also cheaper: two generators, not two per transform (benchmarks/RESULTS.md,
    "Figures behind code comments").
    """
    import random

    import numpy as np

    compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
