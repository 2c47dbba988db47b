"""Ctrl-C handled where augkit chooses, and never lost while the main thread waits.

Python runs a signal's handler in the main thread at the next bytecode it executes. Two
consequences bite a parent that waits on worker processes:

- *A lost Ctrl-C.* A SIGINT that arrives just before the main thread blocks (between its
  last check and the system call), or that the kernel hands to another thread (the
  executor's manager, tqdm's monitor), does not interrupt the block: the handler waits
  until the thread wakes for another reason. A run whose workers all hold their items
  then ignores Ctrl-C until they finish, or for ever. So the waits under :func:`deferred`
  wake every :data:`WAKE_SECONDS` and look.
- *A Ctrl-C in the wrong place.* The KeyboardInterrupt is raised wherever the main thread
  happens to be: inside ``concurrent.futures`` taking the locks of several futures one by
  one, say, which it then never releases, so the executor's thread blocks on them and the
  interpreter waits on that thread at exit. Under :func:`deferred` the handler only notes
  the signal, and the KeyboardInterrupt is raised on the way out, at a place of augkit's
  choosing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

# How often a wait under ``deferred`` wakes to look for a Ctrl-C: the longest a Ctrl-C
# waits to be handled, and ten cheap wake-ups a second otherwise.
WAKE_SECONDS = 0.1


@contextlib.contextmanager
def deferred() -> Iterator[list]:
    """Inside, a SIGINT is only noted, in the list this yields (a wait can poll it and stop
    early); on the way out it is handled as it would have been (KeyboardInterrupt, by
    default). Outside the main thread, where no handler can be set, nothing changes."""
    received: list = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda *args: received.append(args))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(*received[0])
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)
