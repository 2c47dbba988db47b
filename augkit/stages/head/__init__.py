"""Transfer learning's last steps: a linear softmax head trained on a feature cache, and
the one deployable classifier (backbone + head + softmax, preprocessing inside).

Modules: :mod:`.data` (caches checked before they are trusted, validation held out by
image, rows read chunk by chunk), :mod:`.solver` (multinomial logistic regression with
L2, scikit-learn's objective and L-BFGS settings, over chunks), :mod:`.metrics`
(accuracy, precision/recall, confusion matrix and its picture), :mod:`.export`
(``model.onnx``) and :mod:`.run` (:func:`train_head`, which writes HEAD).

What a user can rely on:
- Views of one image never straddle training and validation.
- The same cache, options and seed give the same head (L-BFGS is deterministic).
- ``HEAD/model.onnx`` takes uint8 RGB images at the backbone's input size and gives the
  probabilities the head gives on the cached features of the same images.
- Memory holds the rows only when they fit (a quarter of the memory available, by
  default); otherwise every pass reads them from the memory-mapped shards.
"""

from augkit.stages.head.run import HeadOptions, HeadSummary, train_head

__all__ = ["HeadOptions", "HeadSummary", "train_head"]
