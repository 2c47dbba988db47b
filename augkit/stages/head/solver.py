"""The head: multinomial logistic regression with an L2 penalty, fitted as scikit-learn's
``LogisticRegression(solver="lbfgs")`` fits it, over rows read chunk by chunk.

The objective is scikit-learn's, ``C * sum_i w_i * CE_i + ||W||^2 / 2`` (the intercept
not penalised), divided by ``sum_i w_i`` as scikit-learn divides it before handing it to
SciPy's L-BFGS-B with the same options (``gtol=tol``, ``ftol=64 * eps``, ``maxls=50``), so
the two stop at the same point. What differs is only where the rows are: the loss and
its gradient are summed chunk by chunk (float32 products, float64 sums), so memory holds
one chunk and the weights, never the whole matrix nor its float64 copy. Measured against
scikit-learn on the same rows by ``benchmarks/head_bench.py`` (benchmarks/RESULTS.md).

:func:`search` fits each ``C`` from the most regularised up, each starting from the
previous solution, and keeps the best on the validation rows (accuracy, then log loss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_C = (0.01, 0.1, 1.0, 10.0)  # the search without --C: scikit-learn's default 1.0 and a decade each side
NO_VALIDATION_C = 1.0  # scikit-learn's default, when nothing can judge a search


@dataclass
class Fit:
    weight: Any  # (classes, dim) float32
    bias: Any  # (classes,) float32
    C: float
    iterations: int = 0
    converged: bool = True
    loss: float = 0.0  # the objective at the end (per unit of sample weight)
    val: dict[str, float] = field(default_factory=dict)  # accuracy, log_loss on the validation rows


def loss_and_gradient(theta, rows: Iterable, classes: int, dim: int, C: float, total_weight: float):
    """The objective (divided by the total sample weight) and its gradient at ``theta``
    (the weights, then the intercepts, as one float64 vector)."""
    import numpy as np

    W = theta[:classes * dim].reshape(classes, dim)
    b = theta[classes * dim:]
    W32, b32 = W.astype(np.float32), b.astype(np.float32)
    loss = 0.0
    gW = np.zeros((classes, dim))
    gb = np.zeros(classes)
    for X, y, w in rows:
        z = (X @ W32.T + b32).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        picked = z[np.arange(len(y)), y]
        loss += float(w @ (log_norm - picked))
        p = np.exp(z - log_norm[:, None])
        p[np.arange(len(y)), y] -= 1.0
        p *= w[:, None]
        gW += (X.T @ p.astype(np.float32)).T
        gb += p.sum(axis=0)
    scale = 1.0 / (C * total_weight)
    value = loss / total_weight + 0.5 * scale * float((W * W).sum())
    gradient = np.concatenate([(gW / total_weight + scale * W).ravel(), gb / total_weight])
    return value, gradient


def fit(rows, classes: int, C: float, *, max_iter: int = 1000, tol: float = 1e-4, start: Fit | None = None,
        step: Callable[[], Any] | None = None) -> Fit:
    """Minimise the objective for one ``C`` (``rows``: :class:`~augkit.stages.head.data.Rows`);
    ``step()`` is called once per L-BFGS iteration (a progress bar)."""
    import numpy as np
    from scipy.optimize import minimize

    dim = rows.dim
    theta = np.zeros(classes * (dim + 1))
    if start is not None:
        theta = np.concatenate([start.weight.astype(np.float64).ravel(), start.bias.astype(np.float64)])
    result = minimize(loss_and_gradient, theta, args=(rows, classes, dim, C, rows.total_weight), method="L-BFGS-B",
                      jac=True, callback=(lambda *_: step()) if step else None,
                      options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps})
    weight = result.x[:classes * dim].reshape(classes, dim).astype(np.float32)
    bias = result.x[classes * dim:].astype(np.float32)
    return Fit(weight, bias, C, int(result.nit), bool(result.success), float(result.fun))


def scores(rows: Iterable, weight, bias):
    """(probabilities, labels) of every row, chunk by chunk (float32 products, as the
    exported model computes them)."""
    import numpy as np

    probs, labels = [], []
    for X, y, _w in rows:
        z = X @ weight.T + bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs.append(e / e.sum(axis=1, keepdims=True))
        labels.append(y)
    k = len(bias)
    return (np.concatenate(probs) if probs else np.empty((0, k), np.float32),
            np.concatenate(labels) if labels else np.empty(0, np.int64))


def judge(rows, weight, bias) -> dict[str, float]:
    """Accuracy and mean log loss of the head on ``rows``."""
    import numpy as np

    p, y = scores(rows, weight, bias)
    if not len(y):
        return {"accuracy": float("nan"), "log_loss": float("nan")}
    picked = np.clip(p[np.arange(len(y)), y].astype(np.float64), 1e-15, 1.0)
    return {"accuracy": float((p.argmax(axis=1) == y).mean()), "log_loss": float(-np.log(picked).mean())}


def search(rows, val_rows, classes: int, values: Sequence[float], *, max_iter: int = 1000, tol: float = 1e-4,
           bar: Callable[[float], Any] | None = None) -> tuple[Fit, list[Fit]]:
    """Fit every ``C`` in ``values`` (most regularised first, warm-started), judge each on
    ``val_rows`` (None: no judging, one value), and return (the best, all of them).
    ``bar(C)`` gives a progress bar for one fit (a context manager with ``update``)."""
    fits: list[Fit] = []
    previous = None
    for C in sorted(values):
        if bar is None:
            previous = fit(rows, classes, C, max_iter=max_iter, tol=tol, start=previous)
        else:
            with bar(C) as progress:
                previous = fit(rows, classes, C, max_iter=max_iter, tol=tol, start=previous,
                               step=lambda: progress.update(1))
        if val_rows is not None:
            previous.val = judge(val_rows, previous.weight, previous.bias)
        fits.append(previous)
    if val_rows is None:
        return fits[0], fits
    # Best accuracy; among equals the lower log loss; among those the stronger penalty.
    best = min(fits, key=lambda f: (-f.val["accuracy"], f.val["log_loss"], f.C))
    return best, fits
