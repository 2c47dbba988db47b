"""The size hint each command gives the decoder: what its first resize needs of an image.

A JPEG is decoded at 1/2, 1/4 or 1/8 of its size when what the command does first to
every image shrinks it at least that much (:mod:`augkit.input.reduced` holds the rule:
never below the target, never another output size). One function per consumer, so each
command's rule is written once:

* ``augment``: the recipe's first step (:func:`augkit.recipes.size_hint.size_hint`);
* ``flow``, ``stream`` and the PyTorch and Keras adapters (:class:`~augkit.stages.batches.SamplePipeline`):
  the recipe's first step; without a recipe, ``size=``, to which the whole image is stretched;
* ``cache-features``: every view goes through the backbone's crop rule, "shorter side to
  ``resize``, centre ``input_size``" (:func:`~augkit.stages.preprocess.crop_to_input`), which
  needs a shorter side of at least ``resize`` of the plain image; a recipe's views need
  what its first step needs (a recipe without a shrink first: the image is decoded whole).

``preview`` and ``stats`` decode every image whole: a preview's captions give the file's
size and the drawn values for it, and statistics are of the images as they are.

``enabled=False`` (``reduced_decode=False`` in the library, ``--exact-decode`` on the
command line, ``reduced_decode: false`` in the recipe) decodes every image whole, for
outputs bit-identical to what a full decode makes. A run records whether it decoded
reduced (:func:`decode_setting`), so a rerun that decodes otherwise is another run.
"""

from __future__ import annotations

from augkit.input.reduced import SizeHint
from augkit.recipes.size_hint import size_hint


def recipe_hint(recipe, enabled: bool = True) -> SizeHint | None:
    """``augment``'s hint: the recipe's first step's."""
    return size_hint(recipe) if enabled else None


def flow_hint(recipe, size: tuple[int, int] | None, enabled: bool = True) -> SizeHint | None:
    """A training sample's hint: the recipe's first step's; without a recipe, ``size``."""
    if not enabled:
        return None
    if recipe is not None:
        return size_hint(recipe)
    return SizeHint(height=size[0], width=size[1]) if size is not None else None


def features_hint(recipe, prep, views: int, plain_first: bool, enabled: bool = True) -> SizeHint | None:
    """A feature row's hint, for ``views`` views of each image (the first one plain with
    ``plain_first``) through ``prep``'s crop rule."""
    if not enabled:
        return None
    crop = SizeHint(shorter=prep.resize)
    plain = recipe is None or plain_first
    through_recipe = recipe is not None and (views > 1 or not plain_first)
    if not through_recipe:
        return crop
    hint = size_hint(recipe)
    if hint is None:
        return None
    return hint & crop if plain else hint


# What a run that records no "decode" did, in words (core/runs.describe's ``missing``).
NOT_RECORDED = {"decode": "whole"}


def decode_setting(hint: SizeHint | None) -> dict[str, str]:
    """What a run records of its decoding: ``{"decode": "reduced"}`` when images may be
    decoded reduced, nothing when every image is decoded whole (as every run made before
    reduced decoding recorded nothing), so a rerun that decodes otherwise is another run."""
    return {} if hint is None else {"decode": "reduced"}
