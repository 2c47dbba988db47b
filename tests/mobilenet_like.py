"""ONNX models with MobileNet v2's structure and random weights, built in code.

No model file can be downloaded on development or CI machines, so the tests (and the
benchmark) build the graph the ONNX zoo's ``mobilenetv2-12.onnx`` has: a strided 3x3
stem, inverted residual blocks (1x1 expansion, ReLU6 as Clip, 3x3 depthwise, ReLU6,
linear 1x1 projection, a residual Add when shapes allow), a 1x1 conv to the feature
width, ReLU6, GlobalAveragePool, Flatten and a Gemm classifier. ``full()`` is MobileNet v2
1.0 at 224x224 (~300 M multiply-adds per image, 1280 pooled features); ``tiny()`` keeps
the structure at a size that runs in milliseconds.

Tensor names: input ``input``, last feature map ``last_feature_map``, pooled ``pooled``,
class scores ``output``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (expansion t, output channels c, repeats n, first stride s), MobileNet v2 1.0's table.
FULL_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
TINY_BLOCKS = [(1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 1, 2)]


def build(*, input_size: int = 224, stem: int = 32, blocks=FULL_BLOCKS, last_channels: int = 1280,
          classes: int = 1000, seed: int = 0, batch: int | str = "N", opset: int = 13) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes: list = []
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
             numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max")]
    counter = iter(range(10_000))

    def conv(x: str, cin: int, cout: int, k: int, stride: int, groups: int = 1, relu6: bool = True,
             gain: float = 2.0, out: str | None = None) -> str:
        i = next(counter)
        fan_in = cin // groups * k * k
        w = rng.normal(0, np.sqrt(gain / fan_in), (cout, cin // groups, k, k)).astype(np.float32)
        b = rng.normal(0, 0.01, cout).astype(np.float32)  # batch norm folded in, as in the zoo file
        inits.extend([numpy_helper.from_array(w, f"conv{i}_w"), numpy_helper.from_array(b, f"conv{i}_b")])
        y = f"conv{i}" if relu6 or out is None else out
        nodes.append(helper.make_node("Conv", [x, f"conv{i}_w", f"conv{i}_b"], [y], name=f"conv{i}", kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        if not relu6:
            return y
        z = out or f"relu{i}"
        nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [z], name=f"relu6_{i}"))
        return z

    x = conv("input", 3, stem, 3, 2)
    channels = stem
    for b, (t, c, n, s) in enumerate(blocks):
        for r in range(n):
            stride = s if r == 0 else 1
            hidden = channels * t
            y = conv(x, channels, hidden, 1, 1) if t != 1 else x
            y = conv(y, hidden, hidden, 3, stride, groups=hidden)
            y = conv(y, hidden, c, 1, 1, relu6=False, gain=1.0)
            if stride == 1 and channels == c:
                added = f"block{b}_{r}_add"
                nodes.append(helper.make_node("Add", [x, y], [added], name=added))
                y = added
            x, channels = y, c
    x = conv(x, channels, last_channels, 1, 1, out="last_feature_map")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1))
    w = rng.normal(0, np.sqrt(1.0 / last_channels), (classes, last_channels)).astype(np.float32)
    inits.extend([numpy_helper.from_array(w, "fc_w"), numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b")])
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"], name="classifier", transB=1))
    graph = helper.make_graph(
        nodes, "mobilenet_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, input_size, input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="augkit-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def full(seed: int = 0, input_size: int = 224) -> onnx.ModelProto:
    """MobileNet v2 1.0: 1280 pooled features, ~300 M multiply-adds at 224x224."""
    return build(input_size=input_size, seed=seed)


def tiny(seed: int = 0, input_size: int = 64, last_channels: int = 48, **kw) -> onnx.ModelProto:
    """The same structure, a few thousand times cheaper: 48 pooled features at 64x64."""
    return build(input_size=input_size, stem=8, blocks=TINY_BLOCKS, last_channels=last_channels, classes=10,
                 seed=seed, **kw)


def save(model: onnx.ModelProto, path) -> bytes:
    data = model.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    return data


def with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """A copy whose graph also outputs the tensor ``name`` (to compare against the cut)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return copy
