"""How a command ends a run: the failures line, and exit 1 when nothing usable was made
(the rule in the README's "Exit codes")."""

from __future__ import annotations

import click

from augkit.core.errors import AugkitError
from augkit.core.words import plural


def reasons(failures: dict[str, int]) -> str:
    """``3 truncated, 1 empty``: failure counts per reason, as every command prints them."""
    return ", ".join(f"{n} {r}" for r, n in sorted(failures.items())) or "no input"


def report_failures(count: int, noun: str, failures: dict[str, int], report: str) -> None:
    """The line a run that left some inputs out ends with (stderr): ``noun`` in the singular."""
    if count:
        click.echo(f"{plural(count, noun)} failed ({reasons(failures)}); see {report}", err=True)


def nothing_usable(what: str, failures: dict[str, int], report: str) -> AugkitError:
    """The error a command ends with when every input failed: exit 1, with the reasons."""
    return AugkitError(f"{what} ({reasons(failures)}); see {report}")
