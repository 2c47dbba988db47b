"""What a recipe returns at run time, and many augmentations of one image for less.

:func:`require_image` is the run-time guard that every consumer of a recipe's result calls
(the static check is :meth:`augkit.recipes.Recipe.require_image_output`);
:class:`ImageAugmenter` (``recipe.for_image(image)``) runs a recipe's deterministic head
once per image and only the rest per seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from augkit.core.seeds import seed_pipeline


class NotAnImageError(ValueError):
    """A recipe returned something other than a uint8 RGB image at run time."""


def require_image(result: Any) -> np.ndarray:
    """``result`` if it is a uint8 HxWx3 array, else :class:`NotAnImageError`.

    The run-time guard behind the static check (:meth:`Recipe.require_image_output`), for
    what no step declares (a ``Lambda``): every consumer that feeds a recipe's result on
    calls it, and its per-sample error handling turns the error into a failure row."""
    if isinstance(result, np.ndarray) and result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3:
        return result
    what = f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray) else type(result).__name__
    raise NotAnImageError(f"the recipe returned {what}, not a uint8 RGB image (HxWx3)")


class _UsedRandomness(Exception):
    pass


class _Tripwire:
    """Stands in for a transform's generators while :class:`ImageAugmenter` runs the head:
    any use of it means the head's result could depend on the seed."""

    touched = False

    def __getattr__(self, name: str):
        self.touched = True
        raise _UsedRandomness(name)


class ImageAugmenter:
    """Augmented versions of one image: ``augmenter(seed)`` is ``recipe(image, seed=seed)``,
    byte for byte, and always an image: a result that is not uint8 RGB raises
    :class:`NotAnImageError` (see :func:`require_image`), which the commands that use an
    ImageAugmenter record as a failed sample.

    A recipe often starts with transforms that always apply and draw no random number
    (``SmallestMaxSize``, ``Resize``, ``CenterCrop``; ``ToGray`` with ``p: 1``): their result is
    the same for every seed, so it is computed once, on the first call, and each seed runs
    only the rest of the pipeline. Which transforms draw is not guessed from their names:
    the leading always-applied ones run with generators that refuse every use, and the
    head ends before the first that uses one (``RandomCrop``; ``SmallestMaxSize(max_size=
    [224, 256])``, which picks a size). With one shared stream (:func:`seed_pipeline`) and
    a head that draws nothing, the rest of the pipeline sees exactly the draws it sees in
    a full run.
    """

    def __init__(self, recipe, image):  # an augkit.recipes.Recipe
        self.recipe = recipe
        self.image = image
        self._head: tuple[int, Any] | None = None  # (transforms run once, their output)

    def __call__(self, seed: int):
        if self._head is None:
            self._head = (0, self.image)  # if the head raises, every seed raises it below
            self._head = _run_head(self.recipe._always_applied, self.image)
        done, output = self._head
        if done == 0:
            return require_image(self.recipe(self.image, seed=seed))
        tail = self.recipe._tail(done)
        seed_pipeline(tail, seed)
        try:
            result = tail(image=output)["image"]
        except Exception as exc:  # noqa: BLE001
            raise self.recipe._transform_error(exc) from exc
        return require_image(result)


def _run_head(candidates: list, image) -> tuple[int, Any]:
    """(how many of ``candidates`` ran without touching a random generator, their output)."""
    saved = [(t.random_generator, t.py_random) for t in candidates]
    done = 0
    try:
        for t in candidates:
            trip = _Tripwire()
            t.set_random_state(trip, trip)
            try:
                result = t(image=image)["image"]
            except _UsedRandomness:
                break
            except Exception:  # noqa: BLE001 - fails here: it fails in the full run, for each seed, named
                break
            if trip.touched:  # used, and the exception swallowed on the way
                break
            image, done = result, done + 1
    finally:
        for t, (generator, py_random) in zip(candidates, saved):
            t.set_random_state(generator, py_random)
    return done, image
