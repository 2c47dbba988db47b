"""Backbones: pretrained ONNX classifiers by name, their preprocessing, their weights, and
the cut of their graph at the pooled features.

- :mod:`.registry`: the entries (``backbones.yaml``, a user's YAML entry, a bare ONNX
  file) and :func:`resolve_backbone`, the one place where "explicit option > entry >
  default" is decided. The preprocessing itself is :mod:`augkit.stages.preprocess`'s.
- :mod:`.weights`: the ONNX file, local or downloaded into the user cache, verified.
- :mod:`.cut`: the graph cut at the pooled-feature tensor.

Nothing here imports onnx, NumPy or tqdm at module level: ``augkit backbones`` stays fast.
"""

from augkit.stages.backbones.cut import PIXELS, FeatureModel, feature_model
from augkit.stages.backbones.registry import (CHANNELS, DEFAULT_BACKBONE, DEFAULTS, ENTRY_KEYS, LAYOUTS, POOL_RULES,
                                              PREPROCESSING_KEYS, Backbone, registry, resolve_backbone)
from augkit.stages.backbones.weights import (CACHE_ENV, MIRROR_ENV, cache_root, cached_path, download, file_sha256,
                                             mirror_url, weights_file)
from augkit.stages.preprocess import Preprocessing

__all__ = ["CACHE_ENV", "CHANNELS", "DEFAULTS", "DEFAULT_BACKBONE", "ENTRY_KEYS", "LAYOUTS", "MIRROR_ENV", "PIXELS",
           "POOL_RULES", "PREPROCESSING_KEYS", "Backbone", "FeatureModel", "Preprocessing", "cache_root", "cached_path",
           "download", "feature_model", "file_sha256", "mirror_url", "registry", "resolve_backbone", "weights_file"]
