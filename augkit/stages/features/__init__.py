"""Feature cache: a frozen backbone's pooled features for every image (and K augmented
views of it), computed once, stored as ``.npy`` shards, loaded with :func:`load_features`.

Modules: :mod:`.cache` (the format: shards, meta.json, reports, resume, reading),
:mod:`.task` (the per-image :class:`FeatureTask`), :mod:`.assemble` (outcomes -> rows,
failures and batches -> shard files, for either engine), :mod:`.inference` (ONNX Runtime)
and :mod:`.run` (:func:`cache_features`, which puts them together on an engine).

What a user can rely on:
- Row ``r`` of the features is (image, view) of row ``r`` of ``manifest.csv`` and label
  ``labels[r]`` (an index into ``meta.json``'s ``classes``; -1 when unlabelled). Rows are
  ordered by the image's key, then view. View ``v`` of an image is seeded with
  ``derive_seed(seed, key, v)``; with ``plain_first`` view 0 is the image un-augmented.
- A shard is a fixed list of images (so of rows). Its ``.npy`` is written whole or not at
  all, then its ``.json`` (rows and failures), which marks it done. A rerun skips done
  shards: an interrupted run finishes with the same result as an uninterrupted one.
- ``meta.json`` records backbone, weights sha256, preprocessing, the cut tensor, recipe
  and its hash, seed, views and dtype. A rerun into a cache made with other ones is
  refused unless ``overwrite`` (which removes only the cache's own files).
- Memory does not grow with the dataset: features go to disk shard by shard.
"""

from augkit.stages.features.cache import FeatureCache, ShardedRows, load_features
from augkit.stages.features.run import FeatureSummary, cache_features, default_workers
from augkit.stages.features.task import FeatureOptions, FeatureTask
from augkit.stages.preprocess import crop_to_input, normalize, to_input  # noqa: F401 - features' names for them

__all__ = ["FeatureCache", "FeatureOptions", "FeatureSummary", "FeatureTask", "ShardedRows", "cache_features",
           "crop_to_input", "default_workers", "load_features", "normalize", "to_input"]
