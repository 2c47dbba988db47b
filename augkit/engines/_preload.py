"""Imported once by the engine's forkserver, before any worker is forked from it.

Every worker then starts with albumentations, OpenCV and the decoder already imported
(benchmarks/RESULTS.md: seconds per worker) and with compute libraries held to one thread.
Thread limits must be set before NumPy/OpenCV load their thread pools, so this module sets
them first. It also sets how a worker whose pool is gone exits. What is imported here is
the layers below the engines (recipes, input); the caller's task modules are named by the
caller (``preload=``) and imported after this one.
"""

import os
import traceback
from multiprocessing import spawn

from augkit.core._albu import defer_torch_bridge
from augkit.engines.contract import limit_threads


def _quiet_when_the_pool_is_gone() -> None:
    """A worker whose pool closed before it started exits quietly (status 1).

    A Ctrl-C while the parent waits for the forkserver to start a worker (the forkserver
    may still be importing: seconds) leaves that request with the forkserver, which serves
    it afterwards. The new worker then reads a pool its parent has closed: the pool's
    semaphores are gone (FileNotFoundError) or its start-up data was cut short (EOFError),
    and multiprocessing printed a 14-line traceback under the parent's one line. Nothing
    waits for this worker; any other failure to start still shows its traceback.
    """
    start = spawn._main

    def _main(fd: int, parent_sentinel: int) -> int:
        try:
            return start(fd, parent_sentinel)
        except EOFError:
            return 1
        except FileNotFoundError as exc:
            if os.path.basename(traceback.extract_tb(exc.__traceback__)[-1].filename) != "synchronize.py":
                raise
            return 1

    spawn._main = _main


defer_torch_bridge()  # workers need albumentations, not torch
limit_threads()
_quiet_when_the_pool_is_gone()

import augkit.recipes  # noqa: E402,F401
import augkit.recipes.transforms  # noqa: E402

augkit.recipes.transforms.registry()  # imports albumentations and builds the name table once

import augkit.input.decoding  # noqa: E402,F401
