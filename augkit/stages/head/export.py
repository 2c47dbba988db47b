"""The deployable classifier: the backbone cut at its pooled features, the trained head
and a softmax, joined into one ONNX graph with the preprocessing inside.

Input ``image``: uint8 (N, S, S, 3) RGB at the backbone's input size. Output
``probabilities``: float32 (N, classes). In between, the backbone's own normalisation
(channel order, range, mean/std, layout; :meth:`augkit.stages.preprocess.Affine.onnx`),
the backbone, the pooled features rounded to the cache's dtype (the head learnt from
float16 features when the cache held float16: the model gives it the same), then
``Gemm`` and ``Softmax``. The model's metadata (``custom_metadata_map`` in ONNX Runtime)
holds the class names and the preprocessing as JSON, so the file alone is a classifier.

The backbone file is the one the cache was made with, found again by its sha256
(:func:`backbone_file`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.stages.backbones.weights import file_sha256
from augkit.stages.preprocess import Preprocessing

INPUT = "image"
OUTPUT = "probabilities"
FEATURES = "augkit_features"
# Metadata keys of model.onnx (JSON values).
CLASSES_KEY = "augkit.classes"
PREPROCESSING_KEY = "augkit.preprocessing"
INFO_KEY = "augkit.head"


def preprocessing_of(meta: dict[str, Any]) -> Preprocessing:
    """The :class:`Preprocessing` a cache's ``meta.json`` (or a model's metadata) records."""
    p = meta["preprocessing"] if "preprocessing" in meta else meta
    return Preprocessing(int(p["input_size"]), int(p["resize"]), tuple(p["range"]), tuple(p["mean"]), tuple(p["std"]),
                         str(p["channels"]), str(p["layout"]))


def backbone_file(meta: dict[str, Any], cache: Path, weights=None, mirror: str | None = None,
                  progress: bool = False) -> Path:
    """The ONNX file the cache's features came from (its sha256 is the cache's): ``weights``
    when given, else where cache-features found it, else the registry's download."""
    from augkit.stages.backbones import registry, resolve_backbone, weights_file

    sha = meta["weights_sha256"]
    candidates = [weights] if weights is not None else [meta.get("weights_file"), meta.get("weights_url"),
                                                         meta.get("backbone_source")]
    for candidate in candidates:
        if candidate and "://" not in str(candidate) and Path(candidate).is_file() and file_sha256(candidate) == sha:
            return Path(candidate)
    name = meta.get("backbone")
    if weights is None and meta.get("backbone_source") == "registry" and name in registry():
        entry = resolve_backbone(name)
        if entry.sha256 == sha:  # the registry's own file: the cached copy, or a download
            return weights_file(entry, mirror=mirror, progress=progress)[0]
    if weights is not None:
        raise UsageError(f"--weights {weights}: not the backbone {cache} was made with (sha256 {sha[:12]}...); pass "
                         f"that file")
    raise UsageError(f"{cache}: the backbone it was made with ({name}, sha256 {sha[:12]}...) is not found here; "
                     f"pass its .onnx file with --weights PATH")


def classifier_model(backbone_path: Path, meta: dict[str, Any], weight, bias, classes: list[str],
                     info: dict[str, Any]) -> bytes:
    """model.onnx's bytes: uint8 RGB images in, class probabilities out."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from augkit.stages.backbones import PIXELS, Backbone, feature_model

    prep = preprocessing_of(meta)
    backbone = Backbone(name=str(meta.get("backbone")), source=str(backbone_path), preprocessing=prep,
                        pooled="last_global_pool", feature_node=meta["feature_node"],
                        feature_dim=int(meta["feature_dim"]))
    cut = onnx.load_from_string(feature_model(backbone_path, backbone, pixels=True).model_bytes)
    graph = cut.graph
    size = prep.input_size
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["batch", size, size, 3]))
    head = []
    if prep.channels == "BGR":  # the cut takes the backbone's channel order; the model takes RGB
        graph.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "augkit_bgr"))
        head.append(helper.make_node("Gather", [INPUT, "augkit_bgr"], [PIXELS], axis=3))
    else:
        head.append(helper.make_node("Identity", [INPUT], [PIXELS]))
    pooled = graph.output[0].name
    tail = [helper.make_node("Flatten", [pooled], [FEATURES + "_flat"], axis=1)]
    flat = FEATURES + "_flat"
    if meta.get("dtype") == "float16":  # as the cache stored them
        tail += [helper.make_node("Cast", [flat], [FEATURES + "_half"], to=TensorProto.FLOAT16),
                 helper.make_node("Cast", [FEATURES + "_half"], [FEATURES], to=TensorProto.FLOAT)]
    else:
        tail.append(helper.make_node("Identity", [flat], [FEATURES]))
    graph.initializer.extend([numpy_helper.from_array(np.asarray(weight, np.float32), "augkit_head_weight"),
                              numpy_helper.from_array(np.asarray(bias, np.float32), "augkit_head_bias")])
    tail += [helper.make_node("Gemm", [FEATURES, "augkit_head_weight", "augkit_head_bias"], ["augkit_logits"], transB=1),
             helper.make_node("Softmax", ["augkit_logits"], [OUTPUT], axis=1)]
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", len(classes)]))
    graph.name = "augkit_classifier"
    metadata = {CLASSES_KEY: json.dumps(classes), PREPROCESSING_KEY: json.dumps(prep.as_dict()),
                INFO_KEY: json.dumps(info)}
    del cut.metadata_props[:]
    for key, value in metadata.items():
        cut.metadata_props.add(key=key, value=value)
    cut.doc_string = (f"augkit classifier: {INPUT} uint8 (N, {size}, {size}, 3) RGB -> {OUTPUT} float32 "
                      f"(N, {len(classes)}); class names in metadata {CLASSES_KEY!r}")
    onnx.checker.check_model(cut)
    return cut.SerializeToString()
