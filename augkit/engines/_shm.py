"""What augkit keeps in ``/dev/shm``: named after the run that made it, bounded, swept.

Two kinds of entries, both named ``augkit-<pid>-<pid namespace>-...``:

- *batch slots* (``augkit-<pid>-<ns>-<n>``): the shared-memory blocks that ``flow`` and
  ``stream`` workers write batches into (:class:`Slots`);
- *the engine's semaphores* (``sem.mp-augkit-<pid>-<ns>-<random>``): a process pool's
  queues hold five named semaphores (its call queue two locks and a bounded semaphore,
  its result queue two locks). multiprocessing names them ``/mp-<random>``, which says
  nothing about who made them; :func:`named_semaphores` gives them augkit's prefix while
  the engine makes a pool.

A run that ends, even by an exception or Ctrl-C, removes its own entries (slots in
``Slots.close``, semaphores in multiprocessing's finalizers). A run killed with SIGKILL
(``kill -9`` of its process group, the OOM killer) cannot, and nothing else does: the
resource tracker that would is killed with it. So every engine with workers first
removes the entries whose creating process is gone (:func:`sweep`), as ``augment``
removes a killed run's temporary files. The pid namespace is in the name because
containers that share ``/dev/shm`` (``docker run --ipc=host``) number their processes
apart: a pid means something only in its own namespace, and an entry from another one
is left alone. So are all entries of other programs, including other Python programs'
plain ``sem.mp-*`` semaphores: nothing in their names says whose they are.

Room: a tmpfs allocates a page when it is first written, and a full one kills the
writer with SIGBUS. Docker gives ``/dev/shm`` 64 MB by default, a few batches of
224x224 images. Slots are therefore allocated whole when made (``posix_fallocate``),
which fails with ENOSPC instead; :func:`room` lets a caller check before it starts.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import sys
import threading
from multiprocessing import shared_memory
from typing import Any

from augkit.core.interrupts import deferred
from augkit.core.processes import gone

SHM_DIR = "/dev/shm"
_ENTRY = re.compile(r"(?:sem\.mp-)?augkit-(?P<pid>\d+)-(?P<ns>\d+)-")
_NO_ROOM = (errno.ENOSPC, errno.ENOMEM, errno.EFBIG)
_counter = itertools.count()


def _pid_namespace() -> int:
    """This process's pid namespace (0 where there is no /proc: nothing is swept there)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def tag() -> str:
    """The name prefix of this process's entries."""
    return f"augkit-{os.getpid()}-{_pid_namespace()}"


def sweep(folder: str = SHM_DIR) -> list[str]:
    """Remove the entries of augkit processes of this pid namespace that are gone."""
    ns = _pid_namespace()
    if not ns:
        return []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _ENTRY.match(name)
        if match is None or int(match["ns"]) != ns or not gone(int(match["pid"])):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:  # another sweeper was first, or not ours to remove
            continue
        removed.append(name)
    return removed


def room(folder: str = SHM_DIR) -> int | None:
    """Bytes free in /dev/shm, or None where there is none to measure."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


_NAMING = threading.Lock()  # how SemLock names is the process's: one pool at a time sets it


@contextlib.contextmanager
def named_semaphores():
    """Semaphores that multiprocessing makes inside are named ``/mp-augkit-<pid>-<ns>-...``.

    SemLock's own ``_make_name`` is swapped for the while, not the process's ``semprefix``
    it reads: joblib's loky (imported with scikit-learn) replaces ``_make_name`` with one
    that ignores ``semprefix``, so in a program that imported it augkit's semaphores were
    ``/loky-<pid>-...`` and no sweep could tell them its own. Pools made at once in two
    threads (a train and a val flow, say) take turns: otherwise the first to finish put the
    plain naming back while the other was still making its queues."""
    if not _pid_namespace():
        yield
        return
    from multiprocessing import synchronize

    prefix = f"/mp-{tag()}"

    def make_name() -> str:
        return f"{prefix}-{next(synchronize.SemLock._rand)}"  # noqa: SLF001 - multiprocessing's own sequence

    with _NAMING:
        saved = synchronize.SemLock.__dict__["_make_name"]
        synchronize.SemLock._make_name = staticmethod(make_name)  # noqa: SLF001
        try:
            yield
        finally:
            synchronize.SemLock._make_name = saved  # noqa: SLF001


def create_slot(nbytes: int, blocks: dict[str, shared_memory.SharedMemory]) -> str | None:
    """The name of a new block of ``nbytes`` with every page allocated, added to ``blocks``
    at once (so that whoever closes ``blocks`` removes it, Ctrl-C or not); None when
    /dev/shm is full."""
    with deferred():  # between creation and ``blocks``, a Ctrl-C would leak the block
        while True:
            try:
                shm = shared_memory.SharedMemory(name=f"{tag()}-{next(_counter)}", create=True, size=nbytes)
                break
            except FileExistsError:  # left by a killed process that had this pid: not ours
                continue
            except OSError as exc:
                if exc.errno in _NO_ROOM:
                    return None
                raise
        blocks[shm.name] = shm
    try:
        _allocate(shm)
    except OSError as exc:
        if exc.errno not in _NO_ROOM:
            raise
        del blocks[shm.name]
        shm.close()
        shm.unlink()
        return None
    return shm.name


def _allocate(shm: shared_memory.SharedMemory) -> None:
    fallocate = getattr(os, "posix_fallocate", None)  # not on macOS, which has no small /dev/shm
    fd = getattr(shm, "_fd", -1)
    if fallocate is None or fd < 0:
        return
    try:
        fallocate(fd, 0, shm.size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


class Slots:
    """Shared-memory blocks handed to workers and lent to the consumer as arrays."""

    def __init__(self, nbytes: int):
        self.nbytes = max(1, nbytes)
        self.blocks: dict[str, shared_memory.SharedMemory] = {}
        self.lent: dict[str, Any] = {}  # slot -> the array the consumer got
        self.free: list[str] = []
        self.full = False  # /dev/shm had no room for a new block

    def take(self) -> str | None:
        """A free slot's name; None when /dev/shm has no room for another (use a pipe)."""
        for name in list(self.lent):
            # 2 = our dict entry + getrefcount's argument: nobody else holds the batch.
            if sys.getrefcount(self.lent[name]) <= 2:
                del self.lent[name]
                self.free.append(name)
        if self.free:
            return self.free.pop()
        name = None if self.full else create_slot(self.nbytes, self.blocks)
        self.full = name is None
        return name

    def lend(self, name: str, shape, dtype: str):
        import numpy as np

        array = np.ndarray(shape, np.dtype(dtype), buffer=self.blocks[name].buf)
        self.lent[name] = array
        return array

    def give_back(self, name: str) -> None:
        self.free.append(name)

    def close(self) -> None:
        for name, shm in self.blocks.items():
            shm.unlink()  # the name goes now; a mapping lives on while something uses it
            array = self.lent.pop(name, None)
            if array is not None and sys.getrefcount(array) > 2:
                # The consumer still holds this batch, and NumPy does not pin the memory:
                # closing would unmap it under the array. Leave the mapping to the array
                # (its base memoryview keeps the mmap alive); close only the descriptor.
                shm._buf = shm._mmap = None  # noqa: SLF001 - SharedMemory has no "detach"
            del array
            shm.close()
        self.lent.clear()
        self.blocks.clear()


# --- worker side -------------------------------------------------------------------------

_attached: dict[str, shared_memory.SharedMemory] = {}


def attach(name: str) -> shared_memory.SharedMemory:
    shm = _attached.get(name)
    if shm is None:
        # The parent owns (and unlinks) the block; attaching must not register it with
        # this process's resource tracker, which would unlink it when the worker exits.
        shm = shared_memory.SharedMemory(name=name, track=False) if sys.version_info >= (3, 13) else _untracked(name)
        _attached[name] = shm
    return shm


def _untracked(name: str) -> shared_memory.SharedMemory:
    # Python < 3.13 registers every attachment with the resource tracker, which the
    # parent shares: skip the registration rather than undo it (undoing it would make
    # the parent's own unlink fail in the tracker).
    from multiprocessing import resource_tracker

    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register
