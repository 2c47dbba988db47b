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
augmentations every epoch (the convention of torch's ``DistributedSampler``).

A sample that cannot be used (a damaged file, a recipe that fails on it) never stops
training: it is listed in ``data.failures`` (also when it failed in a DataLoader worker)
and the dataset gives the next usable sample in its place (index ``i + 1``, ``i + 2``, ...,
each augmented as itself), so batches keep their size with the default collate. The
substitute depends only on the index and the files, never on which worker asked.
``data.targets`` (class index per sample), ``data.classes`` and ``data.sample_weights``
(one over its class's count: for ``WeightedRandomSampler``) serve class balancing.
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
                 channels_first: bool = True, split: str | None = None, max_pixels: int | None = None):
        from augkit.input.discovery import discover
        from augkit.recipes import load_recipe

        self.dataset = discover(source, split=split)
        loaded = load_recipe(recipe) if recipe is not None else None
        seed = run_seed(seed, loaded)
        size = (size, size) if isinstance(size, int) else size
        self.pipeline = SamplePipeline(loaded, seed=seed, size=size, preprocess=preprocess,
                                       channels_first=channels_first, max_pixels=max_pixels)
        self.classes = self.dataset.classes
        self.class_to_index = self.dataset.class_to_index
        self.targets = [self.class_to_index.get(s.label, -1) for s in self.dataset.samples]
        self._failures = FailureLog()
        self._epoch = _epoch_cell(0)

    @property
    def sample_weights(self) -> list[float]:
        """1 / (images of the sample's class): ``WeightedRandomSampler(data.sample_weights,
        len(data))`` then draws every class equally often in expectation."""
        counts: dict[int, int] = {}
        for t in self.targets:
            counts[t] = counts.get(t, 0) + 1
        return [1.0 / counts[t] for t in self.targets]

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
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        for step in range(n):  # a scraper's run of HTML pages can be long; the whole set is the bound
            k = (index + step) % n
            sample = self.dataset.samples[k]
            try:
                array = self.pipeline(sample.path, sample.key, self._epoch.value)
            except Exception as exc:  # noqa: BLE001 - one bad sample is a row, not the end of training
                self._failures.add(failure_row(sample.key, exc))
                continue
            return torch.from_numpy(array.copy() if not array.flags.c_contiguous else array), self.targets[k]
        raise AugkitError(f"none of the {n} samples could be used (e.g. {self.failures[-1]['message']}); "
                          f"see data.failures")

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
