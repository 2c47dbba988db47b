"""The one place augkit imports albumentations.

albumentations 2.0.8 asks the package index for a newer release on import unless
NO_ALBUMENTATIONS_UPDATE is set, and takes 2.4-3.5 s to import. Every module that needs
it calls :func:`albumentations` at the point of use, never at module import time, so
``augkit --help`` and the commands that do no augmentation stay fast and offline.
"""

from __future__ import annotations

import os


def albumentations():
    """Return the imported ``albumentations`` module, with its network check disabled."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A  # noqa: N812 (the name every user knows)

    return A
