"""Public home of augkit's PCAColor transform.

``import augkit.pca_color`` registers ``PCAColor`` with albumentations, so that ``A.load``
reads a recipe exported by ``augkit recipe export``. The code lives in
:mod:`augkit.recipes.pca_color`; this path is part of every exported file and stays.
"""

from augkit.recipes.pca_color import IMAGENET_EIGVALS, IMAGENET_EIGVECS, PCAColor, image_pca, load_dataset_pca

__all__ = ["IMAGENET_EIGVALS", "IMAGENET_EIGVECS", "PCAColor", "image_pca", "load_dataset_pca"]
