"""Tasks that kill their own worker process on one chosen input, every time: what a
segfaulting decoder or the OOM killer does. In a module of tests/ (on the path the
forkserver copies from pytest), so worker processes can import them."""

from __future__ import annotations

import os

from augkit.stages.features import FeatureTask

KILLS_ITS_WORKER = "dog/dog_2.png"


class FeatureTaskThatKillsItsWorker(FeatureTask):
    def __call__(self, item):
        if item[1] == KILLS_ITS_WORKER:
            os._exit(9)
        return super().__call__(item)
