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

from augkit.batches import SamplePipeline


def _epoch_cell(epoch: int):
    # A 64-bit integer in multiprocessing's shared heap: forked workers inherit the mapping,
    # spawned ones receive its file descriptor. The heap unlinks its file as it creates it,
    # so nothing is left behind in /dev/shm however the process ends.
    return multiprocessing.RawValue("q", epoch)


class AugkitDataset(Dataset):
    """``(image tensor, label)`` pairs: float32 CHW by default (``preprocess="torch"``)."""

    def __init__(self, source, recipe=None, *, seed: int | None = None, size=None, preprocess: Any = "torch",
                 channels_first: bool = True, split: str | None = None, max_pixels: int | None = None):
        from augkit.discovery import discover
        from augkit.recipes import load_recipe

        self.dataset = discover(source, split=split)
        loaded = load_recipe(recipe) if recipe is not None else None
        seed = seed if seed is not None else ((loaded.seed if loaded else None) or 0)
        size = (size, size) if isinstance(size, int) else size
        self.pipeline = SamplePipeline(loaded, seed=seed, size=size, preprocess=preprocess,
                                       channels_first=channels_first, max_pixels=max_pixels)
        self.classes = self.dataset.classes
        self.class_to_index = self.dataset.class_to_index
        self._epoch = _epoch_cell(0)

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
        sample = self.dataset.samples[index]
        array = self.pipeline(sample.path, sample.key, self._epoch.value)
        label = self.class_to_index.get(sample.label, -1)
        return torch.from_numpy(array.copy() if not array.flags.c_contiguous else array), label

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
