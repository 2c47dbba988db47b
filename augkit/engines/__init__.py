"""Running a task over items: the contract (:mod:`.contract`), the local process pool
(:mod:`.local`) and Ray (:mod:`.ray`), chosen by name with :func:`get_engine`.

The engines are imported only when asked for: Ray only with ``--engine ray``, and neither
by ``augkit --help``.
"""

from __future__ import annotations

from typing import Any


def _local(**options: Any):
    from augkit.engines.local import LocalEngine

    return LocalEngine(**options)


def _ray(**options: Any):
    from augkit.engines.ray import RayEngine

    return RayEngine(**options)


ENGINES = {"local": _local, "ray": _ray}


def get_engine(name: str = "local", *, workers: int | None = None, preload: tuple[str, ...] = (), **options: Any):
    """The engine called ``name``, with ``workers`` (None: the engine's default) and its own
    ``options`` (Ray: ``address``, ...). ``preload``: modules the caller's tasks live in, which
    engines that start worker processes import in them before any task arrives. Unknown
    names are a usage error listing the known ones."""
    from augkit.core.errors import UsageError

    try:
        factory = ENGINES[name]
    except KeyError:
        raise UsageError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}") from None
    return factory(workers=workers, preload=tuple(preload), **options)
