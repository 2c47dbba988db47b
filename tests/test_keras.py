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


class BatchRecorder(keras.Model):
    """A model whose training step only keeps the batch it is given (as model.fit gave it)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.batches = []

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        self.batches.append(tuple(t.detach().cpu().numpy().copy() for t in data))  # torch tensors
        return {}


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


KERAS_WORKERS = {"one worker": {}, "two threads": dict(workers=2),
                 "two processes": dict(workers=2, use_multiprocessing=True)}


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="BatchRecorder overrides the torch train_step")
@pytest.mark.parametrize("settings", KERAS_WORKERS.values(), ids=KERAS_WORKERS)
def test_model_fit_trains_on_every_epoch_in_order_whatever_the_keras_worker_settings(data, settings):
    # on_epoch_end runs in the main process; with use_multiprocessing the batches are built
    # in worker processes, which must see the new epoch too.
    ds = AugkitPyDataset(data, RECIPE, batch_size=5, **settings)
    model = BatchRecorder()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(ds, epochs=3, shuffle=False, verbose=0)
    reference = AugkitPyDataset(data, RECIPE, batch_size=5)
    where = {x.tobytes(): (e, b) for e in range(5) for b, (x, _) in enumerate(epoch(reference, e))}
    trained = [where.get(x.tobytes()) for x, _ in model.batches]
    # Keras looks at one batch before training (to build the model) and ends an epoch there;
    # with workers it also keeps what it prefetched then and trains on it first, so fit's
    # epochs may start a few batches into augkit's. What must hold: augkit's epochs, each
    # whole and new, one after the other, nothing repeated.
    assert len(trained) == 3 * len(ds) and None not in trained
    assert trained == sorted(set(trained))
    assert {(e, b) for e in (1, 2) for b in range(len(ds))} <= set(trained)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="BatchRecorder overrides the torch train_step")
@pytest.mark.parametrize("settings", KERAS_WORKERS.values(), ids=KERAS_WORKERS)
def test_images_left_out_are_listed_whichever_process_read_them(tmp_path, settings):
    from imagefiles import write_tree

    root = class_folders(tmp_path / "data", per_class=4)
    write_tree(root, {"dog/dog_2.jpg": b"", "owl/owl_0.jpg": b"<html>not an image</html>"})
    ds = AugkitPyDataset(root, RECIPE, batch_size=5, **settings)
    model = BatchRecorder()
    model.compile(optimizer="sgd", loss="mse")

    model.fit(ds, epochs=2, shuffle=False, verbose=0)

    assert sorted((f["source"], f["reason"]) for f in ds.failures) == [("dog/dog_2.jpg", "empty"),
                                                                      ("owl/owl_0.jpg", "not_an_image")]


@pytest.mark.parametrize("backend, named", [("bogus", "bogus"), ("jax", "jax")])
def test_a_keras_without_a_usable_backend_names_the_backend_and_the_fix(backend, named):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed here")
    done = subprocess.run([sys.executable, "-c", "import augkit.keras"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KERAS_BACKEND": backend})
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("ImportError: augkit.keras: Keras cannot load its backend")
    assert named in last and "KERAS_BACKEND=torch" in last and "pip install keras" not in last


def test_without_keras_backend_the_error_says_where_the_backend_came_from_and_the_fix(tmp_path):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("tensorflow, Keras's default backend, is installed here")
    env = {name: value for name, value in os.environ.items() if name not in ("KERAS_BACKEND", "KERAS_HOME")}
    done = subprocess.run([sys.executable, "-c", "import augkit.keras"], capture_output=True, text=True, timeout=120,
                          env={**env, "HOME": str(tmp_path)})  # no ~/.keras/keras.json naming another backend
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith(
        "ImportError: augkit.keras: Keras cannot load the backend named in ~/.keras/keras.json (tensorflow by "
        "default), as KERAS_BACKEND is not set (")
    assert last.endswith("; install that backend, or choose an installed one with KERAS_BACKEND=torch, jax or tensorflow")


def test_mixed_batches_are_flows_batches_with_soft_targets_for_categorical_crossentropy(data):
    import augkit

    options = dict(batch_size=5, preprocess="tf", mixup=0.8, cutmix=1.0, label_smoothing=0.1)
    ds = AugkitPyDataset(data, RECIPE, **options)
    with augkit.flow(data, RECIPE, workers=0, epochs=2, **options) as flow:
        expected = [(x.copy(), y.copy()) for x, y in flow]
    assert same(epoch(ds, 0) + epoch(ds, 1), expected)
    x, y = ds[0]
    assert y.shape == (5, 3) and y.dtype == np.float32 and np.allclose(y.sum(axis=1), 1)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"][0])
    val = AugkitPyDataset(data, None, batch_size=5, preprocess="tf", shuffle=False, one_hot=True)
    x, y = val[0]
    assert y.shape == (5, 3) and np.array_equal(y.argmax(axis=1), AugkitPyDataset(data, None, batch_size=5,
                                                                                  shuffle=False)[0][1])
    assert set(np.unique(y)) == {0.0, 1.0}  # one-hot, unmixed
    history = model.fit(ds, validation_data=val, epochs=1, verbose=0).history
    assert np.isfinite(history["val_loss"][0])


def test_balance_draws_every_class_equally_as_flow_does(tmp_path):
    import augkit
    from imagefiles import write_tree

    root = class_folders(tmp_path / "data", per_class=4)
    write_tree(root, {f"owl/owl_extra_{i}.jpg": (root / "owl" / "owl_0.jpg").read_bytes() for i in range(6)})
    ds = AugkitPyDataset(root, RECIPE, batch_size=6, balance=True)
    labels = np.concatenate([y for _, y in epoch(ds, 0)])
    assert np.bincount(labels).tolist() == [6, 6, 6]
    with augkit.flow(root, RECIPE, batch_size=6, workers=0, balance=True) as flow:
        assert same(epoch(ds, 0), [(x.copy(), y.copy()) for x, y in flow])


@pytest.mark.parametrize("size", [-3, 0, (64,), "64", 64.5])
def test_a_size_that_is_not_one_is_bad_usage(data, size):
    from augkit.core.errors import UsageError

    with pytest.raises(UsageError, match=r"^size=.*: not a size; give one whole number"):
        AugkitPyDataset(data, RECIPE, size=size)
