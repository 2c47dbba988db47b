"""A trained classifier in Python: ``augkit.Classifier(HEAD)`` loads ``HEAD/model.onnx``
(or a ``model.onnx`` file), and ``.predict(image_or_path)`` gives class names and
probabilities, reading a file with augkit's decoder and framing it with the backbone's
crop rule (:func:`augkit.stages.preprocess.crop_to_input`), as ``cache-features`` framed
the images the head learnt from. The model does the rest (normalisation, backbone, head,
softmax) in ONNX Runtime.

:func:`read_model` is the one reader of such a file, for ``predict`` too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.stages.decode_size import features_hint
from augkit.stages.head.export import CLASSES_KEY, INFO_KEY, INPUT, OUTPUT, PREPROCESSING_KEY, preprocessing_of
from augkit.stages.preprocess import Preprocessing

MODEL = "model.onnx"


@dataclass(frozen=True)
class ClassifierModel:
    """model.onnx as :func:`~augkit.stages.features.inference.make_session` runs it (the
    fields of a FeatureModel), with what its metadata says."""

    model_bytes: bytes
    classes: tuple[str, ...]
    preprocessing: Preprocessing  # channels RGB: the model reorders them itself
    info: dict[str, Any]
    path: str
    input_name: str = INPUT
    output_name: str = OUTPUT
    fixed_batch: int | None = None

    @property
    def feature_dim(self) -> int:  # what the runner checks each batch's output against
        return len(self.classes)


def model_path(path: str | os.PathLike) -> Path:
    """HEAD's model.onnx, or the file itself; a HEAD a run left half-written is refused."""
    path = Path(path)
    if path.is_dir():
        record = path / "head.json"
        if record.is_file() and not json.loads(record.read_text(encoding="utf-8") or "{}").get("complete"):
            raise UsageError(f"{path}: incomplete (a train-head run stopped half-way, or is running); rerun it")
        path = path / MODEL
    if not path.is_file():
        raise UsageError(f"{path}: not found; pass a HEAD folder `augkit train-head` wrote, or its {MODEL}")
    return path


def read_model(path: str | os.PathLike) -> ClassifierModel:
    """The classifier in a HEAD folder or model.onnx file, with its class names and preprocessing."""
    import onnx

    file = model_path(path)
    data = file.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's errors
        raise UsageError(f"{file}: not a readable ONNX model ({type(exc).__name__}); pass a HEAD folder") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if CLASSES_KEY not in meta or PREPROCESSING_KEY not in meta:
        raise UsageError(f"{file}: not a classifier augkit train-head wrote (no {CLASSES_KEY} metadata); make one "
                         f"with `augkit train-head`")
    prep = dataclasses.replace(preprocessing_of(json.loads(meta[PREPROCESSING_KEY])), channels="RGB")
    return ClassifierModel(data, tuple(json.loads(meta[CLASSES_KEY])), prep,
                           json.loads(meta.get(INFO_KEY, "{}")), str(file))


@dataclass(frozen=True)
class Prediction:
    """One image's result: the best class and its probability, the ``top`` classes with
    theirs (best first), and every class's probability."""

    label: str
    probability: float
    top: list[tuple[str, float]]
    probabilities: dict[str, float]


class Classifier:
    """``Classifier(path)``: a HEAD folder (or its model.onnx). ``device``/``providers``
    choose ONNX Runtime's execution provider (:mod:`augkit.stages.providers`);
    ``threads``: ONNX Runtime's intra-op threads (default: one per core).
    ``reduced_decode``: a large JPEG read from a path is decoded at 1/2-1/8 where the crop
    rule still gets its full resolution, as ``augkit predict`` and ``cache-features`` decode
    it (:mod:`augkit.stages.decode_size`), so the three give the same probabilities; False
    decodes every file whole (``--exact-decode``)."""

    def __init__(self, path: str | os.PathLike, *, device: str | None = None, providers=None,
                 threads: int | None = None, top_k: int = 5, reduced_decode: bool = True):
        from augkit.engines.local import default_workers as cores
        from augkit.stages.features.inference import make_session
        from augkit.stages.providers import resolve_providers

        self.model = read_model(path)
        self.classes = list(self.model.classes)
        self.preprocessing = self.model.preprocessing
        self.input_size = self.preprocessing.input_size
        self.top_k = top_k
        self.size_hint = features_hint(None, self.preprocessing, 1, False, reduced_decode)
        self.session = make_session(self.model, threads or cores(), resolve_providers(device, providers))

    def prepare(self, image_or_path):
        """uint8 (S, S, 3) RGB: a path decoded by augkit's decoder (reduced as ``predict``
        decodes it, unless ``reduced_decode=False``), an RGB uint8 array as it is; then the
        backbone's crop rule."""
        import numpy as np

        from augkit.input.decoding import decode_image
        from augkit.stages.preprocess import crop_to_input

        if isinstance(image_or_path, (str, os.PathLike)):
            image = decode_image(image_or_path, size_hint=self.size_hint)
        else:
            image = np.asarray(image_or_path)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise UsageError(f"an image is an RGB uint8 array (H, W, 3), not {image.dtype} {image.shape}")
        return crop_to_input(image, self.preprocessing)

    def probabilities(self, batch):
        """(N, classes) float32 for uint8 (N, S, S, 3) RGB images already at the input size."""
        return self.session.run([OUTPUT], {INPUT: batch})[0]

    def predict(self, image_or_path, top_k: int | None = None, batch_size: int = 16):
        """A :class:`Prediction` for one image (a path or an RGB uint8 array), or a list of
        them for a list of images."""
        import numpy as np

        many = isinstance(image_or_path, (list, tuple))
        items = list(image_or_path) if many else [image_or_path]
        k = min(top_k or self.top_k, len(self.classes))
        out = []
        for start in range(0, len(items), batch_size):
            batch = np.stack([self.prepare(item) for item in items[start:start + batch_size]])
            out += [self._prediction(p, k) for p in self.probabilities(batch)]
        return out if many else out[0]

    def _prediction(self, p, k: int) -> Prediction:
        import numpy as np

        order = np.argsort(-p, kind="stable")[:k]
        top = [(self.classes[i], float(p[i])) for i in order]
        return Prediction(top[0][0], top[0][1], top, {c: float(v) for c, v in zip(self.classes, p)})

    def __repr__(self) -> str:
        return f"Classifier({self.model.path!r}, classes={len(self.classes)}, input_size={self.input_size})"
