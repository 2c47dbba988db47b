"""The per-image task of the feature cache: decode once, then each view (the recipe seeded
by ``derive_seed(seed, key, view)``, or the plain image), cropped and resized to the
backbone's uint8 input (:mod:`augkit.stages.preprocess`). Runs on any engine's workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from augkit.stages.decode_size import features_hint
from augkit.stages.preprocess import crop_to_input


@dataclass(frozen=True)
class FeatureOptions:
    views: int = 1
    plain_first: bool = False  # view 0 is the image without the recipe
    seed: int | None = None  # None: the recipe's seed: (see augkit.core.seeds.run_seed)
    dtype: str = "float16"
    batch_size: int | None = None  # default: batch_size_for(threads), see there
    threads: int | None = None  # ONNX Runtime intra-op threads (default: one per core)
    shard_images: int | None = None  # images per shard (default: SHARD_ROWS rows)
    max_pixels: int | None = None
    reduced_decode: bool = True  # False: decode every image whole (see augkit.stages.decode_size)
    providers: tuple[str, ...] = ()  # ONNX Runtime's (augkit.stages.providers); () is the CPU



class FeatureTask:
    """Per image: decode once, then prepare each view. Returns uint8 (views, S, S, 3)
    (the cut model normalises them), or a failure dict with ``reason`` and ``message``."""

    def __init__(self, recipe, prep, options: FeatureOptions):
        self.recipe = recipe
        self.prep = prep
        self.options = options
        self.size_hint = features_hint(recipe, prep, options.views, options.plain_first, options.reduced_decode)

    def __call__(self, item: tuple[str, str, str | None]):
        import numpy as np

        from augkit.input.decoding import DecodeError, decode_image
        from augkit.core.seeds import derive_seed

        path, key = item[0], item[1]  # (path, key, label): the label is the assembler's
        opts = self.options
        try:
            image = decode_image(path, max_pixels=opts.max_pixels, size_hint=self.size_hint)
        except DecodeError as exc:
            return {"reason": exc.reason, "message": str(exc)}
        views = []
        augment = self.recipe.for_image(image) if self.recipe is not None else None
        for v in range(opts.views):
            view = image
            if augment is not None and not (v == 0 and opts.plain_first):
                try:
                    view = augment(derive_seed(opts.seed, key, v))
                except Exception as exc:  # noqa: BLE001 - one transform failure is one row
                    return {"reason": "transform_error", "message": f"{key}: view {v}: {type(exc).__name__}: {exc}"}
            views.append(crop_to_input(view, self.prep))
        return views[0][None] if len(views) == 1 else np.stack(views)
