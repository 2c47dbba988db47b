"""augkit.stages.head.solver: scikit-learn's multinomial logistic regression, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest

from augkit.stages.head import solver


class ArrayRows:
    """What the solver reads (Rows' interface) over arrays in memory, in chunks of ``chunk``."""

    def __init__(self, X, y, w=None, chunk: int = 64):
        self.X, self.y = X.astype(np.float32), y
        self.w = np.ones(len(y)) if w is None else w
        self.dim, self.total_weight, self.chunk = X.shape[1], float(self.w.sum()), chunk

    def __len__(self) -> int:
        return len(self.y)

    def __iter__(self):
        for s in range(0, len(self.y), self.chunk):
            yield self.X[s:s + self.chunk], self.y[s:s + self.chunk], self.w[s:s + self.chunk]


def blobs(n: int = 600, d: int = 20, k: int = 3, spread: float = 2.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, d))
    y = rng.integers(0, k, n)
    return (centres[y] + rng.normal(0, spread, (n, d))).astype(np.float32), y


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_the_fit_is_scikit_learns_logistic_regression_on_the_same_rows(C):
    sklearn = pytest.importorskip("sklearn.linear_model")
    X, y = blobs()
    fit = solver.fit(ArrayRows(X, y), 3, C)
    reference = sklearn.LogisticRegression(C=C, max_iter=1000).fit(X, y)
    assert fit.converged and fit.iterations == reference.n_iter_[0]
    assert np.allclose(fit.weight, reference.coef_, atol=1e-4 * np.abs(reference.coef_).max())
    assert np.allclose(fit.bias, reference.intercept_, atol=1e-4 * max(1.0, np.abs(reference.intercept_).max()))


def test_sample_weights_are_scikit_learns_sample_weights():
    sklearn = pytest.importorskip("sklearn.linear_model")
    X, y = blobs(seed=1)
    w = np.where(y == 0, 3.0, 1.0)
    fit = solver.fit(ArrayRows(X, y, w), 3, 0.5)
    reference = sklearn.LogisticRegression(C=0.5, max_iter=1000).fit(X, y, sample_weight=w)
    assert np.allclose(fit.weight, reference.coef_, atol=1e-4 * np.abs(reference.coef_).max())


def test_how_the_rows_are_chunked_does_not_change_the_head():
    X, y = blobs(seed=2)
    one = solver.fit(ArrayRows(X, y, chunk=len(y)), 3, 1.0)
    many = solver.fit(ArrayRows(X, y, chunk=37), 3, 1.0)
    assert np.allclose(one.weight, many.weight, atol=1e-5) and one.iterations == many.iterations


def test_the_gradient_is_the_objectives_derivative():
    X, y = blobs(n=80, d=5, seed=3)
    rows = ArrayRows(X.astype(np.float64).astype(np.float32), y)
    theta = np.random.default_rng(0).normal(0, 0.1, 3 * 6)
    _, gradient = solver.loss_and_gradient(theta, rows, 3, 5, 0.7, rows.total_weight)
    eps = 1e-3
    for i in (0, 7, 16):
        step = np.zeros_like(theta)
        step[i] = eps
        up = solver.loss_and_gradient(theta + step, rows, 3, 5, 0.7, rows.total_weight)[0]
        down = solver.loss_and_gradient(theta - step, rows, 3, 5, 0.7, rows.total_weight)[0]
        assert (up - down) / (2 * eps) == pytest.approx(gradient[i], rel=1e-2, abs=1e-5)


def test_a_fit_stopped_by_max_iter_says_it_did_not_converge():
    X, y = blobs(seed=4)
    fit = solver.fit(ArrayRows(X, y), 3, 100.0, max_iter=2)
    assert not fit.converged and fit.iterations == 2


def test_the_search_keeps_the_value_best_on_validation_and_fits_every_value_once():
    X, y = blobs(n=900, d=40, spread=4.0, seed=5)
    rows, val = ArrayRows(X[:600], y[:600]), ArrayRows(X[600:], y[600:])
    best, fits = solver.search(rows, val, 3, [10.0, 0.001, 1.0])
    assert [f.C for f in fits] == [0.001, 1.0, 10.0]
    top = max(f.val["accuracy"] for f in fits)
    assert best.val["accuracy"] == top
    assert best.val["log_loss"] == min(f.val["log_loss"] for f in fits if f.val["accuracy"] == top)


def test_without_validation_the_search_is_one_fit():
    X, y = blobs(seed=6)
    best, fits = solver.search(ArrayRows(X, y), None, 3, [1.0])
    assert len(fits) == 1 and best is fits[0] and best.val == {}


def test_judge_gives_accuracy_and_log_loss():
    X, y = blobs(seed=7)
    fit = solver.fit(ArrayRows(X, y), 3, 1.0)
    judged = solver.judge(ArrayRows(X, y), fit.weight, fit.bias)
    p, labels = solver.scores(ArrayRows(X, y), fit.weight, fit.bias)
    assert judged["accuracy"] == pytest.approx((p.argmax(axis=1) == y).mean())
    assert judged["log_loss"] == pytest.approx(-np.log(p[np.arange(len(y)), y]).mean(), rel=1e-5)
    assert np.allclose(p.sum(axis=1), 1, atol=1e-5) and (labels == y).all()
