"""Exact RGB pixel sums, their covariance and its principal components.

Shared by ``augkit stats`` (which adds the sums of every image of a dataset) and
``PCAColor`` (whose ``image`` mode decomposes one image's own covariance). It lives below
both so that a transform does not import a command: pure maths on a uint8 image, no I/O.

Convention: channels in RGB order, values on the 0-1 scale (pixel / 255).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_PAIRS = ((0, 1), (1, 2), (0, 2))  # RG, GB, RB


@dataclass(frozen=True)
class Moments:
    """Exact integer sums over the pixels of RGB uint8 images."""

    n: int  # pixel count
    sums: tuple[int, int, int]  # sum of R, G, B
    products: tuple[tuple[int, int, int], ...]  # 3x3 sums of products, products[i][j] = sum(c_i * c_j)

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, tuple(a + b for a, b in zip(self.sums, other.sums)),
                       tuple(tuple(a + b for a, b in zip(r, s)) for r, s in zip(self.products, other.products)))


def pixel_moments(image: np.ndarray, planes: list[np.ndarray] | None = None) -> Moments:
    """Exact sums of values and of products of an RGB uint8 image. OpenCV's uint8
    reductions accumulate in integers and are vectorized (its cost per image: "pixel
    moments" in benchmarks/RESULTS.md). A cross product comes from a squared difference,
    sum(r*g) = (sum(r^2) + sum(g^2) - sum((r-g)^2)) / 2, so no product image and no float
    copy is ever made. ``round`` removes the last-ulp error of OpenCV's double result
    (well under 0.5 for any image under 2**40 pixels)."""
    if planes is None:
        planes = cv2.split(np.ascontiguousarray(image))
    sums = tuple(round(v) for v in cv2.sumElems(image)[:3])
    sq = [round(cv2.norm(p, cv2.NORM_L2SQR)) for p in planes]
    products = [[0] * 3 for _ in range(3)]
    for i in range(3):
        products[i][i] = sq[i]
    for i, j in _PAIRS:
        diff = round(cv2.norm(planes[i], planes[j], cv2.NORM_L2SQR))
        products[i][j] = products[j][i] = (sq[i] + sq[j] - diff) // 2
    return Moments(image.shape[0] * image.shape[1], sums, tuple(tuple(r) for r in products))


def covariance(m: Moments) -> np.ndarray:
    """The 3x3 population covariance on the 0-1 scale, from exact integers: each entry is
    (n * sum(ci*cj) - sum(ci) * sum(cj)) / (n^2 * 255^2), one correctly rounded division."""
    scale = m.n * m.n * 255 * 255
    return np.array([[(m.n * m.products[i][j] - m.sums[i] * m.sums[j]) / scale for j in range(3)] for i in range(3)])


def principal_components(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues descending, eigenvectors as columns), each signed so that its largest
    component is positive (an eigenvector's sign is otherwise arbitrary)."""
    eigvals, eigvecs = np.linalg.eigh(cov)
    eigvals, eigvecs = np.clip(eigvals[::-1], 0.0, None), eigvecs[:, ::-1]
    biggest = eigvecs[np.abs(eigvecs).argmax(axis=0), range(3)]
    return eigvals, eigvecs * np.where(biggest < 0, -1.0, 1.0)
