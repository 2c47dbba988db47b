"""The few rules for the words augkit reads and prints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1 class``, ``3 classes``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to a mistyped one, best first, as the names are spelt.

    The one case rule: case is ignored when comparing and kept when answering, so
    'horizontalflip' finds 'HorizontalFlip' and 'MobileNet_V2' finds 'mobilenet_v2'. A name
    that differs only in case is the one answer. Names that differ from each other only in
    case (tensor names in an ONNX graph may) are all offered.
    """
    by_lower: dict[str, list[str]] = {}
    for choice in choices:
        by_lower.setdefault(str(choice).lower(), []).append(str(choice))
    key = word.lower()
    if key in by_lower:
        return by_lower[key][:n]
    found = difflib.get_close_matches(key, list(by_lower), n=n, cutoff=0.6)
    return [name for lower in found for name in by_lower[lower]][:n]


def numbers(value: Any, count: int) -> list[float]:
    """Exactly ``count`` numbers from ``"0.5,0.5,0.5"``, ``"0.5 0.5 0.5"`` or a list.

    Raises ValueError when ``value`` does not hold ``count`` numbers; the caller says where
    the value came from (a backbone entry, a command-line option).
    """
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    try:
        found = [float(v) for v in value]
    except (TypeError, ValueError):
        found = []
    if len(found) != count:
        raise ValueError(f"expected {count} numbers, got {value!r}")
    return found
