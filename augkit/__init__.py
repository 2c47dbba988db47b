"""augkit: data augmentation and dataset preparation for image classification.

The Python API, imported lazily so that ``import augkit`` stays cheap:

- :func:`load_recipe` -> :class:`~augkit.recipes.Recipe`; ``recipe(image, seed=...)``
- :func:`decode_image` -> RGB uint8 array, the same decoding every command uses
- :func:`discover` -> the samples of a folder, manifest or WebDataset tar shards; every
  function that takes a source takes :class:`Shards` (shards with labels in another member)
- :func:`load_features` -> features, labels, class names, manifest of an ``augkit cache-features`` cache
- :func:`flow` -> ``(x, y)`` training batches, fresh augmentations every epoch (class
  balance, MixUp / CutMix with soft targets on request)
- :func:`read_stream` -> ``(x, y)`` batches from ``augkit stream`` on a pipe

- :func:`augment` with :class:`AugmentOptions` -> augmented copies of a dataset written to disk
- :class:`Classifier` -> ``Classifier(HEAD).predict(image_or_path)``: class names and
  probabilities from a head ``augkit train-head`` wrote

Public modules: ``augkit.torch`` (``AugkitDataset``), ``augkit.keras`` (``AugkitPyDataset``),
``augkit.pca_color`` (``PCAColor``, for ``A.load`` of an exported recipe).
"""

from augkit._version import __version__

_LAZY = {
    "load_recipe": "augkit.recipes",
    "Recipe": "augkit.recipes",
    "decode_image": "augkit.input.decoding",
    "discover": "augkit.input.discovery",
    "Shards": "augkit.input.shard_sources",
    "load_features": "augkit.stages.features",
    "flow": "augkit.stages.batches",
    "Flow": "augkit.stages.batches",
    "read_stream": "augkit.stages.stream",
    "augment": "augkit.stages.augment",
    "AugmentOptions": "augkit.stages.augment",
    "Classifier": "augkit.stages.classifier",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'augkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
