"""augkit.stages.features.inference: how the backbone is run on prepared batches, and shards written whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mobilenet_like
from augkit.stages.backbones import feature_model, resolve_backbone
from augkit.core.errors import AugkitError
from augkit.stages.features.cache import Shard, write_shard
from augkit.stages.features.inference import BackboneRunner, batch_size_for, inference_plan, make_session


@pytest.fixture(scope="module")
def pixels_model(tmp_path_factory):
    """The tiny MobileNet v2-shaped model cut at its pooled features, taking uint8 images."""
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=4), path)
    return feature_model(path, resolve_backbone(str(path), input_size=64), pixels=True)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(("threads", "plan", "batch"), [(1, (1, 1), 2), (2, (2, 1), 2), (4, (4, 1), 2), (8, (4, 2), 4)])
def test_threads_become_single_threaded_streams_up_to_four(threads, plan, batch):
    assert inference_plan(threads) == plan
    assert batch_size_for(threads) == batch


def test_a_batch_gives_each_image_the_features_it_gets_alone(pixels_model):
    runner = BackboneRunner(make_session(pixels_model, 1), pixels_model, 48)
    batch = images(3)
    together = runner.run(batch)
    alone = np.concatenate([runner.run(batch[i:i + 1]) for i in range(3)])
    assert together.shape == (3, 48)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_a_feature_size_other_than_the_entry_says_names_the_fix(pixels_model):
    runner = BackboneRunner(make_session(pixels_model, 1), pixels_model, 1280)
    with pytest.raises(AugkitError, match="--feature-node"):
        runner.run(images(2))


def shard() -> Shard:
    return Shard(index=3, start=0, stop=3, plan="abc")


def test_write_shard_joins_the_parts_in_order_then_marks_the_shard_done(tmp_path):
    parts = [np.arange(8, dtype=np.float16).reshape(2, 4), np.full((1, 4), 9, np.float16)]
    rows = [["a.jpg", "cat", 0], ["b.jpg", "cat", 0], ["c.jpg", "dog", 0]]
    failures = [["d.jpg", "truncated", "d.jpg: truncated"]]

    write_shard(tmp_path, shard(), parts, rows, failures, "float16", 4)

    features = np.load(tmp_path / "features-00003.npy", mmap_mode="r")
    assert features.dtype == np.float16 and np.array_equal(features, np.concatenate(parts))
    record = json.loads((tmp_path / "features-00003.json").read_text())
    assert record == {"plan": "abc", "rows": rows, "failures": failures, "sources": [], "max_pixels": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features-00003.json", "features-00003.npy"]


class Unwritable:
    """A part that fails half-way through writing a shard (a full disk, a bug)."""

    def __len__(self):
        return 2

    def __array__(self, dtype=None, copy=None):
        raise OSError("No space left on device")


def test_a_shard_that_fails_half_way_leaves_nothing(tmp_path: Path):
    with pytest.raises(OSError):
        write_shard(tmp_path, shard(), [np.zeros((2, 4), np.float16), Unwritable()], [], [], "float16", 4)
    assert list(tmp_path.iterdir()) == []
