"""augkit.core.rgb_pca: the exact pixel sums, covariance and principal components that
`augkit stats` and PCAColor's `image` mode share; every number matches NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from augkit.core.rgb_pca import Moments, covariance, pixel_moments, principal_components
from conftest import make_structured_rgb


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (375, 500), (1000, 1500)])
def test_pixel_moments_are_the_exact_integer_sums(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    x = image.reshape(-1, 3).astype(np.int64)
    m = pixel_moments(image)
    assert m.n == x.shape[0]
    assert list(m.sums) == x.sum(axis=0).tolist()
    assert [list(r) for r in m.products] == (x.T @ x).tolist()


def test_pixel_moments_at_the_extremes():
    for value in (0, 1, 254, 255):
        image = np.full((300, 400, 3), value, np.uint8)
        m = pixel_moments(image)
        n = 300 * 400
        assert m.sums == (n * value,) * 3 and all(p == n * value * value for row in m.products for p in row)
    black_white = np.zeros((2, 2, 3), np.uint8)
    black_white[0, :, 0] = 255  # red only in the first row
    assert pixel_moments(black_white).products[0] == (2 * 255 * 255, 0, 0)


def test_covariance_and_components_match_numpy():
    image = make_structured_rgb(90, 120, seed=3)
    x = image.reshape(-1, 3) / 255.0
    cov = covariance(pixel_moments(image))
    assert np.allclose(cov, np.cov(x.T, bias=True), rtol=1e-12, atol=1e-15)
    eigvals, eigvecs = principal_components(cov)
    assert list(eigvals) == sorted(eigvals, reverse=True)
    assert np.allclose(eigvecs @ np.diag(eigvals) @ eigvecs.T, cov, atol=1e-14)
    assert all(eigvecs[np.abs(eigvecs[:, i]).argmax(), i] > 0 for i in range(3))


def test_moments_add_up_to_the_moments_of_both_images_together():
    a, b = make_structured_rgb(20, 30, seed=1), make_structured_rgb(20, 30, seed=2)
    assert pixel_moments(a) + pixel_moments(b) == pixel_moments(np.concatenate([a, b]))
    assert pixel_moments(a) + Moments(0, (0, 0, 0), ((0, 0, 0),) * 3) == pixel_moments(a)
