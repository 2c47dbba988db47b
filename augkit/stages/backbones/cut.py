"""The graph cut: a backbone's ONNX graph cut at its pooled-feature tensor, found by the
entry's rule (``last_global_pool``: the last global average pool, spatial mean or 1x1
average pool; ``classifier_input``: what the classifier's Gemm/MatMul reads) or named by
``--feature-node``, with ``onnx``; ONNX Runtime runs the result. With ``pixels=True`` the
cut model takes uint8 images and normalises them itself, by
:meth:`augkit.stages.preprocess.Affine.onnx`.

Nothing here imports onnx or NumPy at module level: ``augkit backbones`` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from augkit.core.errors import AugkitError, UsageError
from augkit.core.words import close_matches
from augkit.stages.preprocess import Preprocessing

if TYPE_CHECKING:
    from augkit.stages.backbones.registry import Backbone


@dataclass(frozen=True)
class FeatureModel:
    """The backbone cut at its pooled features, ready for ``onnxruntime.InferenceSession``."""

    model_bytes: bytes
    input_name: str
    output_name: str  # the pooled tensor; the runtime flattens it to (N, feature_dim)
    feature_dim: int | None  # None when the graph does not say (checked on the first batch)
    fixed_batch: int | None  # the batch size the file declared (the cut frees it), else None


PIXELS = "augkit_pixels"  # the uint8 input of a model cut with pixels=True
_PASS_THROUGH = {"Flatten", "Reshape", "Squeeze", "Dropout", "Identity", "Transpose"}
_SPATIAL_AXES = ({2, 3}, {1, 2})


def feature_model(path: str | os.PathLike, backbone: Backbone, *, pixels: bool = False) -> FeatureModel:
    """Load the ONNX file and cut it at the pooled-feature tensor (the entry's rule, or
    ``feature_node``). Raises AugkitError naming ``--feature-node`` when nothing matches.

    With ``pixels``, the model takes uint8 images (N, S, S, 3) in the backbone's channel
    order and does the normalisation (``x * scale + offset``, the layout) itself: the
    workers then ship a quarter of the bytes, and ONNX Runtime normalises a whole batch in
    a fraction of what NumPy takes per image."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise AugkitError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes only help; the cut works without them
        inferred = model
    graph = model.graph
    shapes = _shapes(inferred.graph)
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise AugkitError(f"{path}: the graph has {len(inputs)} inputs; a backbone takes one image tensor")
    if backbone.feature_node:
        output = _named_tensor(graph, backbone.feature_node, path)
    else:
        output = _find_pooled(graph, shapes, backbone.pooled, initializers)
        if output is None:
            tail = ", ".join(f"{n.output[0]} ({n.op_type})" for n in list(graph.node)[-4:] if n.output)
            raise AugkitError(f"{path}: no pooled-feature tensor found by the rule {backbone.pooled!r}; name it with "
                              f"--feature-node NAME (the graph ends with: {tail})")
    feature_dim = _flat_dim(shapes.get(output))
    if backbone.feature_dim and feature_dim and feature_dim != backbone.feature_dim:
        raise AugkitError(f"{path}: the pooled tensor {output!r} has {feature_dim} values per image, the backbone entry "
                          f"says {backbone.feature_dim}: wrong weights for {backbone.name!r}? Or name the tensor with --feature-node NAME")
    image = inputs[0]
    _check_input(image, backbone.preprocessing, path)
    fixed = _fixed_batch(image)
    cut = _cut(model, image, output, inferred.graph, backbone.preprocessing if pixels else None)
    return FeatureModel(cut.SerializeToString(), PIXELS if pixels else image.name, output, feature_dim, fixed)


def _check_input(image, prep: Preprocessing, path) -> None:
    """The file's declared input against the preprocessing: a clear error before any run."""
    dims = [d.dim_value if d.HasField("dim_value") else None for d in image.type.tensor_type.shape.dim]
    if len(dims) != 4:
        return
    channels, height, width = (dims[1], dims[2], dims[3]) if prep.layout == "NCHW" else (dims[3], dims[1], dims[2])
    if channels not in (None, 3):
        other = "NHWC" if prep.layout == "NCHW" else "NCHW"
        raise UsageError(f"{path}: the input is {dims[1:]} per image, not 3-channel {prep.layout}; pass --layout {other}?")
    if (height, width) != (None, None) and (height, width) != (prep.input_size, prep.input_size):
        raise UsageError(f"{path}: the model takes {height}x{width} images, the preprocessing makes "
                         f"{prep.input_size}x{prep.input_size}; pass --input-size {height or width}")


def _shapes(graph) -> dict[str, list]:
    out = {}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            out[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
    return out


def _flat_dim(shape: list | None) -> int | None:
    if not shape or any(d is None for d in shape[1:]):
        return None
    dim = 1
    for d in shape[1:]:
        dim *= d
    return dim


def _fixed_batch(image) -> int | None:
    dims = image.type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None


def _named_tensor(graph, name: str, path) -> str:
    tensors = {o for n in graph.node for o in n.output}
    if name in tensors:
        return name
    by_node = {n.name: n.output[0] for n in graph.node if n.name and n.output}
    if name in by_node:
        return by_node[name]
    hint = close_matches(name, tensors | set(by_node))
    fix = f"did you mean {' or '.join(hint)}?" if hint else "list them with a viewer such as Netron"
    raise UsageError(f"{path}: --feature-node {name!r} is not a tensor or node of the graph; {fix}")


def _constant_ints(graph, name: str) -> list[int] | None:
    from onnx import numpy_helper

    for t in graph.initializer:
        if t.name == name:
            return [int(v) for v in numpy_helper.to_array(t).ravel()]
    for n in graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] == name:
            for a in n.attribute:
                if a.name == "value":
                    return [int(v) for v in numpy_helper.to_array(a.t).ravel()]
                if a.name == "value_ints":
                    return list(a.ints)
    return None


def _is_global_pool(node, graph, shapes) -> bool:
    if node.op_type == "GlobalAveragePool":
        return True
    if node.op_type == "ReduceMean":
        axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = _constant_ints(graph, node.input[1])
        rank = len(shapes.get(node.input[0]) or []) or 4
        return axes is not None and rank == 4 and {a % rank for a in axes} in _SPATIAL_AXES
    if node.op_type == "AveragePool":
        shape = shapes.get(node.output[0])
        return bool(shape) and len(shape) == 4 and shape[2] == 1 and shape[3] == 1
    return False


def _find_pooled(graph, shapes, rule: str, initializers: set[str]) -> str | None:
    nodes = list(graph.node)  # ONNX requires topological order: the last match is the deepest
    if rule == "last_global_pool":
        return next((n.output[0] for n in reversed(nodes) if _is_global_pool(n, graph, shapes)), None)
    producers = {o: n for n in nodes for o in n.output}
    for node in reversed(nodes):
        if node.op_type in ("Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in initializers:
            tensor = node.input[0]
            while tensor in producers and producers[tensor].op_type in _PASS_THROUGH:
                tensor = producers[tensor].input[0]
            return tensor
    return None


def _cut(model, image, output: str, inferred_graph, pixels: Preprocessing | None = None):
    """A model holding only what ``output`` needs, with a free batch dimension; with
    ``pixels``, preceded by the normalisation from uint8 NHWC pixels."""
    import onnx
    from onnx import helper

    graph = model.graph
    nodes, needed = _needed(graph, output)
    initializers = [t for t in graph.initializer if t.name in needed]
    if pixels is None:
        new_input = onnx.ValueInfoProto()
        new_input.CopyFrom(image)
        dims = new_input.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    else:
        size = pixels.input_size
        new_input = helper.make_tensor_value_info(PIXELS, onnx.TensorProto.UINT8, ["batch", size, size, 3])
        prologue, constants = pixels.affine.onnx(PIXELS, image.name, PIXELS, channels_first=pixels.layout == "NCHW")
        nodes[:0] = prologue
        initializers += constants
    elem = next((i.type.tensor_type.elem_type for i in [*inferred_graph.value_info, *inferred_graph.output]
                 if i.name == output), onnx.TensorProto.FLOAT)
    cut_graph = helper.make_graph(
        nodes, f"{graph.name or 'backbone'}_features", [new_input],
        [helper.make_tensor_value_info(output, elem, None)], initializer=initializers,
    )
    cut = helper.make_model(cut_graph, opset_imports=list(model.opset_import), producer_name="augkit")
    cut.ir_version = max(model.ir_version, 4)  # IR 4+: initializers need not be listed as inputs
    return cut


def _needed(graph, output: str) -> tuple[list, set[str]]:
    """The nodes ``output`` depends on, in the graph's (topological) order, and the names
    they read (a subgraph's reads from outside included: If, Loop)."""
    import onnx

    needed, kept = {output}, []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
            for attr in node.attribute:
                for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                    needed.update(i for n in sub.node for i in n.input if i)
    return list(reversed(kept)), needed
