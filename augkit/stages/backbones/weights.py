"""A backbone's weights: ``--weights PATH``, a local file named by the entry, or a
download into the cache directory (``AUGKIT_CACHE_DIR``, else the platform's user cache,
from ``platformdirs``), verified against the entry's sha256 and moved into place
atomically; an interrupted or corrupt download leaves nothing behind, and the partial
files of a process killed outright are swept by the next download. ``AUGKIT_MIRROR`` /
``--mirror`` replace the public host for networks that block it.

The downloader is written here, not ``pooch.retrieve``: compared on the same local
server (benchmarks/RESULTS.md), pooch's retrieve does not retry either, logs to stderr,
raises requests' multi-clause errors (a cut transfer is an ``IncompleteRead`` to parse),
and leaves its temporary file behind for good when the process is killed. Nothing it
does is missing here, in about sixty lines of the standard library.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path

from augkit.core.errors import AugkitError, UsageError
from augkit.core.processes import gone
from augkit.core.progress import progress_bar

CACHE_ENV = "AUGKIT_CACHE_DIR"
MIRROR_ENV = "AUGKIT_MIRROR"


def is_remote(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("http", "https") if "://" in url else False


def cache_root() -> Path:
    """``AUGKIT_CACHE_DIR``, else the platform's user cache directory for ``augkit``."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("augkit", appauthor=False))


def cached_path(backbone, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Where a downloaded backbone's weights live in the cache (None for local weights)."""
    if not backbone.url or not is_remote(backbone.url) or not backbone.sha256:
        return None
    name = Path(urllib.parse.urlparse(backbone.url).path).name or f"{backbone.name}.onnx"
    stem, dot, suffix = name.rpartition(".")
    name = f"{stem}-{backbone.sha256[:12]}.{suffix}" if dot else f"{name}-{backbone.sha256[:12]}"
    return Path(cache_dir or cache_root()) / "backbones" / name


def mirror_url(url: str, mirror: str | None) -> str:
    """``url`` on a mirror: a plain base gets the file name appended (``BASE/mobilenetv2-12.onnx``);
    a base with ``{file}`` or ``{path}`` (the URL's path) placeholders is filled in instead."""
    if not mirror:
        return url
    parsed = urllib.parse.urlparse(url)
    if "{" in mirror:
        return mirror.format(file=Path(parsed.path).name, path=parsed.path.lstrip("/"))
    return f"{mirror.rstrip('/')}/{Path(parsed.path).name}"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_file(backbone, *, cache_dir: str | os.PathLike | None = None, mirror: str | None = None,
                 progress: bool = False) -> tuple[Path, str]:
    """(path of the ONNX file, its sha256), downloading it into the cache on first use.
    ``backbone`` is a :class:`~augkit.stages.backbones.Backbone`."""
    local = backbone.weights or (backbone.url if backbone.url and not is_remote(backbone.url) else None)
    if local is not None:
        path = Path(local)
        if not path.is_file():
            raise UsageError(f"{path}: weights file not found; check the path or pass --weights PATH")
        return path, file_sha256(path)
    if not backbone.url:
        raise UsageError(f"backbone {backbone.name!r} names no weights; pass --weights PATH")
    dest = cached_path(backbone, cache_dir)
    if dest.is_file():
        sha = file_sha256(dest)
        if sha == backbone.sha256:
            return dest, sha
        dest.unlink()  # damaged since it was verified: fetch it again
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV, "").strip() or None
    download(mirror_url(backbone.url, mirror), dest, sha256=backbone.sha256, size=backbone.size, progress=progress,
             mirrored=mirror is not None)
    return dest, backbone.sha256


def download(url: str, dest: Path, *, sha256: str, size: int | None = None, progress: bool = False,
             timeout: float = 30.0, mirrored: bool = False) -> None:
    """Download ``url`` to ``dest`` via a temporary file beside it, verify the sha256, then
    ``os.replace``. Any failure (no network, HTTP error, a transfer cut short, a checksum
    mismatch, Ctrl-C) removes the temporary file and raises a one-line AugkitError."""
    fix = "download it elsewhere and pass --weights PATH, or " + (
        "check the mirror (--mirror / AUGKIT_MIRROR) serves the same file" if mirrored
        else "set a mirror with --mirror / AUGKIT_MIRROR")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(dest.parent)
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        with _open(url, timeout, fix) as response:
            header = response.headers.get("Content-Length", "")
            expected = int(header) if header.isdigit() else size
            got, received = _save(response, tmp, expected, f"download {dest.name}", progress)
        if expected is not None and received < expected:
            raise AugkitError(f"download of {url} stopped after {received:,} of {expected:,} bytes; nothing was kept: "
                              f"rerun to retry, or {fix}")
        if got != sha256:
            raise AugkitError(f"{url}: sha256 of the download is {got}, expected {sha256}; the file was not kept "
                              f"(a proxy or a changed file?): {fix}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _open(url: str, timeout: float, fix: str):
    """The HTTP response for ``url``, or a one-line AugkitError naming the fix."""
    import http.client
    import urllib.error
    import urllib.request

    from augkit._version import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"augkit/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only, checked by the caller
    except urllib.error.HTTPError as exc:
        raise AugkitError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {fix}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise AugkitError(f"cannot download {url} ({reason}): offline? {fix}") from None


def _save(response, tmp: Path, expected: int | None, desc: str, progress: bool) -> tuple[str, int]:
    """Stream the body into ``tmp``: (sha256, bytes received). A connection cut mid-way
    ends the body early; the caller reports it from the byte count."""
    import http.client

    digest, received = hashlib.sha256(), 0
    with open(tmp, "wb") as f, progress_bar(expected, unit="B", desc=desc, enabled=progress, unit_scale=True,
                                            unit_divisor=1024) as bar:
        while True:
            try:
                block = response.read(1 << 20)
            except (OSError, http.client.HTTPException):
                block = b""
            if not block:
                break
            f.write(block)
            digest.update(block)
            received += len(block)
            bar.update(len(block))
    return digest.hexdigest(), received


def _remove_stale_parts(folder: Path) -> None:
    """Partial downloads of processes that died (kill -9) without cleaning up."""
    for part in folder.glob(".*.part-*"):
        pid = part.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and gone(int(pid)):
            part.unlink(missing_ok=True)

