"""Preprocessing: how a decoded uint8 RGB image becomes the array a network takes.

The one place for
- the presets: ``tf``, ``torch`` and ``caffe`` (Keras/PyTorch conventions, for ``flow``'s
  ``preprocess=``), ``(mean, std)`` on the 0-1 scale, and the backbones' own
  (:class:`Preprocessing`: size, crop, range, mean, std, channel order, layout; the
  ONNX-zoo convention is :data:`ZOO`);
- the one map they all reduce to, :class:`Affine` (per output channel ``x * scale +
  offset`` of the uint8 level, channels maybe reversed), with its three forms built from
  it: a lookup table (``flow``'s workers), NumPy (:func:`normalize`) and ONNX nodes (the
  backbone's in-graph prologue) - the same float32 arithmetic, so the same values;
- the one resize rule, :func:`resize` (see there), used by ``flow``'s ``size=`` and by
  the backbones' "shorter side to ``resize``, centre ``input_size``" (:func:`crop_to_input`).

NumPy, OpenCV and Pillow are imported where used: ``augkit backbones`` stays fast.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

from augkit.core.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, on the 0-1 scale
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # BGR, on the 0-255 scale
PREPROCESS_MODES = ("tf", "torch", "caffe")

# The ONNX-zoo convention: what a bare ONNX backbone gets, and what an entry leaves out.
ZOO: dict[str, Any] = {
    "input_size": 224,
    "range": [0.0, 1.0],
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    "channels": "RGB",
    "layout": "NCHW",
}
ZOO_RESIZE = 256  # "shorter side to 256, centre 224": the zoo's evaluation, for its input size
# The one resize rule (see resize), by name: meta.json records it with the preprocessing,
# so a cache made by another rule is another run.
RESAMPLE = "bilinear-antialiased"


# --- the one per-channel map ------------------------------------------------------------------


@dataclass(frozen=True)
class Affine:
    """uint8 level ``x`` of output channel ``c`` -> ``x * scale[c] + offset[c]`` in float32;
    with ``bgr`` the output channels are B, G, R (the input is always RGB)."""

    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    bgr: bool = False

    @classmethod
    def of(cls, mean, std, value_range=(0.0, 1.0), bgr: bool = False) -> Affine:
        """``(x / 255 * (hi - lo) + lo - mean) / std``, mean and std in output channel order."""
        lo, hi = value_range
        step = (hi - lo) / 255.0
        return cls(tuple(step / s for s in std), tuple((lo - m) / s for m, s in zip(mean, std)), bgr)

    def _f32(self):
        import numpy as np

        return np.array(self.scale, np.float32), np.array(self.offset, np.float32)

    @functools.cached_property
    def table(self):
        """(256, 3) float32: the output of each level per output channel, computed as the
        NumPy and ONNX forms compute it (float32 multiply, then add), so all three agree."""
        import numpy as np

        scale, offset = self._f32()
        return np.ascontiguousarray(np.arange(256, dtype=np.float32)[:, None] * scale + offset)

    def numpy(self, pixels, channels_first: bool = False):
        """uint8 (..., H, W, 3) RGB -> float32, channels last or (..., 3, H, W)."""
        import numpy as np

        if self.bgr:
            pixels = pixels[..., ::-1]
        scale, offset = self._f32()
        x = pixels.astype(np.float32) * scale + offset
        return np.ascontiguousarray(np.moveaxis(x, -1, -3) if channels_first else x)

    def write(self, image, out, channels_first: bool = False) -> None:
        """The map of one HxWx3 RGB uint8 image into ``out`` (HxWx3 or 3xHxW float32) in
        place, by lookup table: no intermediate array, so ``out`` may be shared memory."""
        import cv2
        import numpy as np

        if self.bgr:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if channels_first:
            for c in range(3):
                cv2.LUT(np.ascontiguousarray(image[..., c]), self.table[:, c], dst=out[c])
        else:
            cv2.LUT(image, self.table.reshape(256, 1, 3), dst=out)

    def onnx(self, source: str, output: str, prefix: str, channels_first: bool):
        """(nodes, initializers): uint8 NHWC ``source`` (channels already in output order)
        -> float32 ``output``. NCHW transposes the uint8 first (a quarter of the bytes of
        float), then Cast, Mul, Add broadcast per channel."""
        import numpy as np
        import onnx
        from onnx import helper, numpy_helper

        shape = (1, 3, 1, 1) if channels_first else (3,)
        scale, offset = self._f32()
        initializers = [numpy_helper.from_array(scale.reshape(shape), f"{prefix}_scale"),
                        numpy_helper.from_array(offset.reshape(shape), f"{prefix}_offset")]
        nodes = []
        if channels_first:
            nodes.append(helper.make_node("Transpose", [source], [f"{prefix}_nchw"], perm=[0, 3, 1, 2]))
            source = f"{prefix}_nchw"
        nodes += [
            helper.make_node("Cast", [source], [f"{prefix}_float"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [f"{prefix}_float", f"{prefix}_scale"], [f"{prefix}_scaled"]),
            helper.make_node("Add", [f"{prefix}_scaled", f"{prefix}_offset"], [output]),
        ]
        return nodes, initializers


def preset(mode: str) -> Affine:
    """The Keras/PyTorch convention named ``mode``: ``tf`` maps 0..255 onto -1..1, ``torch``
    is ImageNet mean/std on the 0-1 scale, ``caffe`` subtracts the BGR means from 0..255 BGR."""
    if mode == "tf":
        return Affine.of((0.5,) * 3, (0.5,) * 3)
    if mode == "torch":
        return Affine.of(IMAGENET_MEAN, IMAGENET_STD)
    if mode == "caffe":
        return Affine.of(CAFFE_MEAN_BGR, (1.0,) * 3, (0.0, 255.0), bgr=True)
    raise UsageError(f"unknown preprocess {mode!r}; use one of: {', '.join(PREPROCESS_MODES)}, or (mean, std)")


@dataclass(frozen=True)
class Preprocess:
    """``flow``'s ``preprocess=``: None keeps uint8, a preset name, or ``(mean, std)`` on
    the 0-1 scale; applied with :meth:`Affine.write`."""

    mode: str | None = None  # None = keep uint8
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # on the 0-1 scale (explicit mode)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def parse(cls, value: Any) -> Preprocess:
        if value is None or isinstance(value, Preprocess):
            return value or cls()
        if isinstance(value, str):
            preset(value)  # an unknown name: the usage error
            return cls(value)
        try:
            mean, std = value
            return cls("explicit", tuple(float(m) for m in mean), tuple(float(s) for s in std))
        except (TypeError, ValueError):
            raise UsageError(f"preprocess {value!r}: give a mode name or (mean, std) with 3 values each on the 0-1 scale") from None

    @functools.cached_property
    def affine(self) -> Affine | None:
        if self.mode is None:
            return None
        return Affine.of(self.mean, self.std) if self.mode == "explicit" else preset(self.mode)

    @property
    def dtype(self):
        import numpy as np

        return np.dtype(np.uint8 if self.mode is None else np.float32)

    @property
    def table(self):
        return self.affine.table

    def __call__(self, image, out, channels_first: bool = False) -> None:
        """Write the preprocessed HxWx3 RGB uint8 image into ``out`` (HxWx3, or 3xHxW with
        ``channels_first``) in place."""
        if self.affine is None:
            out[...] = image.transpose(2, 0, 1) if channels_first else image
        else:
            self.affine.write(image, out, channels_first)


@dataclass(frozen=True)
class Preprocessing:
    """A backbone's input: the region that resizing the shorter side to ``resize`` and
    cropping the centre ``input_size`` keeps (:func:`centre_box`), resized by
    :func:`resize` (an image already of that size is used as is), channels reordered, 0..255 mapped onto ``range``, ``(x - mean) /
    std``, in ``layout``."""

    input_size: int
    resize: int
    range: tuple[float, float]
    mean: tuple[float, float, float]  # in the model's channel order
    std: tuple[float, float, float]
    channels: str
    layout: str

    @property
    def affine(self) -> Affine:
        """The map of uint8 pixels already in the model's channel order (as
        :func:`crop_to_input` gives them), as :func:`normalize` and the cut model apply it."""
        return Affine.of(self.mean, self.std, self.range)

    def scale_offset(self) -> tuple[list[float], list[float]]:
        """Per channel, ``x * scale + offset`` equals the whole normalisation."""
        affine = self.affine
        return list(affine.scale), list(affine.offset)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["range"], data["mean"], data["std"] = list(self.range), list(self.mean), list(self.std)
        data["resample"] = RESAMPLE
        return data


# --- the one resize rule ----------------------------------------------------------------------


SIZE_FIX = "give one whole number of pixels (224) or a (height, width) pair (224, 160), each at least 1"


def parse_size(value: Any) -> tuple[int, int] | None:
    """The (H, W) every training sample is resized to, from ``size=`` (flow, stream,
    AugkitDataset, AugkitPyDataset; ``--size``, whose text the CLI splits): None, one int
    (a square) or an (H, W) pair of ints. Anything else, a float, a string, a 1-tuple, a
    size under 1, is a UsageError naming the value and the fix."""
    import numbers

    def whole(v) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1

    if value is None:
        return None
    if whole(value):
        return int(value), int(value)
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and len(value) == 2 and all(map(whole, value)):
        return int(value[0]), int(value[1])
    raise UsageError(f"size={value!r}: not a size; {SIZE_FIX}")


def resize(image, size: tuple[int, int], box: tuple[float, float, float, float] | None = None):
    """uint8 HxWx3 ``image`` (or its region ``box`` = (left, top, right, bottom), in pixels,
    fractions allowed) -> uint8 ``size`` = (H, W): Pillow's bilinear, antialiased (the
    filter widens with the shrink factor), the resize torchvision and the ONNX-zoo
    backbones' evaluations use. A whole image enlarged on both axes, where that filter does
    not widen, is resized by OpenCV's bilinear: the same samples within a grey level, and
    several times faster. Measured against the alternatives by
    ``benchmarks/resize_fidelity.py`` (figures in ``benchmarks/RESULTS.md``)."""
    import cv2
    import numpy as np

    h, w = size
    if box is not None and tuple(box) == (0, 0, image.shape[1], image.shape[0]):
        box = None  # the whole image: the same pixels whichever caller asks
    if box is None and image.shape[:2] == (h, w):
        return image
    if box is None and h >= image.shape[0] and w >= image.shape[1]:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image))
    if box is None:
        img = img.resize((w, h), Image.BILINEAR)
    else:
        # Each axis on its own, the width first, as Pillow resizes a whole image: its
        # two-axis box= resize does not always round between the passes as that does,
        # and on portrait images many pixels then move by a grey level.
        left, top, right, bottom = box
        img = img.resize((w, img.height), Image.BILINEAR, box=(left, 0, right, img.height))
        img = img.resize((w, h), Image.BILINEAR, box=(0, top, w, bottom))
    out = np.asarray(img)
    return out if out.flags.writeable else out.copy()


def centre_box(height: int, width: int, prep: Preprocessing) -> tuple[float, float, float, float]:
    """The region of an image that "shorter side to ``resize``, centre ``input_size``"
    keeps, exactly as torchvision's ``Resize(resize)`` and ``CenterCrop(input_size)`` frame
    it (the longer side ``int(resize * longer / shorter)``, the crop's corner rounded)."""
    size, shorter = prep.input_size, prep.resize
    if height <= width:
        new_h, new_w = shorter, int(shorter * width / height)
    else:
        new_h, new_w = int(shorter * height / width), shorter
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    sx, sy = width / new_w, height / new_h
    return (left * sx, top * sy, (left + size) * sx, (top + size) * sy)


def crop_to_input(image, prep: Preprocessing):
    """RGB uint8 (H, W, 3) -> uint8 (S, S, 3) in the backbone's channel order: the region
    "shorter side to ``resize``, centre ``input_size``" keeps, resized, as ``prep`` says."""
    import cv2
    import numpy as np

    size = prep.input_size
    h, w = image.shape[:2]
    if (h, w) != (size, size):
        image = resize(image, (size, size), centre_box(h, w, prep))
    if prep.channels == "BGR":
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image)


def normalize(pixels, prep: Preprocessing):
    """uint8 (..., S, S, 3) from :func:`crop_to_input` (channels already in the model's
    order) -> the float32 input in the backbone's layout. The cut model does the same
    in-graph (:func:`augkit.stages.backbones.feature_model` with ``pixels=True``)."""
    return prep.affine.numpy(pixels, channels_first=prep.layout == "NCHW")


def to_input(image, prep: Preprocessing):
    """RGB uint8 (H, W, 3) -> the network's float32 input for one image ((3, S, S) for
    NCHW), exactly as ``prep`` says."""
    return normalize(crop_to_input(image, prep), prep)
