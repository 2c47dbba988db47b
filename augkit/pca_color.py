"""``PCAColor``: the PCA colour augmentation of the AlexNet paper (Krizhevsky et al. 2012, 4.1).

Every pixel gets the same RGB offset ``eigvecs @ (alpha * eigvals)`` with
``alpha ~ N(0, sigma)`` per component, where ``eigvals``/``eigvecs`` are the eigen
decomposition of the 3x3 covariance of RGB pixel values.

Scale convention: eigenvalues are variances of pixel values on the 0-1 scale, so the
offset is on the 0-1 scale and is multiplied by 255 for uint8 images. The published
ImageNet constants (fb.resnet.torch and most AlexNet re-implementations, applied to
images in [0, 1]) follow it, as do ``augkit stats`` and albumentations' ``FancyPCA``
(which decomposes the image's own 0-1 covariance), so one ``sigma`` gives offsets of
comparable size whatever the ``source``.

The offset is added through a per-channel lookup table (``cv2.LUT``): the image stays
uint8, with saturation at 0 and 255, and no float copy of it is made.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from augkit._albu import albumentations

A = albumentations()
from albumentations.core.transforms_interface import BaseTransformInitSchema  # noqa: E402

# fb.resnet.torch / AlexNet re-implementations; eigenvector i is column i.
IMAGENET_EIGVALS = np.array([0.2175, 0.0188, 0.0045])
IMAGENET_EIGVECS = np.array(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)


def load_dataset_pca(stats_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(eigvals, eigvecs as columns) from a ``stats.json`` written by ``augkit stats``."""
    try:
        with open(stats_path, encoding="utf-8") as f:
            pca = json.load(f)["pca"]
        eigvals = np.asarray(pca["eigenvalues"], dtype=np.float64)
        eigvecs = np.asarray(pca["eigenvectors"], dtype=np.float64).T
    except FileNotFoundError:
        raise ValueError(f"stats file {stats_path} not found; write it with `augkit stats SRC -o {stats_path}`") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{stats_path} has no usable 'pca' section ({exc}); rewrite it with `augkit stats`") from None
    if eigvals.shape != (3,) or eigvecs.shape != (3, 3):
        raise ValueError(f"{stats_path}: 'pca' must hold 3 eigenvalues and 3 eigenvectors of length 3")
    return eigvals, eigvecs


def image_pca(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen decomposition of the image's own RGB covariance on the 0-1 scale, descending."""
    pixels = image.reshape(-1, 3)
    # Sums of products in float64 from a float32 view-sized copy; the 3x3 result is exact
    # to float32 rounding of the inputs (uint8 values are exact in float32).
    x = pixels.astype(np.float32)
    n = x.shape[0]
    mean = x.mean(axis=0, dtype=np.float64)
    gram = (x.T @ x).astype(np.float64) / n
    cov = (gram - np.outer(mean, mean)) / (255.0 * 255.0)
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = eigvals.argsort()[::-1]
    return np.clip(eigvals[order], 0.0, None), eigvecs[:, order]


def rgb_offset(eigvals: np.ndarray, eigvecs: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The AlexNet offset on the 0-1 scale: ``eigvecs @ (alpha * eigvals)``."""
    return eigvecs @ (alpha * eigvals)


def add_offset_uint8(image: np.ndarray, offset_255: np.ndarray) -> np.ndarray:
    """image + offset per channel, rounded and saturated, via a lookup table (no float copy)."""
    levels = np.arange(256, dtype=np.float64)[:, None] + offset_255[None, :]
    lut = np.clip(np.rint(levels), 0, 255).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(image, lut)


class PCAColor(A.ImageOnlyTransform):
    """AlexNet-style PCA colour augmentation on RGB uint8 images.

    Args:
        sigma: standard deviation of the per-component weights alpha (AlexNet: 0.1).
        source: where the eigen decomposition comes from: ``imagenet`` (published
            constants), ``dataset`` (a ``stats.json`` from ``augkit stats``, see ``stats``),
            or ``image`` (each image's own pixels, like albumentations' FancyPCA).
        stats: path to the ``stats.json`` for ``source: dataset``.
        p: probability of applying the transform.
    """

    class InitSchema(BaseTransformInitSchema):
        sigma: float = Field(ge=0)
        source: Literal["imagenet", "dataset", "image"]
        stats: str | None

        @model_validator(mode="after")
        def _stats_with_dataset(self) -> PCAColor.InitSchema:
            if self.source == "dataset" and not self.stats:
                raise ValueError("source 'dataset' needs stats: path/to/stats.json (from `augkit stats`)")
            if self.source != "dataset" and self.stats:
                raise ValueError(f"stats is only used with source: dataset (source is {self.source!r})")
            return self

    def __init__(
        self,
        sigma: float = 0.1,
        source: Literal["imagenet", "dataset", "image"] = "imagenet",
        stats: str | None = None,
        p: float = 0.5,
    ):
        super().__init__(p=p)
        self.sigma = sigma
        self.source = source
        self.stats = stats
        if source == "imagenet":
            self._eig = (IMAGENET_EIGVALS, IMAGENET_EIGVECS)
        elif source == "dataset":
            self._eig = load_dataset_pca(stats)
        else:
            self._eig = None

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        alpha = self.random_generator.normal(0.0, self.sigma, 3)
        return {"alpha": alpha}

    def apply(self, img: np.ndarray, alpha: np.ndarray, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(f"PCAColor needs an RGB uint8 image, got {img.dtype} {img.shape}")
        eigvals, eigvecs = self._eig if self._eig is not None else image_pca(img)
        return add_offset_uint8(img, rgb_offset(eigvals, eigvecs, alpha) * 255.0)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma", "source", "stats")
