"""Keras adapter: a ``keras.utils.PyDataset`` that ``model.fit`` consumes directly.

    from augkit.keras import AugkitPyDataset
    train = AugkitPyDataset("data/train", "recipes/standard.yaml", batch_size=32, preprocess="tf")
    model.fit(train, epochs=10)

Works with Keras 3 on any backend. Batch ``b`` of epoch ``e`` holds the same samples with
the same augmentations whatever Keras's ``workers`` / ``use_multiprocessing`` settings are
(the order comes from ``(seed, e)``, sample ``i``'s augmentation from ``(seed, e, key_i)``);
every epoch differs. ``model.fit`` calls ``on_epoch_end``, which moves to the next epoch.
``balance=True`` draws every class equally often each epoch; ``mixup`` / ``cutmix`` (timm's
options, as ``flow`` takes them) mix batch ``b`` of epoch ``e`` as ``(seed, e, b)`` says and
make ``y`` soft targets: compile the model with ``loss="categorical_crossentropy"``.

``on_epoch_end`` runs in the main process. That is enough: Keras starts its worker threads
or processes afresh for every epoch, after ``on_epoch_end``, and a process receives the
dataset as it is then (fork, spawn and forkserver alike). Two habits of Keras (3.15) shift
``fit``'s epochs against augkit's: before training, ``fit`` reads one batch to build the
model and ends an epoch there, so training starts at epoch 1; and with workers, Keras keeps
the batches it prefetched for that read and trains on them first, so each of ``fit``'s
epochs may begin with the last batches of the epoch before (the batches still follow one
another in order, none twice, but such an epoch can hold a sample twice and miss another).
``failures`` lists every image left out so far, by this process, its threads or worker
processes alike.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any


def _keras_import_error(exc: Exception) -> ImportError:
    """Keras missing, or Keras present and its backend not: two causes, two fixes."""
    if isinstance(exc, ModuleNotFoundError) and exc.name == "keras":
        return ImportError("augkit.keras needs Keras 3: pip install keras (and a backend such as torch)")
    import os

    named = os.environ.get("KERAS_BACKEND")
    backend = (f"its backend {named}" if named else
               "the backend named in ~/.keras/keras.json (tensorflow by default), as KERAS_BACKEND is not set")
    return ImportError(f"augkit.keras: Keras cannot load {backend} ({type(exc).__name__}: {exc}); "
                       f"install that backend, or choose an installed one with KERAS_BACKEND=torch, jax or tensorflow")


try:
    import keras
except (ImportError, ValueError) as exc:  # ValueError: Keras's word for an unknown KERAS_BACKEND
    raise _keras_import_error(exc) from exc

from augkit.stages.batches import (BatchItem, BatchTask, SamplePipeline, balance_with, batch_members,
                                   batches_per_epoch, order_of)
from augkit.stages.mixing import MixOptions, mixer_for
from augkit.core.failures import FailureLog
from augkit.core.seeds import run_seed


class AugkitPyDataset(keras.utils.PyDataset):
    """``(x, y)`` batches for ``model.fit``; ``y`` holds class indices into ``.classes``, or
    soft targets (batch, classes) with ``mixup``, ``cutmix`` or ``label_smoothing``, and
    one-hot rows with ``one_hot=True`` (validation data for ``categorical_crossentropy``)."""

    def __init__(self, source, recipe=None, *, batch_size: int = 32, shuffle: bool = True, seed: int | None = None,
                 size=None, preprocess: Any = None, channels_first: bool = False, drop_last: bool = False,
                 split: str | None = None, max_pixels: int | None = None, balance: bool = False,
                 mixup: float = 0.0, cutmix: float = 0.0, mix_prob: float = 1.0, switch_prob: float = 0.5,
                 label_smoothing: float = 0.0, one_hot: bool = False, **pydataset_options: Any):
        super().__init__(**pydataset_options)  # workers, use_multiprocessing, max_queue_size
        from augkit.input.discovery import discover
        from augkit.recipes import load_recipe

        self.dataset = discover(source, split=split)
        loaded = load_recipe(recipe) if recipe is not None else None
        self.seed = run_seed(seed, loaded)
        labels = [s.label for s in self.dataset.samples]
        self.classes = self.dataset.classes
        self.class_to_index = self.dataset.class_to_index
        self.balance = balance_with(balance, shuffle, labels)
        mixer = mixer_for(MixOptions(mixup, cutmix, mix_prob, switch_prob, label_smoothing, one_hot), self.seed, self.classes,
                          labels, channels_first)
        self._task = BatchTask(SamplePipeline(loaded, seed=self.seed, size=size, preprocess=preprocess,
                                              channels_first=channels_first, max_pixels=max_pixels), mixer=mixer)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self._order: tuple[int, Any] = (-1, None)  # (epoch, its order): made once per epoch
        self._failures = FailureLog()  # shared with Keras's worker processes, which fail images too
        self.epoch = 0
        self._local = threading.local()

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Every image left out so far (source, reason, message), whichever process read it."""
        return self._failures.rows()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def __len__(self) -> int:
        return batches_per_epoch(len(self.dataset), self.batch_size, self.drop_last)

    def _thread_task(self) -> BatchTask:
        # A recipe re-seeds its pipeline per sample, so each of Keras's threads needs its own.
        task = getattr(self._local, "task", None)
        if task is None:
            task = self._local.task = pickle.loads(pickle.dumps(self._task))
        return task

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        order, draws = self._epoch_order()
        samples = batch_members(self.dataset, order, index, self.batch_size, draws)
        built = self._thread_task()(BatchItem(self.epoch, index, tuple(samples), None))
        for row in built.failures:
            self._failures.add(row)
        if built.array is None:
            raise ValueError(f"every image of batch {index} failed: {built.failures[0]['message']}")
        return built.array, built.labels

    def _epoch_order(self):
        """(order, draw numbers) of the current epoch (:func:`~augkit.stages.batches.order_of`)."""
        epoch, order = self._order
        current = self.epoch
        if epoch != current:  # threads may both make it: the same arrays, whoever keeps them
            order = order_of(self.dataset, self.seed, current, self.shuffle, self.balance)
            self._order = (current, order)
        return order

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
