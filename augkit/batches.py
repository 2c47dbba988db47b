"""Batches: fresh augmentations every epoch, as NumPy ``(x, y)`` batches.

Stages: discovery (parent) -> per-epoch order (parent) -> decode, augment, resize,
preprocess, stack (engine workers, one :class:`BatchTask` call per batch) -> the consumer.

- Sample ``i`` in epoch ``e`` is augmented with ``derive_seed(seed, e, key_i)`` and the
  epoch's order is a permutation seeded by ``(seed, e)``: the same batches for any number
  of workers, different every epoch.
- Workers write each batch straight into a shared-memory slot; the consumer receives an
  array over that memory, with no copy and no pickling of pixels. A slot is reused only
  when nothing refers to its array any more (the consumer dropped the batch, or converted
  it with a copy), so keeping a batch around is always safe: a new slot is made instead.
- Memory is bounded: at most ``workers * prefetch`` batches are in flight.
- An image that cannot be used is left out of its batch and recorded in ``failures``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
import functools
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from augkit.errors import UsageError
from augkit.seeds import derive_seed

# Keras/PyTorch preprocessing conventions: "torch" is ImageNet mean/std on the 0-1 scale,
# "caffe" subtracts these BGR means on the 0-255 scale (see Preprocess.table).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
PREPROCESS_MODES = ("tf", "torch", "caffe")

# What to do instead of normalising in the recipe (see Recipe.require_image_output).
NORMALISE_WITH_PREPROCESS = "drop {name} and use preprocess='torch', 'tf' or (mean, std) (--preprocess) instead"


@dataclass(frozen=True)
class Preprocess:
    """uint8 RGB -> the array a model expects: ``(x * scale - offset) / std`` per channel."""

    mode: str | None = None  # None = keep uint8
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # on the 0-1 scale (explicit mode)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def parse(cls, value: Any) -> Preprocess:
        if value is None or isinstance(value, Preprocess):
            return value or cls()
        if isinstance(value, str):
            if value not in PREPROCESS_MODES:
                raise UsageError(f"unknown preprocess {value!r}; use one of: {', '.join(PREPROCESS_MODES)}, or (mean, std)")
            return cls(value)
        try:
            mean, std = value
            return cls("explicit", tuple(float(m) for m in mean), tuple(float(s) for s in std))
        except (TypeError, ValueError):
            raise UsageError(f"preprocess {value!r}: give a mode name or (mean, std) with 3 values each on the 0-1 scale") from None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.mode is None else np.float32)

    @functools.cached_property
    def table(self) -> np.ndarray:
        """(256, 3) float32: the output value of each uint8 level, per *output* channel.

        Every mode is a per-channel affine map of 256 levels, so a lookup table computes it
        exactly (the value float32 arithmetic would give) in one pass over the pixels."""
        levels = np.arange(256, dtype=np.float64)[:, None]
        if self.mode == "tf":
            values = levels / 127.5 - 1.0 + np.zeros(3)
        elif self.mode == "caffe":
            values = levels - np.asarray(CAFFE_MEAN_BGR)  # output channel c is BGR channel c
        else:
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if self.mode == "torch" else (self.mean, self.std)
            values = (levels / 255.0 - np.asarray(mean)) / np.asarray(std)
        return np.ascontiguousarray(values, dtype=np.float32)

    def __call__(self, image: np.ndarray, out: np.ndarray, channels_first: bool = False) -> None:
        """Write the preprocessed HxWx3 RGB uint8 image into ``out`` (HxWx3, or 3xHxW with
        ``channels_first``) in place: no intermediate array, so ``out`` may be shared memory."""
        import cv2

        if self.mode == "caffe":
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.mode is None:
            out[...] = image.transpose(2, 0, 1) if channels_first else image
        elif channels_first:
            for c in range(3):
                cv2.LUT(np.ascontiguousarray(image[..., c]), self.table[:, c], dst=out[c])
        else:
            cv2.LUT(image, self.table.reshape(256, 1, 3), dst=out)


class SamplePipeline:
    """decode -> augment (seeded by epoch and key) -> final size -> preprocessed array.

    The one definition of "a training sample", shared by ``flow``, ``stream`` and the
    PyTorch and Keras adapters, so they all give the same arrays. A recipe that does not
    return uint8 RGB is refused here (RecipeError), and a sample it turns into something
    else at run time raises NotAnImageError instead of becoming garbage.
    """

    def __init__(self, recipe, *, seed: int = 0, size: tuple[int, int] | None = None, preprocess: Any = None,
                 channels_first: bool = False, max_pixels: int | None = None):
        if recipe is not None:
            recipe.require_image_output(NORMALISE_WITH_PREPROCESS)
        self.recipe = recipe
        self.seed = seed
        self.size = size
        self.preprocess = Preprocess.parse(preprocess)
        self.channels_first = channels_first
        self.max_pixels = max_pixels

    def augmented(self, path: str, key: str, epoch: int) -> np.ndarray:
        """The augmented uint8 RGB image at its final size (raises DecodeError)."""
        import cv2

        from augkit.decoding import decode_image
        from augkit.recipes import require_image

        image = decode_image(path, max_pixels=self.max_pixels)
        if self.recipe is not None:
            image = require_image(self.recipe(image, seed=derive_seed(self.seed, epoch, key)))
        if self.size is not None and image.shape[:2] != tuple(self.size):
            h, w = self.size
            shrink = h * w < image.shape[0] * image.shape[1]
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return image

    def output_shape(self, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
        h, w = image_shape[:2]
        return (3, h, w) if self.channels_first else (h, w, 3)

    def write(self, image: np.ndarray, out: np.ndarray) -> None:
        """Preprocess an augmented image into ``out`` (of :meth:`output_shape`), in place."""
        self.preprocess(image, out, self.channels_first)

    def __call__(self, path: str, key: str, epoch: int) -> np.ndarray:
        image = self.augmented(path, key, epoch)
        out = np.empty(self.output_shape(image.shape), self.preprocess.dtype)
        self.write(image, out)
        return out


# --- worker side -------------------------------------------------------------------------

_attached: dict[str, shared_memory.SharedMemory] = {}


def _attach(name: str) -> shared_memory.SharedMemory:
    shm = _attached.get(name)
    if shm is None:
        # The parent owns (and unlinks) the block; attaching must not register it with
        # this process's resource tracker, which would unlink it when the worker exits.
        shm = shared_memory.SharedMemory(name=name, track=False) if sys.version_info >= (3, 13) else _untracked(name)
        _attached[name] = shm
    return shm


def _untracked(name: str) -> shared_memory.SharedMemory:
    # Python < 3.13 registers every attachment with the resource tracker, which the
    # parent shares: skip the registration rather than undo it (undoing it would make
    # the parent's own unlink fail in the tracker).
    from multiprocessing import resource_tracker

    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


@dataclass(frozen=True)
class BatchItem:
    epoch: int
    number: int  # batch number within the epoch
    samples: tuple[tuple[str, str, int], ...]  # (path, key, label index or -1)
    slot: str | None  # shared-memory block to write into; None = return the array


@dataclass
class BuiltBatch:
    slot: str | None  # where the pixels are, or None when ``array`` carries them
    array: np.ndarray | None
    shape: tuple[int, ...] | None  # None when every sample of the batch failed
    dtype: str | None
    labels: np.ndarray
    failures: list[dict[str, Any]]


class BatchTask:
    """Builds one batch in a worker, into its shared-memory slot when it has one."""

    def __init__(self, pipeline: SamplePipeline):
        self.pipeline = pipeline

    def __call__(self, item: BatchItem) -> BuiltBatch:
        from augkit.decoding import DecodeError

        pipeline = self.pipeline
        labels, failures = [], []
        batch = first = None
        for path, key, label in item.samples:
            try:
                image = pipeline.augmented(path, key, item.epoch)
            except DecodeError as exc:
                failures.append({"source": key, "reason": exc.reason, "message": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one bad sample is a row, not the end
                failures.append({"source": key, "reason": "transform_error", "message": f"{key}: {type(exc).__name__}: {exc}"})
                continue
            if batch is None:
                first = image.shape
                batch = self._target(item, pipeline.output_shape(first))
            elif image.shape != first:
                raise ValueError(f"samples end at different shapes ({first}, {image.shape}); "
                                 f"set a final size (size=(H, W) / --size)")
            pipeline.write(image, batch[len(labels)])  # straight into the batch: no copy
            labels.append(label)
        y = np.asarray(labels, np.int64)
        if batch is None:
            return BuiltBatch(item.slot, None, None, None, y, failures)
        batch = batch[: len(labels)]
        array = None if item.slot is not None else batch
        return BuiltBatch(item.slot, array, batch.shape, batch.dtype.str, y, failures)

    def _target(self, item: BatchItem, sample_shape: tuple[int, ...]) -> np.ndarray:
        shape, dtype = (len(item.samples), *sample_shape), self.pipeline.preprocess.dtype
        if item.slot is None:
            return np.empty(shape, dtype)
        block = _attach(item.slot)
        if int(np.prod(shape)) * dtype.itemsize > block.size:
            raise ValueError(f"a batch of {shape} does not fit its {block.size}-byte slot; set a final size "
                             f"(size=(H, W) / --size)")
        return np.ndarray(shape, dtype, buffer=block.buf)


# --- parent side -------------------------------------------------------------------------


class _Slots:
    """Shared-memory blocks handed to workers and lent to the consumer as arrays."""

    def __init__(self, nbytes: int):
        self.nbytes = max(1, nbytes)
        self.blocks: dict[str, shared_memory.SharedMemory] = {}
        self.lent: dict[str, np.ndarray] = {}  # slot -> the array the consumer got
        self.free: list[str] = []

    def take(self) -> str:
        for name in list(self.lent):
            # 2 = our dict entry + getrefcount's argument: nobody else holds the batch.
            if sys.getrefcount(self.lent[name]) <= 2:
                del self.lent[name]
                self.free.append(name)
        if self.free:
            return self.free.pop()
        shm = shared_memory.SharedMemory(create=True, size=self.nbytes)
        self.blocks[shm.name] = shm
        return shm.name

    def lend(self, name: str, shape, dtype: str) -> np.ndarray:
        array = np.ndarray(shape, np.dtype(dtype), buffer=self.blocks[name].buf)
        self.lent[name] = array
        return array

    def give_back(self, name: str) -> None:
        self.free.append(name)

    def close(self) -> None:
        for name, shm in self.blocks.items():
            shm.unlink()  # the name goes now; a mapping lives on while something uses it
            array = self.lent.pop(name, None)
            if array is not None and sys.getrefcount(array) > 2:
                # The consumer still holds this batch, and NumPy does not pin the memory:
                # closing would unmap it under the array. Leave the mapping to the array
                # (its base memoryview keeps the mmap alive); close only the descriptor.
                shm._buf = shm._mmap = None  # noqa: SLF001 - SharedMemory has no "detach"
            del array
            shm.close()
        self.lent.clear()
        self.blocks.clear()


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng(derive_seed(seed, "order", epoch)).permutation(n)


def batch_members(dataset, order: np.ndarray, number: int, batch_size: int) -> list[tuple[str, str, int]]:
    """(path, key, label index or -1) of the samples of batch ``number`` in an epoch's order."""
    index = dataset.class_to_index
    chosen = order[number * batch_size : (number + 1) * batch_size]
    return [(s.path, s.key, index.get(s.label, -1)) for s in (dataset.samples[i] for i in chosen)]


def batches_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


class Flow:
    """Iterable of ``(x, y)`` NumPy batches; see :func:`augkit.flow`."""

    def __init__(self, source, recipe=None, *, batch_size: int = 32, shuffle: bool = True, seed: int | None = None,
                 epochs: int | None = 1, workers: int | None = None, size: int | Sequence[int] | None = None,
                 preprocess: Any = None, channels_first: bool = False, drop_last: bool = False,
                 split: str | None = None, max_pixels: int | None = None, prefetch: int = 2):
        from augkit.discovery import discover
        from augkit.engine import get_engine
        from augkit.recipes import load_recipe

        if batch_size < 1:
            raise UsageError("batch_size must be at least 1")
        self.engine = get_engine("local", workers=workers, chunk_size=1, prefetch=prefetch)
        self.dataset = discover(source, split=split)
        loaded = load_recipe(recipe) if recipe is not None else None
        self.seed = seed if seed is not None else ((loaded.seed if loaded else None) or 0)
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.pipeline = SamplePipeline(loaded, seed=self.seed, size=self.size, preprocess=preprocess,
                                       channels_first=channels_first, max_pixels=max_pixels)
        self.task = BatchTask(self.pipeline)
        self.batch_size, self.shuffle, self.epochs, self.drop_last = batch_size, shuffle, epochs, drop_last
        self.classes = self.dataset.classes
        self.class_to_index = self.dataset.class_to_index
        self.failures: list[dict[str, Any]] = []
        self._slots: _Slots | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return batches_per_epoch(len(self.dataset), self.batch_size, self.drop_last)

    def batch_items(self, epoch: int) -> Iterator[tuple[int, list[tuple[str, str, int]]]]:
        order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle)
        for number in range(len(self)):
            yield number, batch_members(self.dataset, order, number, self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of one epoch, in order."""
        use_slots = self.engine.workers > 0
        if use_slots and self._slots is None:
            self._slots = _Slots(self._batch_nbytes())
        items = (BatchItem(epoch, number, tuple(samples), self._slots.take() if use_slots else None)
                 for number, samples in self.batch_items(epoch))
        for outcome in self.engine.map(self.task, items):
            if outcome.error is not None:
                raise RuntimeError(f"building a batch failed: {outcome.error}")
            built: BuiltBatch = outcome.value
            self.failures.extend(built.failures)
            if built.shape is None:  # every sample of this batch failed
                if built.slot is not None:
                    self._slots.give_back(built.slot)
                continue
            x = built.array if built.slot is None else self._slots.lend(built.slot, built.shape, built.dtype)
            yield x, built.labels
            del x, built  # so that a batch the consumer dropped frees its slot

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = 0
        try:
            while self.epochs is None or epoch < self.epochs:
                yield from self.epoch(epoch)
                epoch += 1
        finally:
            self.close()

    def _batch_nbytes(self) -> int:
        """Bytes of the largest batch: from the final size, or from a first sample."""
        sample = self.dataset.samples[0]
        if self.size is not None:
            h, w = self.size
        else:
            h, w = self.pipeline.augmented(sample.path, sample.key, 0).shape[:2]
        return self.batch_size * h * w * 3 * self.pipeline.preprocess.dtype.itemsize

    def close(self) -> None:
        self.engine.close()
        if self._slots is not None:
            self._slots.close()
            self._slots = None

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def flow(source, recipe=None, **options: Any) -> Flow:
    """``(x, y)`` batches from a source (class folders, flat folder, CSV or split manifest)
    and a recipe (path, dict, Recipe or None), fresh augmentations every epoch.

    Options: ``batch_size=32``, ``shuffle=True``, ``seed`` (default: the recipe's, else 0),
    ``epochs=1`` (None = forever), ``workers`` (default: one per core; 0 = in this process),
    ``size=(H, W)`` (final shape of every sample), ``preprocess`` (None = uint8, "tf",
    "torch", "caffe", or ``(mean, std)`` on the 0-1 scale), ``channels_first=False``,
    ``drop_last=False``, ``split`` (rows of one split of a split manifest), ``max_pixels``.
    ``y`` holds class indices into ``.classes`` (-1 for unlabelled images).
    """
    return Flow(source, recipe, **options)
