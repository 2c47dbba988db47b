"""``PCAColor``: the PCA colour augmentation of the AlexNet paper (Krizhevsky et al. 2012, 4.1).

Every pixel gets the same RGB offset ``eigvecs @ (alpha * eigvals)`` with
``alpha ~ N(0, sigma)`` per component, where ``eigvals``/``eigvecs`` are the eigen
decomposition of the 3x3 covariance of RGB pixel values.

Scale convention: eigenvalues are *variances of pixel values on the 0-1 scale*, so the
offset is on the 0-1 scale and is multiplied by 255 for uint8 images. The formula is not
scale-free (an eigenvalue is a squared pixel unit), so the scale must be fixed for
``sigma`` to mean anything; all three sources use this one:

- ``imagenet``: the published constants (fb.resnet.torch's ``Lighting``, applied to
  images in [0, 1]; the 0-255 ports such as GluonCV's write them x255: 55.46, 4.794,
  1.148, and add the result to 0-255 pixels, which is the same offset). They are 0-1
  variances: ``eigvecs @ diag(eigvals) @ eigvecs.T`` gives channel standard deviations
  0.284, 0.276, 0.290, within 1.1 % of ImageNet's standard deviation over all pixels
  (0.2806, 0.2736, 0.2877, measured in pytorch/vision#1439), and the eigenvalues sum to
  0.2408 against that total variance of 0.2364. (Read as standard deviations they would
  give 0.12-0.13 per channel; the x255 values read as 0-255 variances, 0.018.)
- ``dataset``: ``augkit stats`` writes the eigen decomposition of the 0-1 covariance.
- ``image``: the image's own 0-1 covariance, computed from exact integer sums.

So one ``sigma`` gives offsets of comparable size in every mode: the RMS offset per
channel is ``255 * sigma * sqrt(sum(eigvals**2) / 3)`` levels, 3.2 for ImageNet at
``sigma=0.1`` (see the README for the other modes on ``sample_data``). albumentations'
``FancyPCA`` also decomposes the image's 0-1 covariance, but scales each pixel's own
deviation from the mean instead of adding one offset, so its changes are far smaller.

Speed: the offset is rounded to whole levels and added with OpenCV's saturating uint8
add/subtract; the ``image`` mode's covariance comes from exact integer reductions
(:func:`augkit.core.rgb_pca.pixel_moments`). No float copy of the image is ever made.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from augkit.core._albu import albumentations
from augkit.core.rgb_pca import covariance, pixel_moments, principal_components
from augkit.recipes.source import FileRefused, read_regular_file

A = albumentations()
from albumentations.core.transforms_interface import BaseTransformInitSchema  # noqa: E402

MAX_STATS_BYTES = 16 << 20  # `augkit stats` writes a few KB

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
    """(eigvals, eigvecs as columns) from a ``stats.json`` written by ``augkit stats``.

    Every problem is a one-line ValueError naming the file: missing, not a regular file
    (a folder; a named pipe, which would block), over MAX_STATS_BYTES, not JSON, no
    usable ``pca`` section, or numbers that are not finite."""
    try:
        text = read_regular_file(stats_path, MAX_STATS_BYTES).decode("utf-8")
        pca = json.loads(text)["pca"]
        eigvals = np.asarray(pca["eigenvalues"], dtype=np.float64)
        eigvecs = np.asarray(pca["eigenvectors"], dtype=np.float64).T
    except FileNotFoundError:
        raise ValueError(f"stats file {stats_path} not found; write it with `augkit stats SRC -o {stats_path}`") from None
    except FileRefused as exc:
        raise ValueError(f"stats file {stats_path} {exc}; give the stats.json `augkit stats` wrote") from None
    except OSError as exc:
        raise ValueError(f"stats file {stats_path}: cannot read it: {exc.strerror or exc}") from None
    except (KeyError, TypeError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ValueError(f"{stats_path} has no usable 'pca' section ({reason}); rewrite it with `augkit stats`") from None
    if eigvals.shape != (3,) or eigvecs.shape != (3, 3):
        raise ValueError(f"{stats_path}: 'pca' must hold 3 eigenvalues and 3 eigenvectors of length 3")
    if not (np.isfinite(eigvals).all() and np.isfinite(eigvecs).all()) or (eigvals < 0).any():
        raise ValueError(f"{stats_path}: 'pca' eigenvalues must be finite and not negative, and eigenvectors finite; "
                         f"rewrite it with `augkit stats`")
    return eigvals, eigvecs


def image_pca(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen decomposition of the image's own RGB covariance on the 0-1 scale, descending
    (eigenvectors as columns), from exact integer sums: no float copy of the image."""
    return principal_components(covariance(pixel_moments(image)))


def rgb_offset(eigvals: np.ndarray, eigvecs: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The AlexNet offset on the 0-1 scale: ``eigvecs @ (alpha * eigvals)``."""
    return eigvecs @ (alpha * eigvals)


def add_offset_uint8(image: np.ndarray, offset_255: np.ndarray) -> np.ndarray:
    """clip(image + rint(offset), 0, 255) per channel, as a new uint8 image.

    Equal to rounding ``image + offset`` (the image is whole numbers), but done as one
    saturating uint8 add of the positive parts and one subtract of the negative parts,
    which OpenCV vectorizes (a scalar that does not fit uint8 would make it widen), or
    just one of them when all channels move the same way."""
    levels = np.clip(np.rint(offset_255), -255, 255).astype(int).tolist()
    up = (*(max(v, 0) for v in levels), 0)
    down = (*(max(-v, 0) for v in levels), 0)
    if not any(down):  # the usual case: the first component moves all channels one way
        return cv2.add(image, up)
    if not any(up):
        return cv2.subtract(image, down)
    out = cv2.add(image, up)
    return cv2.subtract(out, down, dst=out)


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

    path_arguments = ("stats",)  # a recipe's relative path is taken from the recipe's folder

    @classmethod
    def get_class_fullname(cls) -> str:
        # The name every exported recipe carries, and A.load looks up: the public module
        # augkit.pca_color (which imports this one), not where the code lives.
        return "augkit.pca_color.PCAColor"

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
        img = np.ascontiguousarray(img)  # a no-op unless a flip/crop left a view OpenCV cannot take
        eigvals, eigvecs = self._eig if self._eig is not None else image_pca(img)
        return add_offset_uint8(img, rgb_offset(eigvals, eigvecs, alpha) * 255.0)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma", "source", "stats")
