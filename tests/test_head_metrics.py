"""augkit.stages.head.metrics: accuracy, precision/recall, the confusion matrix and its picture."""

from __future__ import annotations

import cv2
import numpy as np

from augkit.input.encoding import written_by
from augkit.stages.head import metrics
from imagefiles import encoded


def test_the_confusion_matrix_counts_true_classes_by_row_and_predictions_by_column():
    matrix = metrics.confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_the_report_gives_accuracy_and_each_class_precision_recall_and_support():
    matrix = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    report = metrics.report(matrix, ["a", "b", "c"])
    assert report["accuracy"] == round(4 / 6, 6) and report["rows"] == 6
    assert report["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert report["per_class"]["c"] == {"precision": 1.0, "recall": round(2 / 3, 6), "support": 3}
    assert report["confusion"] == {"classes": ["a", "b", "c"], "matrix": matrix.tolist()}


def test_a_class_never_predicted_or_never_seen_has_no_precision_or_recall():
    report = metrics.report(np.array([[2, 0], [0, 0]]), ["seen", "absent"])
    assert report["per_class"]["absent"] == {"precision": None, "recall": None, "support": 0}


def test_the_picture_is_a_png_augkit_marks_as_its_own(tmp_path):
    png = metrics.picture(np.array([[5, 1], [0, 7]]), ["cat", "a very long class name indeed"], "val accuracy 0.92",
                          by="train-head")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    path = tmp_path / "confusion.png"
    path.write_bytes(png)
    assert written_by(path) == "train-head"


def test_a_users_png_is_not_taken_for_augkits(tmp_path):
    path = tmp_path / "mine.png"
    path.write_bytes(encoded(np.zeros((8, 8, 3), np.uint8), "PNG"))
    assert written_by(path) is None and written_by(tmp_path / "missing.png") is None


def test_many_classes_still_fit_the_picture():
    k = 40
    png = metrics.picture(np.eye(k, dtype=np.int64) * 3, [f"class_{i}" for i in range(k)], "40 classes", by="predict")
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) is not None
