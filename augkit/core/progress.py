"""The one progress bar every command shows: on stderr, only where a person watches it
(a terminal, no --quiet), as wide as the terminal, and gone when the run ends, so what
stays on the screen is the command's summary."""

from __future__ import annotations

import sys


def shows_progress(quiet: bool) -> bool:
    """Whether a command shows its bar: not with --quiet, and not into a file or a pipe."""
    return not quiet and sys.stderr.isatty()


def progress_bar(total: int | None, *, unit: str, desc: str, enabled: bool, **scaling):
    """A tqdm bar of ``total`` ``unit``s named ``desc``; a no-op bar unless ``enabled``.
    ``scaling``: tqdm's ``unit_scale`` / ``unit_divisor`` for byte counts."""
    from tqdm import tqdm  # not at import: `augkit --help` stays fast

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False, **scaling)
