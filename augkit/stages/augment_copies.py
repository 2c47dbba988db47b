"""One input's outputs, as arrays: decode it once, then its original and each copy.

The one definition both of augment's writers use, in the workers: files
(:class:`augkit.stages.augment.AugmentTask`) and WebDataset shards
(:class:`augkit.stages.augment_shards.ShardTask`), so an image in a shard is the bytes the
file of the same name would hold. Copy ``k`` is the recipe seeded with
``derive_seed(seed, key, k)``; the original (``k`` None) is the image decoded whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from augkit.core.seeds import derive_seed
from augkit.stages.augment_plan import AugmentOptions
from augkit.stages.decode_size import recipe_hint


class Made(NamedTuple):
    """An output (its name, its copy) and its image, or why there is none: ``failure`` holds
    ``reason`` and ``message``. A failure with the name "" is the input's: it could not be read."""

    output: str
    copy: int | None
    image: Any = None
    failure: dict[str, str] | None = None


def copy_seed(seed: int, key: str, copy: int) -> int:
    return derive_seed(seed, key, copy)


class Copies:
    """Makes the outputs of one input after another, for a recipe and options."""

    def __init__(self, recipe, options: AugmentOptions):
        self.recipe = recipe
        self.options = options
        self.size_hint = recipe_hint(recipe, options.reduced_decode)  # a JPEG may be decoded reduced

    def __call__(self, path: str, key: str, outputs) -> Iterator[Made]:
        """``outputs``: (name, copy) pairs. One Made per output, in order, or a single
        failure of the input when it cannot be decoded."""
        from augkit.input.decoding import DecodeError, decode_image, decode_image_with_info

        opts = self.options
        try:
            image, info = decode_image_with_info(path, max_pixels=opts.max_pixels, size_hint=self.size_hint)
            original = image  # --include-original writes the image whole; copies never depend on it
            if info.scale > 1 and any(k is None for _, k in outputs):
                original = decode_image(path, max_pixels=opts.max_pixels)
        except DecodeError as exc:
            yield Made("", None, failure={"reason": exc.reason, "message": str(exc)})
            return
        augment = self.recipe.for_image(image)  # a deterministic head (resize) runs once for all copies
        for name, k in outputs:
            try:
                result = original if k is None else augment(copy_seed(opts.seed, key, k))
            except Exception as exc:  # noqa: BLE001 - one transform failure is one row
                yield Made(name, k, failure={"reason": "transform_error",
                                             "message": f"{key}: copy {k}: {type(exc).__name__}: {exc}"})
                continue
            yield Made(name, k, result)
