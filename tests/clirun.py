"""The command line as the tests drive it: one call, its exit code checked; and the CSV
files the commands write, read back as rows."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from augkit.cli import cli


def run(*args, expect: int = 0):
    """``augkit ARGS`` in this process; its result, once the exit code is ``expect``."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == expect, (result.output, result.exception)
    return result


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
