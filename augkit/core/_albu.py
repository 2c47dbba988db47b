"""The one place augkit imports albumentations.

albumentations 2.0.8 asks the package index for a newer release on import unless
NO_ALBUMENTATIONS_UPDATE is set, and takes seconds to import (benchmarks/RESULTS.md,
"Figures behind code comments"). Every module that needs
it calls :func:`albumentations` at the point of use, never at module import time, so
``augkit --help`` and the commands that do no augmentation stay fast and offline.

Most of that import is PyTorch: ``import albumentations`` ends with ``from .pytorch import
*`` (for ``ToTensorV2``), which imports torch whenever it is installed: about three times
the time and memory of the import without it (same section). No recipe can use ``ToTensorV2`` (it makes tensors, not
images), so in the processes augkit owns (the ``augkit`` command and the engine's
forkserver, which both call :func:`defer_torch_bridge`) albumentations is imported
without it, and ``A.ToTensorV2`` / ``A.pytorch`` are imported on first use instead: code
that uses them still works, it just pays for torch then.
"""

from __future__ import annotations

import importlib
import importlib.abc
import os
import sys

_BRIDGE = "albumentations.pytorch"
_defer = False


def defer_torch_bridge() -> None:
    """Import albumentations without ``albumentations.pytorch`` (torch) in this process;
    its names are imported on first use. For augkit's own processes: call it first."""
    global _defer
    _defer = True


class _HoldBridge(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == _BRIDGE:
            raise ImportError(f"{_BRIDGE} is imported on first use")  # albumentations suppresses it
        return None


def albumentations():
    """Return the imported ``albumentations`` module, with its network check disabled."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if _defer and "albumentations" not in sys.modules and "torch" not in sys.modules:
        hold = _HoldBridge()
        sys.meta_path.insert(0, hold)
        try:
            import albumentations as A  # noqa: N812
        finally:
            sys.meta_path.remove(hold)
        if _BRIDGE not in sys.modules:
            A.__getattr__ = _bridge_on_first_use  # PEP 562: only for names A lacks
    import albumentations as A  # noqa: N812 (the name every user knows)

    return A


def _bridge_on_first_use(name: str):
    A = sys.modules["albumentations"]
    bridge = importlib.import_module(_BRIDGE)  # sets A.pytorch
    # What the skipped `from .pytorch import *` would have put there.
    for public in getattr(bridge, "__all__", [n for n in vars(bridge) if not n.startswith("_")]):
        vars(A).setdefault(public, getattr(bridge, public))
    del A.__getattr__
    try:
        return getattr(A, name)
    except AttributeError:
        raise AttributeError(f"module 'albumentations' has no attribute {name!r}") from None
