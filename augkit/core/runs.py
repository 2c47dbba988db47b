"""A run's record and the "same run?" guard, for every command that writes into a folder
and may be rerun into it (``augment`` into OUT, ``cache-features`` into CACHE).

A run records its settings in the folder (a JSON object, written whole or not at all)
before it writes anything else. A rerun compares its own settings with the record, on the
keys that change the bytes of what it writes, and is refused, naming what differs, unless
``overwrite``; the command then removes only what the earlier run wrote. The recipe is
named by its fingerprint (``recipe_fingerprint``); records written before that name was
shared call it ``recipe_hash`` and are read as if they said ``recipe_fingerprint``, so a
cache made then is resumed, not refused for the rename.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.core.files import write_text_atomic
from augkit.core.seeds import SEEDING_BEFORE

FINGERPRINT = "recipe_fingerprint"
_OLD_NAMES = {"recipe_hash": FINGERPRINT}  # older records' names -> today's
# Without a recipe the seed draws nothing: a rerun that changes only the seed is the same run.
_SEEDED = ("seed", "seeding")


class UnreadableRecord(ValueError):
    """The record exists but is not a JSON object augkit can read."""


def read_record(path: Path) -> dict[str, Any] | None:
    """The settings recorded at ``path`` (older names read as today's), None when there is
    no record; :class:`UnreadableRecord` when there is one that cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UnreadableRecord(str(exc)) from None
    if not isinstance(data, dict):
        raise UnreadableRecord("not a JSON object")
    for old, new in _OLD_NAMES.items():
        if old in data:
            data.setdefault(new, data.pop(old))
    return data


def write_record(path: Path, settings: Mapping[str, Any]) -> None:
    """Record ``settings`` at ``path``, whole or not at all."""
    write_text_atomic(path, json.dumps(dict(settings), indent=2, sort_keys=True) + "\n")


def differences(previous: Mapping[str, Any], settings: Mapping[str, Any], compared: Iterable[str]) -> list[str]:
    """The ``compared`` keys whose values differ between the recorded run and this one."""
    no_recipe = previous.get(FINGERPRINT) is None and settings.get(FINGERPRINT) is None
    return [k for k in compared if not (no_recipe and k in _SEEDED) and previous.get(k) != settings.get(k)]


def describe(previous: Mapping[str, Any], settings: Mapping[str, Any], keys: Iterable[str],
             names: Mapping[str, str] | None = None, missing: Mapping[str, str] | None = None) -> str:
    """What differs, for a person: "the recipe, seed 0 -> 9" (a fingerprint means nothing
    to anyone, so the recipe is only named; a sha256 is shortened). A setting a run did not
    record, or recorded as None, reads as ``missing``'s word for its key (what such a run
    did: "decode 'reduced' -> whole"), else "none"; never as Python's None."""
    names, missing = names or {}, {"seeding": SEEDING_BEFORE, **(missing or {})}
    keys = list(keys)

    def shown(value: Any, key: str) -> str:
        if value is None:
            return missing.get(key, "none")
        if isinstance(value, str) and len(value) == 64:  # a sha256
            return repr(value[:12] + "...")
        return repr(value)

    parts = ["the recipe"] if FINGERPRINT in keys else []
    parts += [f"{names.get(k, k)} {shown(previous.get(k), k)} -> {shown(settings.get(k), k)}"
              for k in keys if k != FINGERPRINT]
    return ", ".join(parts)


def refuse_unless_overwrite(folder: Path, what: str, overwrite: bool, *, holds: str, word: str,
                            pronoun: str = "it") -> bool:
    """Refuse a rerun into ``folder`` that is not the same run (``what`` says why; empty:
    the same run), unless ``overwrite``. True when the earlier run's files must go."""
    if what and not overwrite:
        raise UsageError(f"{folder}: holds {holds} made with other settings or sources ({what}); "
                         f"use another {word} or --overwrite to replace {pronoun}")
    return bool(what)
