"""augkit.stages.head.data: caches checked before they are trusted, validation held out by
image, rows read chunk by chunk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mobilenet_like
import separable
from augkit.core.errors import UsageError
from augkit.stages.features import FeatureOptions, cache_features
from augkit.stages.head import data

RECIPE = {"transforms": [{"HorizontalFlip": {"p": 0.5}}]}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A tiny backbone, class folders (6 images per class), a cache of 3 views each (the
    first plain, 2 images per shard) and a plain cache of other images."""
    root = tmp_path_factory.mktemp("head-data")
    model = root / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=1), model)
    separable.write_dataset(root / "train", per_class=6, seed=0)
    separable.write_dataset(root / "val", per_class=3, seed=1)
    from augkit.stages.backbones import resolve_backbone

    backbone = resolve_backbone(str(model), input_size=64)
    cache_features(root / "train", root / "views", backbone=backbone, recipe=RECIPE,
                   options=FeatureOptions(views=3, plain_first=True, shard_images=2), workers=0)
    cache_features(root / "val", root / "plain", backbone=backbone, workers=0)
    return root


@pytest.fixture
def copy(made, tmp_path):
    def of(name: str) -> Path:
        return Path(shutil.copytree(made / name, tmp_path / name))

    return of


def edit_meta(cache: Path, **changes) -> None:
    meta = json.loads((cache / "meta.json").read_text())
    meta.update(changes)
    (cache / "meta.json").write_text(json.dumps(meta))


# --- trusting a cache -----------------------------------------------------------------------


def test_a_complete_cache_opens_with_its_rows_keys_and_views(made):
    cache = data.open_cache(made / "views")
    assert cache.rows == 54 and len(cache.parts) == 9 and cache.classes == list(separable.CLASSES)
    assert cache.keys[:3] == ["blue_checker/blue_checker_00.png"] * 3 and cache.views[:3].tolist() == [0, 1, 2]


def test_a_folder_that_is_not_a_cache_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not a feature cache"):
        data.open_cache(tmp_path)


def test_a_cache_that_does_not_exist_or_is_a_file_is_said_to_be_so(tmp_path):
    from augkit.stages.features import load_features

    with pytest.raises(UsageError) as refused:
        data.open_cache(tmp_path / "nonexist")
    assert str(refused.value) == (f"CACHE {tmp_path / 'nonexist'}: does not exist; make the feature cache with "
                                  f"`augkit cache-features SRC -o {tmp_path / 'nonexist'}`")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match=r"^--val .*notes.txt: is a file, not a feature cache"):
        data.open_cache(tmp_path / "notes.txt", "--val")
    with pytest.raises(UsageError, match=r"nonexist: does not exist; make the feature cache"):
        load_features(tmp_path / "nonexist")


def test_an_incomplete_cache_is_refused_with_the_fix(copy):
    cache = copy("views")
    edit_meta(cache, complete=False)
    with pytest.raises(UsageError, match="incomplete.*rerun the same `augkit cache-features`"):
        data.open_cache(cache)


def test_a_shard_its_meta_does_not_list_is_a_mixed_cache(copy):
    cache = copy("views")
    shutil.copy(cache / "features-00000.npy", cache / "features-00042.npy")
    with pytest.raises(UsageError, match="mixed: features-00042.npy"):
        data.open_cache(cache)


def test_a_shard_of_other_rows_than_its_meta_says_is_a_mixed_cache(copy):
    cache = copy("views")
    np.save(cache / "features-00001.npy", np.zeros((5, 48), np.float16))
    with pytest.raises(UsageError, match="mixed: holds"):
        data.open_cache(cache)


def test_a_cache_made_with_another_resize_rule_is_stale(copy):
    cache = copy("views")
    meta = json.loads((cache / "meta.json").read_text())
    edit_meta(cache, preprocessing={**meta["preprocessing"], "resample": "opencv-bilinear"})
    with pytest.raises(UsageError, match="stale.*--overwrite"):
        data.open_cache(cache)


def test_an_unreadable_meta_is_a_usage_error(copy):
    cache = copy("views")
    (cache / "meta.json").write_text("{not json")
    with pytest.raises(UsageError, match="unreadable"):
        data.open_cache(cache)


def test_a_val_cache_of_another_backbone_is_refused(made, copy):
    val = copy("plain")
    edit_meta(val, weights_sha256="0" * 64)
    with pytest.raises(UsageError, match="mixed: made with another weights sha256"):
        data.check_same_features(data.open_cache(made / "views"), data.open_cache(val))


def test_a_val_cache_of_the_training_images_is_refused(made):
    train = data.open_cache(made / "views")
    with pytest.raises(UsageError, match="holds 18 images of the training cache"):
        data.check_same_features(train, train)


def test_a_val_class_the_training_cache_lacks_is_refused(made, copy):
    val = copy("plain")
    meta = json.loads((val / "meta.json").read_text())
    edit_meta(val, classes=["zebra", *meta["classes"][1:]])
    with pytest.raises(UsageError, match="class 'zebra' has no training images"):
        data.check_same_features(data.open_cache(made / "views"), data.open_cache(val))


# --- validation images ----------------------------------------------------------------------


def test_held_out_images_take_all_their_views_and_a_fraction_of_each_class(made):
    cache = data.open_cache(made / "views")
    train, val = data.hold_out(cache, 0.34, seed=0)
    train_keys, val_keys = {cache.keys[r] for r in train}, {cache.keys[r] for r in val}
    assert not train_keys & val_keys and len(train) + len(val) == cache.rows
    assert len(val) == 3 * len(val_keys)
    per_class = {c: sum(k.startswith(c) for k in val_keys) for c in separable.CLASSES}
    assert per_class == {c: 2 for c in separable.CLASSES}  # 6 * 0.34 = 2.04 per class


def test_the_held_out_images_depend_on_the_seed_only(made):
    cache = data.open_cache(made / "views")
    first = data.hold_out(cache, 0.5, seed=0)[1]
    assert (data.hold_out(cache, 0.5, seed=0)[1] == first).all()
    assert not all((data.hold_out(cache, 0.5, seed=s)[1] == first).all() for s in (1, 2, 3))


def test_no_fraction_holds_nothing_out(made):
    cache = data.open_cache(made / "views")
    train, val = data.hold_out(cache, 0, seed=0)
    assert len(train) == cache.rows and len(val) == 0


def test_validation_judges_the_plain_view_when_the_cache_has_one(made):
    views, plain = data.open_cache(made / "views"), data.open_cache(made / "plain")
    judged = data.judged_rows(views, np.arange(views.rows))
    assert (views.views[judged] == 0).all() and len(judged) == 18
    assert len(data.judged_rows(plain, np.arange(plain.rows))) == plain.rows


def test_balanced_weights_are_scikit_learns():
    utils = pytest.importorskip("sklearn.utils")
    labels = np.array([0, 0, 0, 0, 2, 2, 1])
    expected = utils.compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=labels)
    assert np.allclose(data.class_weights(labels, 3, balanced=True), expected)
    assert (data.class_weights(labels, 4, balanced=False) == 1).all()


# --- reading rows ---------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["every other row", "long stretches"])
def test_rows_kept_in_memory_and_rows_read_each_pass_are_the_same_chunks(made, pattern):
    cache = data.open_cache(made / "views")
    index = np.arange(1, cache.rows, 2) if pattern == "every other row" else np.delete(np.arange(cache.rows), [3, 4, 5])
    labels, weights = cache.labels[index], np.ones(len(index))
    chunk = 4 if pattern == "every other row" else 4096
    kept = data.Rows(cache, index, labels, weights, memory=1 << 30, chunk=chunk)
    streamed = data.Rows(cache, index, labels, weights, memory=0, chunk=chunk)
    assert kept.kept and not streamed.kept
    for _ in range(2):  # a second pass: from memory, and from the shards again
        a, b = list(kept), list(streamed)
        assert len(a) == len(b)
        for (xa, ya, wa), (xb, yb, wb) in zip(a, b):
            assert xa.dtype == np.float32 and (xa == xb).all() and (ya == yb).all() and len(xa) <= chunk
    every_row = np.concatenate([np.asarray(p, np.float32) for p in cache.parts])
    assert (np.concatenate([x for x, _, _ in kept]) == every_row[index]).all()


def test_a_cache_identity_changes_when_the_cache_is_rebuilt(made, copy):
    cache = copy("plain")
    before = data.cache_identity(data.open_cache(cache))
    edit_meta(cache, seed=5)
    assert data.cache_identity(data.open_cache(cache)) != before
