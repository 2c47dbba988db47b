"""Imported once by the engine's forkserver, before any worker is forked from it.

Every worker then starts with albumentations, OpenCV and augkit's task modules already
imported (saving 2.4-3.5 s per worker) and with compute libraries held to one thread.
Thread limits must be set before NumPy/OpenCV load their thread pools, so this module
sets them first.
"""

from augkit.core._albu import defer_torch_bridge
from augkit.engines.local import limit_threads

defer_torch_bridge()  # workers need albumentations, not torch (1.4 s and 185 MB less)
limit_threads()

import augkit.recipes  # noqa: E402,F401
import augkit.recipes.transforms  # noqa: E402

augkit.recipes.transforms.registry()  # imports albumentations and builds the name table once

import augkit.stages.augment  # noqa: E402,F401
import augkit.input.decoding  # noqa: E402,F401
