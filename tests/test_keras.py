"""`augkit.keras.AugkitPyDataset`: what model.fit consumes, deterministic, new every epoch."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from augkit.keras import AugkitPyDataset  # noqa: E402
from imagefiles import class_folders  # noqa: E402

RECIPE = {"transforms": [{"HorizontalFlip": {"p": 0.5}}, {"RandomResizedCrop": {"size": [16, 16], "scale": [0.3, 1.0]}},
                         {"RGBShift": {"p": 0.5}}]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("keras") / "data", per_class=4)


def epoch(ds, e):
    ds.set_epoch(e)
    return [ds[i] for i in range(len(ds))]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x1, x2) and np.array_equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_batches_shapes_and_classes(data):
    ds = AugkitPyDataset(data, RECIPE, batch_size=5, preprocess="tf")
    x, y = ds[0]
    assert len(ds) == 3 and x.shape == (5, 16, 16, 3) and x.dtype == np.float32 and y.shape == (5,)
    assert ds.classes == ["cat", "dog", "owl"]
    with pytest.raises(IndexError):
        ds[3]


def test_same_batches_whatever_the_keras_worker_settings(data):
    single = AugkitPyDataset(data, RECIPE, batch_size=5)
    threaded = AugkitPyDataset(data, RECIPE, batch_size=5, workers=2)
    assert same(epoch(single, 0), epoch(threaded, 0))


def test_every_epoch_differs_and_an_epoch_repeats_exactly(data):
    ds = AugkitPyDataset(data, RECIPE, batch_size=5)
    assert not same(epoch(ds, 0), epoch(ds, 1))
    assert same(epoch(ds, 1), epoch(ds, 1))


def test_model_fit_trains_for_an_epoch_and_moves_to_the_next(data):
    ds = AugkitPyDataset(data, RECIPE, batch_size=4, preprocess="tf", workers=2)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert ds.epoch >= 1  # on_epoch_end moved it on: the next epoch gets new augmentations
