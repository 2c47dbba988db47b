"""Stream: training batches over a pipe, readable with nothing but NumPy.

The stream is a sequence of ``.npy`` arrays, ``x`` then ``y`` for every batch, exactly as
``np.save`` writes them. A reader needs NumPy only::

    import sys, numpy as np
    class Pipe:                               # NumPy then reads through .read()
        def __init__(self, f): self.read = f.read
    f = sys.stdin.buffer
    while f.peek(1):                          # b"" at the end of the stream
        x = np.lib.format.read_array(Pipe(f)); y = np.lib.format.read_array(Pipe(f))

(``np.load`` and a bare ``read_array(f)`` ask a real file for its position, and a pipe
has none: "OSError: obtaining file position failed"), or, with augkit installed,
``for x, y in augkit.read_stream(sys.stdin.buffer)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from augkit.core.errors import AugkitError


class StreamWriteError(AugkitError):
    """The output took no more bytes (a full disk, a closed or read-only descriptor)."""


def write_stream(batches, out: BinaryIO) -> int:
    """Write ``(x, y)`` batches as .npy pairs; returns the number of batches written.

    A consumer that goes away raises BrokenPipeError here; the caller decides how quietly
    to stop (the CLI exits 0 without a traceback). Any other failure to write raises
    :class:`StreamWriteError`, with the system's reason.
    """
    sink = _Pipe(out)  # through .write(): ndarray.tofile gives up on a pipe's short writes
    count = 0
    for x, y in batches:
        try:
            np.lib.format.write_array(sink, np.ascontiguousarray(x), allow_pickle=False)
            np.lib.format.write_array(sink, np.asarray(y), allow_pickle=False)
            out.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StreamWriteError(exc.strerror or str(exc)) from exc
        count += 1
    return count


class _Pipe:
    """Hides the file object's fileno so NumPy reads and writes through read()/write()."""

    def __init__(self, f: BinaryIO):
        self.f = f

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def write(self, data) -> int:
        return self.f.write(data)


class _Prefixed(_Pipe):
    """A stream whose first bytes were already read, to tell its end from a batch."""

    def __init__(self, prefix: bytes, f: BinaryIO):
        super().__init__(f)
        self.prefix = prefix

    def read(self, n: int = -1) -> bytes:
        if not self.prefix:
            return self.f.read(n)
        if n < 0:
            head, self.prefix = self.prefix, b""
            return head + self.f.read()
        head, self.prefix = self.prefix[:n], self.prefix[n:]
        return head + (self.f.read(n - len(head)) if len(head) < n else b"")


def read_stream(f: BinaryIO) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x, y)`` from a stream written by ``augkit stream`` until it ends.

    Raises ValueError if the stream stops in the middle of a batch.
    """
    while True:
        first = f.read(1)
        if not first:
            return
        x = np.lib.format.read_array(_Prefixed(first, f), allow_pickle=False)
        y = np.lib.format.read_array(_Pipe(f), allow_pickle=False)
        yield x, y
