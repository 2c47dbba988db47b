"""Imported once by the engine's forkserver, before any worker is forked from it.

Every worker then starts with albumentations, OpenCV and the decoder already imported
(benchmarks/RESULTS.md: seconds per worker) and with compute libraries held to one thread.
Thread limits must be set before NumPy/OpenCV load their thread pools, so this module sets
them first. What is imported here is the layers below the engines (recipes, input); the
caller's task modules are named by the caller (``preload=``) and imported after this one.
"""

from augkit.core._albu import defer_torch_bridge
from augkit.engines.contract import limit_threads

defer_torch_bridge()  # workers need albumentations, not torch
limit_threads()

import augkit.recipes  # noqa: E402,F401
import augkit.recipes.transforms  # noqa: E402

augkit.recipes.transforms.registry()  # imports albumentations and builds the name table once

import augkit.input.decoding  # noqa: E402,F401
