"""Batches: fresh augmentations every epoch, as NumPy ``(x, y)`` batches.

Stages: discovery (parent) -> per-epoch order (parent) -> decode, augment, resize,
preprocess, stack (engine workers, one :class:`BatchTask` call per batch) -> the consumer.

- Sample ``i`` in epoch ``e`` is augmented with ``derive_seed(seed, e, key_i)`` and the
  epoch's order is a permutation seeded by ``(seed, e)`` (or, with ``balance``, a draw of
  every class equally often: :mod:`augkit.stages.sampling`): the same batches for any
  number of workers, different every epoch.
- MixUp / CutMix (:mod:`augkit.stages.mixing`) mix batch ``b`` of epoch ``e`` as
  ``(seed, e, b)`` says, in the worker, in place in its slot; ``y`` then holds soft targets.
- Every sample of a flow has one final size: ``size``, or else what the recipe makes of
  the first usable image. What can be told before the first batch is a usage error then
  (images of several sizes that the recipe does not make one size); a sample that still
  ends at another size is a failure row.
- Workers write each batch straight into a shared-memory slot; the consumer receives an
  array over that memory, with no copy and no pickling of pixels. A slot is reused only
  when nothing refers to its array any more (the consumer dropped the batch, or converted
  it with a copy), so keeping a batch around is always safe: a new slot is made instead.
  When ``/dev/shm`` lacks the room (Docker gives it 64 MB), batches come through pipes
  instead, and ``notes`` says what to change (see ``augkit.engines._shm``).
- Memory is bounded: at most ``workers * prefetch`` batches are in flight.
- An image that cannot be used is left out of its batch and recorded in ``failures``; so
  are the samples of a batch whose worker process died twice building it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from augkit.engines import _shm
from augkit.engines.contract import failure_of
from augkit.core.errors import UsageError
from augkit.core.seeds import derive_seed, run_seed
from augkit.stages.decode_size import flow_hint
from augkit.stages.mixing import BatchMixer, MixOptions, mixer_for
from augkit.stages.sampling import balanced_order, draw_numbers, epoch_order, require_classes
# Preprocess and its constants are preprocess's; flow's callers and tests name them from here too.
from augkit.stages.preprocess import (CAFFE_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD, PREPROCESS_MODES,  # noqa: F401
                                     Preprocess, parse_size, resize)

# What to do instead of normalising in the recipe (see Recipe.require_image_output).
NORMALISE_WITH_PREPROCESS = "drop {name} and use preprocess='torch', 'tf' or (mean, std) (--preprocess) instead"
ONE_SIZE = "pass size=(H, W) (--size H,W) or end the recipe with a Resize or a crop"

# Without a final size, the first usable one of this many samples sets it.
PROBE_SAMPLES = 16
# Slots beyond those in flight: the batch the consumer holds, one waiting for its turn.
SPARE_SLOTS = 2


class SamplePipeline:
    """decode -> augment (seeded by epoch and key) -> final size -> preprocessed array.

    The one definition of "a training sample", shared by ``flow``, ``stream`` and the
    PyTorch and Keras adapters, so they all give the same arrays. A recipe that does not
    return uint8 RGB is refused here (RecipeError), and a sample it turns into something
    else at run time raises NotAnImageError instead of becoming garbage.
    """

    def __init__(self, recipe, *, seed: int = 0, size: int | Sequence[int] | None = None, preprocess: Any = None,
                 channels_first: bool = False, max_pixels: int | None = None, reduced_decode: bool = True):
        self.size = parse_size(size)  # UsageError for anything but None, an int or an (H, W) pair
        if recipe is not None:
            recipe.require_image_output(NORMALISE_WITH_PREPROCESS)
        self.recipe = recipe
        self.seed = seed
        self.preprocess = Preprocess.parse(preprocess)
        self.channels_first = channels_first
        self.max_pixels = max_pixels
        self.size_hint = flow_hint(recipe, self.size, reduced_decode)  # a JPEG may be decoded reduced
        from augkit.input.decoding import resolve_max_pixels

        resolve_max_pixels(max_pixels)  # a bad AUGKIT_MAX_IMAGE_PIXELS: one error now, not a row per image

    def augmented(self, path: str, key: str, epoch: int, draw: int = 0) -> np.ndarray:
        """The augmented uint8 RGB image at its final size (raises DecodeError); ``draw``:
        this sample's draw number within the epoch (:func:`augkit.stages.sampling.draw_numbers`)."""
        return self.transformed(self.decoded(path), key, epoch, draw)

    def decoded(self, path: str, exact: bool = False) -> np.ndarray:
        """The image to augment: decoded reduced where :attr:`size_hint` allows it, unless
        ``exact`` (which gives the same final size: see augkit.input.reduced)."""
        from augkit.input.decoding import decode_image

        return decode_image(path, max_pixels=self.max_pixels, size_hint=None if exact else self.size_hint)

    def transformed(self, image: np.ndarray, key: str, epoch: int, draw: int = 0) -> np.ndarray:
        """A decoded image, augmented as draw ``draw`` of sample ``key`` in ``epoch``, at its
        final size (``size``: the whole image stretched to it by :func:`~augkit.stages.preprocess.resize`)."""
        from augkit.recipes import require_image

        if self.recipe is not None:
            seed = derive_seed(self.seed, epoch, key) if not draw else derive_seed(self.seed, epoch, key, draw)
            image = require_image(self.recipe(image, seed=seed))
        if self.size is not None:
            image = resize(image, tuple(self.size))
        return image

    def output_shape(self, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
        h, w = image_shape[:2]
        return (3, h, w) if self.channels_first else (h, w, 3)

    def write(self, image: np.ndarray, out: np.ndarray) -> None:
        """Preprocess an augmented image into ``out`` (of :meth:`output_shape`), in place."""
        self.preprocess(image, out, self.channels_first)

    def __call__(self, path: str, key: str, epoch: int, draw: int = 0) -> np.ndarray:
        image = self.augmented(path, key, epoch, draw)
        out = np.empty(self.output_shape(image.shape), self.preprocess.dtype)
        self.write(image, out)
        return out


# --- worker side -------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    epoch: int
    number: int  # batch number within the epoch
    samples: tuple[tuple[str, str, int, int], ...]  # (path, key, label index or -1, draw number)
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
    """Builds one batch in a worker, into its shared-memory slot when it has one.

    ``sample_size`` is the (H, W) every sample must end at (None: the batch's first one);
    a sample that ends at another size is a failure row. With a ``mixer``, the batch is
    mixed where it was built and its labels are soft targets.
    """

    def __init__(self, pipeline: SamplePipeline, sample_size: tuple[int, int] | None = None,
                 mixer: BatchMixer | None = None):
        self.pipeline = pipeline
        self.sample_size = sample_size
        self.mixer = mixer

    def __call__(self, item: BatchItem) -> BuiltBatch:
        from augkit.input.decoding import DecodeError

        pipeline = self.pipeline
        labels, failures = [], []
        batch = None
        size = self.sample_size
        for path, key, label, draw in item.samples:
            try:
                image = pipeline.augmented(path, key, item.epoch, draw)
            except DecodeError as exc:
                failures.append({"source": key, "reason": exc.reason, "message": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one bad sample is a row, not the end
                failures.append({"source": key, "reason": "transform_error", "message": f"{key}: {type(exc).__name__}: {exc}"})
                continue
            if size is None:
                size = image.shape[:2]
            if image.shape[:2] != size:
                failures.append({"source": key, "reason": "size_mismatch",
                                 "message": f"{key}: the recipe made it {_hw(image.shape)}, but the samples of this "
                                            f"flow are {_hw(size)}; {ONE_SIZE}"})
                continue
            if batch is None:
                batch = self._target(item, pipeline.output_shape(image.shape))
            pipeline.write(image, batch[len(labels)])  # straight into the batch: no copy
            labels.append(label)
        y = np.asarray(labels, np.int64)
        if batch is None:
            return BuiltBatch(item.slot, None, None, None, y, failures)
        batch = batch[: len(labels)]
        if self.mixer is not None:
            y = self.mixer(batch, y, item.epoch, item.number)  # in place: in the slot when there is one
        array = None if item.slot is not None else batch
        return BuiltBatch(item.slot, array, batch.shape, batch.dtype.str, y, failures)

    def _target(self, item: BatchItem, sample_shape: tuple[int, ...]) -> np.ndarray:
        shape, dtype = (len(item.samples), *sample_shape), self.pipeline.preprocess.dtype
        if item.slot is None:
            return np.empty(shape, dtype)
        block = _shm.attach(item.slot)
        if int(np.prod(shape)) * dtype.itemsize > block.size:  # a bug: the flow sized its slots from sample_size
            raise ValueError(f"a batch of {shape} does not fit its {block.size}-byte slot")
        return np.ndarray(shape, dtype, buffer=block.buf)


def _hw(shape: Sequence[int]) -> str:
    return f"{shape[0]}x{shape[1]}"


# --- parent side -------------------------------------------------------------------------


def balance_with(balance: bool, shuffle: bool, labels: list) -> bool:
    """``balance``, checked: it needs a class for every image, and draws its own order."""
    if balance:
        if not shuffle:
            raise UsageError("balance=True draws a new balanced order every epoch; drop shuffle=False (--no-shuffle)")
        require_classes(labels)
    return bool(balance)


def order_of(dataset, seed: int, epoch: int, shuffle: bool, balance: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The sample indices of one epoch, in order (shuffled, or balanced over the classes),
    and each position's draw number (None: every sample is drawn once)."""
    if balance:
        index = dataset.class_to_index
        order = balanced_order([index[s.label] for s in dataset.samples], seed, epoch)
        return order, draw_numbers(order)
    return epoch_order(len(dataset), seed, epoch, shuffle), None


def batch_members(dataset, order: np.ndarray, number: int, batch_size: int,
                  draws: np.ndarray | None = None) -> list[tuple[str, str, int, int]]:
    """(path, key, label index or -1, draw number) of the samples of batch ``number`` in an
    epoch's ``order`` (``draws`` from :func:`order_of`)."""
    index = dataset.class_to_index
    where = slice(number * batch_size, (number + 1) * batch_size)
    chosen = order[where]
    drawn = draws[where].tolist() if draws is not None else [0] * len(chosen)
    return [(s.path, s.key, index.get(s.label, -1), d) for s, d in zip((dataset.samples[i] for i in chosen), drawn)]


def batches_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


class Flow:
    """Iterable of ``(x, y)`` NumPy batches; see :func:`augkit.flow`."""

    def __init__(self, source, recipe=None, *, batch_size: int = 32, shuffle: bool = True, seed: int | None = None,
                 epochs: int | None = 1, workers: int | None = None, size: int | Sequence[int] | None = None,
                 preprocess: Any = None, channels_first: bool = False, drop_last: bool = False,
                 split: str | None = None, max_pixels: int | None = None,
                 reduced_decode: bool = True, prefetch: int = 2, balance: bool = False,
                 mixup: float = 0.0, cutmix: float = 0.0, mix_prob: float = 1.0, switch_prob: float = 0.5,
                 label_smoothing: float = 0.0, one_hot: bool = False):
        from augkit.input.discovery import discover
        from augkit.engines import get_engine
        from augkit.recipes import load_recipe

        if batch_size < 1:
            raise UsageError("batch_size must be at least 1")
        self.size = parse_size(size)  # before the engine starts
        mixing = MixOptions(mixup, cutmix, mix_prob, switch_prob, label_smoothing, one_hot).check()
        self.engine = get_engine("local", workers=workers, preload=(__name__,), chunk_size=1, prefetch=prefetch)
        self.dataset = discover(source, split=split)
        loaded = load_recipe(recipe) if recipe is not None else None
        self.seed = run_seed(seed, loaded)
        self.pipeline = SamplePipeline(loaded, seed=self.seed, size=self.size, preprocess=preprocess,
                                       channels_first=channels_first, max_pixels=max_pixels,
                                       reduced_decode=reduced_decode)
        self.batch_size, self.shuffle, self.epochs, self.drop_last = batch_size, shuffle, epochs, drop_last
        self.classes = self.dataset.classes
        self.class_to_index = self.dataset.class_to_index
        labels = [s.label for s in self.dataset.samples]
        self.balance = balance_with(balance, shuffle, labels)
        mixer = mixer_for(mixing, self.seed, self.classes, labels, channels_first)
        self.failures: list[dict[str, Any]] = []  # once each: a bad image fails again every epoch
        self._failed: set[tuple[str, ...]] = set()
        self.notes: list[str] = []  # what the user should know that is not a failure
        self.delivered = 0  # batches given to the consumer
        self.sample_size = self.size or final_size(self.dataset.samples, self.pipeline)
        self.task = BatchTask(self.pipeline, self.sample_size, mixer)
        self._slots: _shm.Slots | None = None
        self._use_slots = self.engine.workers > 0 and self.sample_size is not None and self._shm_has_room()

    def __len__(self) -> int:
        """Batches per epoch."""
        return batches_per_epoch(len(self.dataset), self.batch_size, self.drop_last)

    def batch_items(self, epoch: int) -> Iterator[tuple[int, list[tuple[str, str, int]]]]:
        order, draws = order_of(self.dataset, self.seed, epoch, self.shuffle, self.balance)
        for number in range(len(self)):
            yield number, batch_members(self.dataset, order, number, self.batch_size, draws)

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of one epoch, in order."""
        if self._use_slots and self._slots is None:
            self._slots = _shm.Slots(self._batch_nbytes())
        sent: dict[int, BatchItem] = {}  # batch number -> the item, until its outcome is in

        def items() -> Iterator[BatchItem]:
            for number, samples in self.batch_items(epoch):
                sent[number] = BatchItem(epoch, number, tuple(samples), self._take_slot())
                yield sent[number]

        for outcome in self.engine.map(self.task, items()):
            item = sent.pop(outcome.index)
            if outcome.error is not None:  # its worker died twice, or a bug in BatchTask
                self._lost(item, outcome)
                continue
            built: BuiltBatch = outcome.value
            self._fail(built.failures)
            if built.shape is None:  # every sample of this batch failed
                if built.slot is not None:
                    self._slots.give_back(built.slot)
                continue
            x = built.array if built.slot is None else self._slots.lend(built.slot, built.shape, built.dtype)
            self.delivered += 1
            yield x, built.labels
            del x, built  # so that a batch the consumer dropped frees its slot

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = 0
        try:
            while self.epochs is None or epoch < self.epochs:
                before = self.delivered
                yield from self.epoch(epoch)
                if self.delivered == before:  # every image failed, or no batch fits: so will every epoch
                    return
                epoch += 1
        finally:
            self.close()

    def _fail(self, rows) -> None:
        """Record failure rows not recorded before, as the adapters' FailureLog does."""
        for row in rows:
            seen = tuple(str(row.get(k)) for k in ("source", "reason", "message"))
            if seen not in self._failed:
                self._failed.add(seen)
                self.failures.append(row)

    def _lost(self, item: BatchItem, outcome) -> None:
        self._fail({"source": key, **failure_of(outcome, key, died="the worker process died building its batch")}
                   for _path, key, _label, _draw in item.samples)
        if item.slot is not None:
            self._slots.give_back(item.slot)

    def _take_slot(self) -> str | None:
        if self._slots is None:
            return None
        full = self._slots.full
        slot = self._slots.take()
        if slot is None and not full:  # say it once
            self.notes.append(f"{_shm.SHM_DIR} ran out of room after {len(self._slots.blocks)} batches: the others "
                              f"come through pipes (slower); {self._more_room_hint()}")
        return slot

    def _batch_nbytes(self) -> int:
        h, w = self.sample_size
        return self.batch_size * h * w * 3 * self.pipeline.preprocess.dtype.itemsize

    def _shm_has_room(self) -> bool:
        """Whether /dev/shm can hold the slots this flow needs; if not, say what to change."""
        slots = self.engine.workers * self.engine.prefetch + SPARE_SLOTS
        need, free = slots * self._batch_nbytes(), _shm.room()
        if free is None or free >= need:
            return True
        self.notes.append(f"{_shm.SHM_DIR} has {_mb(free)} free, but {slots} batches of {_mb(self._batch_nbytes())} "
                          f"need {_mb(need)}: batches come through pipes instead (slower); "
                          f"{self._more_room_hint(need)}")
        return False

    def _more_room_hint(self, need: int | None = None) -> str:
        size = f"={math.ceil(2 * need / 2**28) * 256}m" if need else ""
        return (f"for shared memory, give it more room (docker run --shm-size{size}), or use a smaller "
                f"batch_size (-b) or fewer workers (-w)")

    def close(self) -> None:
        self.engine.close()
        if self._slots is not None:
            self._slots.close()
            self._slots = None

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f} MB" if nbytes >= 2**20 else f"{nbytes / 2**10:.0f} kB"


def final_size(samples, pipeline: SamplePipeline) -> tuple[int, int] | None:
    """Without a final size: the (H, W) that ``pipeline`` gives the first usable sample,
    after checking that the other images will end at it too (UsageError if the recipe
    leaves them at several sizes). None if none of the first ones is usable: the workers
    then say why, as failure rows. For ``flow``, and for any adapter that batches."""
    for sample in samples[:PROBE_SAMPLES]:
        try:
            image = pipeline.decoded(sample.path, exact=True)  # its size is compared with headers below
            size = pipeline.transformed(image, sample.key, 0).shape[:2]
        except Exception:  # noqa: BLE001 - a failure row once a worker meets it
            continue
        break
    else:
        return None
    # Does the recipe make any input this size (a Resize or a crop at the end)? Then the
    # images may differ. If not, they must all be the size of this one.
    import cv2

    h, w = image.shape[:2]
    try:
        fixed = pipeline.transformed(cv2.resize(image, (w + 13, h + 17)), sample.key, 0).shape[:2] == size
    except Exception:  # noqa: BLE001 - it failed only on the bigger copy: it does not
        fixed = False
    if not fixed:
        other = _first_of_another_size(samples, (h, w), pipeline)
        if other is not None:
            raise UsageError(f"images differ in size ({sample.key} {_hw((h, w))}, {other[0]} {_hw(other[1])}) "
                             f"and the recipe does not make them one size: {ONE_SIZE}")
    return size


def _first_of_another_size(samples, size: tuple[int, int], pipeline: SamplePipeline):
    """(key, (H, W)) of the first image whose decoded size is not ``size``, or None.

    Headers alone are read (:func:`~augkit.input.decoding.header_size`); a header that
    disagrees is confirmed by decoding, since orientation (TIFF's too) can turn an image around."""
    from augkit.input.decoding import header_size

    for sample in samples:
        shown = header_size(sample.path)
        if shown is None or shown == size:  # unreadable: a failure row later, not a size
            continue
        try:
            decoded = pipeline.decoded(sample.path, exact=True).shape[:2]
        except Exception:  # noqa: BLE001
            continue
        if decoded != size:
            return sample.key, decoded
    return None


def flow(source, recipe=None, **options: Any) -> Flow:
    """``(x, y)`` batches from a source (class folders, flat folder, CSV or split manifest)
    and a recipe (path, dict, Recipe or None), fresh augmentations every epoch.

    Options: ``batch_size=32``, ``shuffle=True``, ``seed`` (default: the recipe's, else 0),
    ``epochs=1`` (None = forever), ``workers`` (default: one per core; 0 = in this process),
    ``size=(H, W)`` (final shape of every sample), ``preprocess`` (None = uint8, "tf",
    "torch", "caffe", or ``(mean, std)`` on the 0-1 scale), ``channels_first=False``,
    ``drop_last=False``, ``split`` (rows of one split of a split manifest), ``max_pixels``,
    ``balance=False`` (draw every class equally often each epoch), and timm's MixUp / CutMix
    options ``mixup``, ``cutmix`` (Beta alphas, 0 = off), ``mix_prob=1.0``,
    ``switch_prob=0.5``, ``label_smoothing=0.0``; ``one_hot=True`` gives one-hot targets
    without mixing (a validation set for a soft-target loss).
    ``y`` holds class indices into ``.classes`` (-1 for unlabelled images), or with mixing
    or smoothing, soft targets: float32 (batch, classes), rows summing to 1. ``.failures``
    lists the samples left out (one row each: source, reason, message; a file that fails
    again in a later epoch is not listed again); ``.notes`` what to
    change when shared memory is short. Without ``size``, images the recipe leaves at
    several sizes raise UsageError here, before any batch. ``reduced_decode=False`` decodes
    every image whole (by default a JPEG that the recipe's first resize, or ``size`` without
    a recipe, shrinks is decoded at 1/2, 1/4 or 1/8 of its size: augkit.stages.decode_size).
    """
    return Flow(source, recipe, **options)
