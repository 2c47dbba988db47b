"""How well a classifier does, in one form for ``train-head`` and ``predict``: accuracy,
per-class precision and recall, the confusion matrix (rows: the true class, columns: the
predicted one), and its picture, drawn with OpenCV (no plotting library).

A picture names augkit and the command that drew it inside
(:func:`augkit.input.encoding.written_by`): a rerun may replace it, never a file of the user's.
"""

from __future__ import annotations

from typing import Any


def confusion(true, predicted, classes: int):
    """(classes, classes) int64: ``[t, p]`` counts rows of class ``t`` predicted ``p``."""
    import numpy as np

    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(true, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def report(matrix, classes: list[str]) -> dict[str, Any]:
    """accuracy, per_class {name: precision, recall, support} and the matrix, for JSON.
    A class never predicted has precision None; one without rows has recall None."""
    total = int(matrix.sum())
    correct = int(matrix.trace())
    per_class = {}
    for i, name in enumerate(classes):
        predicted, support = int(matrix[:, i].sum()), int(matrix[i].sum())
        per_class[name] = {
            "precision": round(int(matrix[i, i]) / predicted, 6) if predicted else None,
            "recall": round(int(matrix[i, i]) / support, 6) if support else None,
            "support": support,
        }
    return {"accuracy": round(correct / total, 6) if total else None, "rows": total, "per_class": per_class,
            "confusion": {"classes": list(classes), "matrix": matrix.tolist()}}


def picture(matrix, classes: list[str], title: str, *, by: str) -> bytes:
    """The confusion matrix as a PNG: cells shaded by the share of their row (the true
    class), each with its count; class names on both axes; marked as drawn by the command ``by``.

    Long because the layout is one sequence of drawing calls, read top to bottom."""
    import cv2
    import numpy as np

    from augkit.input.encoding import encode_image

    k = len(classes)
    cell = 44 if k <= 12 else max(14, 528 // k)
    names = [c if len(c) <= 18 else c[:17] + "~" for c in classes]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    label_w = max(cv2.getTextSize(n, font, scale, 1)[0][0] for n in names) + 12
    top, left = 56 + label_w, 24 + label_w
    height, width = top + k * cell + 36, max(left + k * cell + 16, 360)
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title[:60], (12, 24), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "true class (rows) / predicted (columns)", (12, 46), font, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    for t in range(k):
        for p in range(k):
            x, y = left + p * cell, top + t * cell
            level = int(255 - 200 * share[t, p])
            colour = (255, level, level) if t != p else (level, 255 - (255 - level) // 3, level)
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), (200, 200, 200), 1)
            if cell >= 24:
                text = str(int(matrix[t, p]))
                (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
                ink = (255, 255, 255) if share[t, p] > 0.6 else (0, 0, 0)
                cv2.putText(img, text, (x + (cell - tw) // 2, y + (cell + th) // 2), font, scale, ink, 1, cv2.LINE_AA)
    for i, name in enumerate(names):
        (tw, th), _ = cv2.getTextSize(name, font, scale, 1)
        cv2.putText(img, name, (left - tw - 8, top + i * cell + (cell + th) // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        column = np.full((th + 8, tw + 4, 3), 255, np.uint8)  # the column's name, written upwards
        cv2.putText(column, name, (2, th + 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        column = cv2.rotate(column, cv2.ROTATE_90_COUNTERCLOCKWISE)
        ch, cw = column.shape[:2]
        x0, y0 = left + i * cell + (cell - cw) // 2, top - 8 - ch
        img[y0:y0 + ch, x0:x0 + cw] = np.minimum(img[y0:y0 + ch, x0:x0 + cw], column)
    return encode_image(img, "png", mark=by)
