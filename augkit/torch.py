"""PyTorch adapter: a map-style ``torch.utils.data.Dataset`` over a source and a recipe.

    from augkit.torch import AugkitDataset
    data = AugkitDataset("data/train", "recipes/standard.yaml", preprocess="torch")
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, num_workers=2)
    for epoch in range(10):
        data.set_epoch(epoch)              # before iterating the loader for that epoch
        for x, y in loader: ...

Sample ``i`` in epoch ``e`` is augmented with ``derive_seed(seed, e, key_i)``: different
every epoch, never repeated across DataLoader workers (albumentations alone repeats one
random stream in every worker), and identical for any ``num_workers``.

The rule: call ``set_epoch(e)`` before iterating the loader for epoch ``e``, never while
it is being iterated. The epoch lives in a shared-memory cell that the DataLoader's workers
share with the dataset, so it reaches them however the loader is configured: workers
started per epoch or ``persistent_workers=True``, ``fork``, ``spawn`` or ``forkserver``.
Workers read it as they build each sample, so a change mid-epoch would reach the samples
still to come. A dataset that never hears ``set_epoch`` stays at epoch 0 and gives the same
augmentations every epoch (the convention of torch's ``DistributedSampler``). A process
asked for the same draw of a sample twice at one epoch (a second epoch without
``set_epoch``, with ``persistent_workers`` or ``num_workers=0``; or a sampler drawing with
replacement) warns once, as the two would be augmented alike.

A sample that cannot be used (a damaged file, a recipe that fails on it) never stops
training: it is listed in ``data.failures`` (also when it failed in a DataLoader worker)
and the dataset gives the next usable sample in its place (index ``i + 1``, ``i + 2``, ...,
each augmented as itself), so batches keep their size with the default collate. The
substitute depends only on the index and the files, never on which worker asked.
``data.targets`` (class index per sample), ``data.classes`` and ``data.sample_weights``
(one over its class's count: for ``WeightedRandomSampler``) serve class balancing;
``data.balanced_sampler()`` draws every class equally often, as ``flow(balance=True)`` does,
from ``(seed, epoch)``.

MixUp / CutMix (timm's options: ``mixup``, ``cutmix``, ``mix_prob``, ``switch_prob``,
``label_smoothing``) is a batch transform: ``x, y = data.mix(x, y, b)`` for batch ``b`` of
the epoch, mixed as ``(seed, epoch, b)`` says, in place on a CPU batch; ``y`` becomes soft
targets (batch, classes) for ``torch.nn.functional.cross_entropy``, which takes them.
"""

from __future__ import annotations

import multiprocessing
import operator
from multiprocessing.context import get_spawning_popen
from typing import Any

try:
    import torch
    from torch.utils.data import Dataset
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("augkit.torch needs PyTorch: pip install torch") from exc

from augkit.stages.batches import SamplePipeline
from augkit.stages.mixing import MixOptions, mix_in_place, mixer_for, soft_targets
from augkit.stages.sampling import balanced_order, draw_numbers, require_classes
from augkit.core.errors import AugkitError
from augkit.core.failures import FailureLog, failure_row
from augkit.core.seeds import run_seed



def _epoch_cell(epoch: int):
    # A 64-bit integer in multiprocessing's shared heap: forked workers inherit the mapping,
    # spawned ones receive its file descriptor. The heap unlinks its file as it creates it,
    # so nothing is left behind in /dev/shm however the process ends.
    return multiprocessing.RawValue("q", epoch)


class AugkitDataset(Dataset):
    """``(image tensor, label)`` pairs: float32 CHW by default (``preprocess="torch"``)."""

    def __init__(self, source, recipe=None, *, seed: int | None = None, size=None, preprocess: Any = "torch",
                 channels_first: bool = True, split: str | None = None, max_pixels: int | None = None,
                 mixup: float = 0.0, cutmix: float = 0.0, mix_prob: float = 1.0, switch_prob: float = 0.5,
                 label_smoothing: float = 0.0, one_hot: bool = False):
        from augkit.input.discovery import discover
        from augkit.recipes import load_recipe

        self.dataset = discover(source, split=split)
        loaded = load_recipe(recipe) if recipe is not None else None
        self.seed = seed = run_seed(seed, loaded)
        self.pipeline = SamplePipeline(loaded, seed=seed, size=size, preprocess=preprocess,
                                       channels_first=channels_first, max_pixels=max_pixels)
        self.classes = self.dataset.classes
        self.class_to_index = self.dataset.class_to_index
        self.targets = [self.class_to_index.get(s.label, -1) for s in self.dataset.samples]
        self._mixer = mixer_for(MixOptions(mixup, cutmix, mix_prob, switch_prob, label_smoothing, one_hot), seed,
                                self.classes, [s.label for s in self.dataset.samples], channels_first)
        self._failures = FailureLog()
        self._epoch = _epoch_cell(0)
        self._fetched: tuple[int, set] = (-1, set())  # (epoch, the (index, draw) asked for): see _note_fetch
        self._warned = False

    @property
    def sample_weights(self) -> list[float]:
        """1 / (images of the sample's class): ``WeightedRandomSampler(data.sample_weights,
        len(data))`` then draws every class equally often in expectation."""
        counts: dict[int, int] = {}
        for t in self.targets:
            counts[t] = counts.get(t, 0) + 1
        return [1.0 / counts[t] for t in self.targets]

    def balanced_sampler(self) -> BalancedSampler:
        """A sampler for the DataLoader (``sampler=``, without ``shuffle``) that draws every
        class equally often each epoch, from ``(seed, epoch)``: ``flow(balance=True)``'s order."""
        require_classes([s.label for s in self.dataset.samples], "balanced_sampler()")
        return BalancedSampler(self)

    def mix(self, x, y, batch: int):
        """MixUp / CutMix batch ``batch`` of the current epoch: ``(x, soft targets)``.

        ``x`` (N, C, H, W, or N, H, W, C without ``channels_first``) is mixed in place, through
        NumPy on the CPU (a GPU tensor is mixed with torch's own operations, on a flipped copy);
        ``y`` holds the batch's class indices. The draw depends on (seed, epoch, batch) only,
        so any ``num_workers`` gives the same mix."""
        if self._mixer is None:
            raise AugkitError("mix() needs mixup=, cutmix=, label_smoothing= or one_hot=True when the dataset is made")
        labels = y.cpu().numpy() if isinstance(y, torch.Tensor) else y
        draw = self._mixer.draw_for(tuple(x.shape), self.epoch, batch)
        if x.device.type == "cpu":
            mix_in_place(x.numpy(), draw, self.pipeline.channels_first)
        else:
            _mix_on_device(x, draw, self.pipeline.channels_first)
        targets = soft_targets(labels, self._mixer.classes, draw.lam, self._mixer.options.label_smoothing)
        return x, torch.from_numpy(targets).to(x.device)

    @property
    def failures(self) -> list[dict[str, str]]:
        """Every sample that could not be used so far, in any process: source, reason, message."""
        return self._failures.rows()

    @property
    def epoch(self) -> int:
        return self._epoch.value

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Augment with epoch ``epoch`` from now on, in this process and in every worker."""
        self._epoch.value = operator.index(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        n = len(self.dataset)
        numbered = isinstance(index, Draw)  # from balanced_sampler(): a repeat within the epoch is told apart
        draw = index.draw if numbered else 0
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        self._note_fetch(index % n, draw, numbered)
        for step in range(n):  # a scraper's run of HTML pages can be long; the whole set is the bound
            k = (index + step) % n
            sample = self.dataset.samples[k]
            try:
                array = self.pipeline(sample.path, sample.key, self._epoch.value, draw)
            except Exception as exc:  # noqa: BLE001 - one bad sample is a row, not the end of training
                self._failures.add(failure_row(sample.key, exc))
                continue
            return torch.from_numpy(array.copy() if not array.flags.c_contiguous else array), self.targets[k]
        raise AugkitError(f"none of the {n} samples could be used (e.g. {self.failures[-1]['message']}); "
                          f"see data.failures")

    def _note_fetch(self, index: int, draw: int, numbered: bool) -> None:
        """Warn once per process when one draw of a sample is asked for twice at one epoch:
        it would be augmented alike both times (see the module's docstring). With draws
        ``numbered`` by balanced_sampler() only a missed set_epoch can cause it."""
        if self.pipeline.recipe is None:  # nothing random: the same sample twice is no harm
            return
        epoch = self._epoch.value
        if self._fetched[0] != epoch:
            self._fetched = (epoch, set())
        seen = self._fetched[1]
        if (index, draw) in seen and not self._warned:
            import warnings

            self._warned = True
            sampler = ("" if numbered else ", and for class balance use sampler=data.balanced_sampler() (a sampler "
                       "drawing with replacement repeats augmentations)")
            warnings.warn(f"AugkitDataset: sample {index} was asked for twice at epoch {epoch}, so it gets the same "
                          f"augmentation twice; call data.set_epoch(epoch) before each epoch's loop{sampler}",
                          stacklevel=3)
        seen.add((index, draw))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if get_spawning_popen() is None:
            # A copy or a save, not a worker being started: it carries the epoch's value and
            # gets a cell of its own (and shared memory can only travel to a new process).
            state["_epoch"] = self._epoch.value
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_epoch"], int):
            state["_epoch"] = _epoch_cell(state["_epoch"])
        self.__dict__.update(state)


def _mix_on_device(x, draw, channels_first: bool) -> None:
    """timm's way, on the tensor's device: the batch mixed with its flipped copy."""
    if draw.lam >= 1.0:
        return
    if draw.box is None:
        flipped = x.flip(0).mul_(1.0 - draw.lam)  # a copy, made before x changes
        x.mul_(draw.lam).add_(flipped)
        return
    top, bottom, left, right = draw.box
    if channels_first:
        x[:, :, top:bottom, left:right] = x.flip(0)[:, :, top:bottom, left:right]
    else:
        x[:, top:bottom, left:right] = x.flip(0)[:, top:bottom, left:right]


class Draw(int):
    """A sample index that also says how many times the sample was drawn before it in the
    epoch, so a repeat is augmented anew (:func:`augkit.stages.sampling.draw_numbers`)."""

    def __new__(cls, index: int, draw: int = 0):
        self = super().__new__(cls, index)
        self.draw = draw
        return self

    def __reduce__(self):  # to DataLoader workers, whole
        return Draw, (int(self), self.draw)


class BalancedSampler(torch.utils.data.Sampler):
    """The indices of one epoch of an :class:`AugkitDataset`, every class drawn equally often
    (:func:`augkit.stages.sampling.balanced_order`), for the dataset's current epoch."""

    def __init__(self, data: AugkitDataset):
        self.data = data

    def __iter__(self):
        order = balanced_order(self.data.targets, self.data.seed, self.data.epoch)
        return (Draw(i, d) for i, d in zip(order.tolist(), draw_numbers(order).tolist()))

    def __len__(self) -> int:
        return len(self.data)
