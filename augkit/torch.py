"""PyTorch adapter: a map-style ``torch.utils.data.Dataset`` over a source and a recipe.

    from augkit.torch import AugkitDataset
    data = AugkitDataset("data/train", "recipes/standard.yaml", preprocess="torch")
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, num_workers=2)
    for epoch in range(10):
        data.set_epoch(epoch)              # before the loader starts the epoch
        for x, y in loader: ...

Sample ``i`` in epoch ``e`` is augmented with ``derive_seed(seed, e, key_i)``: different
every epoch, never repeated across DataLoader workers (albumentations alone repeats one
random stream in every worker), and identical for ``num_workers`` 0 and 2. ``set_epoch``
reaches the workers when the DataLoader starts them for an epoch, which is the default;
with ``persistent_workers=True`` the workers keep the epoch they started with.
"""

from __future__ import annotations

from typing import Any

try:
    import torch
    from torch.utils.data import Dataset
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("augkit.torch needs PyTorch: pip install torch") from exc

from augkit.batches import SamplePipeline


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
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample = self.dataset.samples[index]
        array = self.pipeline(sample.path, sample.key, self.epoch)
        label = self.class_to_index.get(sample.label, -1)
        return torch.from_numpy(array.copy() if not array.flags.c_contiguous else array), label
