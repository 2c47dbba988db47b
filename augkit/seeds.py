"""Per-sample random seeds that depend on what a sample is, never on which process runs it.

albumentations 2.0.8 does not reseed per worker process, so a pipeline pickled into N
workers would repeat one random stream N times. augkit instead seeds the pipeline before
every sample with ``derive_seed(run_seed, sample_key, copy_or_epoch)``: the output is
the same for any worker count, scheduling order or rerun, and differs between seeds.
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' text (stable across processes, Python and NumPy versions)."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
