"""Tar shards as other tools write them (real mtimes, owners), built in code for the tests."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

from conftest import make_structured_rgb
from imagefiles import encoded


def tar_of(path: Path, members: list[tuple[str, bytes]], fmt=tarfile.GNU_FORMAT) -> Path:
    """A shard of these members, written by plain tarfile."""
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uname = len(data), time.time(), "someone"
            tar.addfile(info, io.BytesIO(data))
    return path


def png(seed: int = 0) -> bytes:
    return encoded(make_structured_rgb(12, 16, seed), "PNG")


def sample(key: str, cls: int | None = None, name: str | None = None, ext: str = "png", seed: int = 0):
    """The members of one WebDataset sample: its image, and its cls and json when given."""
    members = [(f"{key}.{ext}", png(seed))]
    if cls is not None:
        members.append((f"{key}.cls", str(cls).encode()))
    if name is not None:
        members.append((f"{key}.json", json.dumps({"label": name}).encode()))
    return members
