"""What a recipe's first step needs of a decoded image: the size hint it gives the decoder.

A recipe that starts with a resize that always applies and keeps no more than a given
size (``SmallestMaxSize``, ``LongestMaxSize``, ``Resize``, with ``p: 1``) throws away most
of a large photo's pixels at once. :func:`size_hint` says what that resize needs, so the
decoder can decode a JPEG at 1/2, 1/4 or 1/8 of its size and leave the rest of the way
to the recipe (:mod:`augkit.input.reduced` holds the rule: never below the target, never
another output size). Any other first step (a random crop, a composition, a resize that may
not fire) gives no hint: the image is decoded whole. ``reduced_decode: false`` in the
recipe (``Recipe.reduced_decode``) turns it off, for outputs bit-identical to a full decode.

The output-size rules below are albumentations 2.0.8's (``MaxSizeTransform``: the scale
from the shorter or longer side, or from ``max_size_hw``; each side ``max(1, round(side *
scale))``); tests compare them with what albumentations makes.
"""

from __future__ import annotations

from functools import partial

from augkit.input.reduced import SizeHint


def size_hint(recipe) -> SizeHint | None:
    """The :class:`SizeHint` of ``recipe``'s first step, or None when it has none (or the
    recipe says ``reduced_decode: false``)."""
    if recipe is None or not recipe.reduced_decode or not recipe._transforms:
        return None
    return transform_hint(recipe._transforms[0])


def transform_hint(transform) -> SizeHint | None:
    """What ``transform`` needs of its input, if it is a shrink that always applies."""
    name = type(transform).__name__
    if getattr(transform, "p", 0) < 1 or type(transform).__module__.split(".")[0] != "albumentations":
        return None
    if name == "Resize":
        return SizeHint(height=transform.height, width=transform.width)
    if name not in ("SmallestMaxSize", "LongestMaxSize"):
        return None
    smallest = name == "SmallestMaxSize"
    if transform.max_size is not None:
        sizes = transform.max_size if isinstance(transform.max_size, (list, tuple)) else [transform.max_size]
        rules = tuple(partial(max_size_shape, smallest, int(size)) for size in sizes)
        largest = max(int(size) for size in sizes)
        return SizeHint(shorter=largest, shapes=rules) if smallest else SizeHint(longer=largest, shapes=rules)
    max_h, max_w = transform.max_size_hw
    # Both sides at least the target: the scale is then at most 1 whichever side sets it.
    return SizeHint(height=max_h or 0, width=max_w or 0, shapes=(partial(max_size_hw_shape, smallest, max_h, max_w),))


def max_size_shape(smallest: bool, max_size: int, height: int, width: int) -> tuple[int, int]:
    """(H, W) that ``SmallestMaxSize(max_size)`` (or ``LongestMaxSize``) makes of height x width."""
    return _scaled(height, width, max_size / (min(height, width) if smallest else max(height, width)))


def max_size_hw_shape(smallest: bool, max_h: int | None, max_w: int | None, height: int, width: int) -> tuple[int, int]:
    """(H, W) that ``SmallestMaxSize(max_size_hw=...)`` (or ``LongestMaxSize``) makes of height x width."""
    if max_h is not None and max_w is not None:
        pick = max if smallest else min
        scale = pick(max_h / height, max_w / width)
    else:
        scale = max_h / height if max_h is not None else max_w / width
    return _scaled(height, width, scale)


def _scaled(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, round(height * scale)), max(1, round(width * scale))
