"""The few rules for the words augkit prints."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1 class``, ``3 classes``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
