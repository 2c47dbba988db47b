"""The order of an epoch; here balance=True: every class drawn equally often, from (seed, epoch)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import augkit
from augkit.core.errors import UsageError
from augkit.stages.sampling import balanced_order, draw_numbers, epoch_order
from imagefiles import encoded, write_tree
from conftest import make_structured_rgb

SKEWED = [0] * 50 + [1] * 7 + [2] * 3  # 60 samples, 50/7/3


def test_a_balanced_epoch_draws_each_class_equally_often():
    order = balanced_order(SKEWED, seed=0, epoch=0)
    assert len(order) == len(SKEWED)
    assert Counter(np.asarray(SKEWED)[order].tolist()) == {0: 20, 1: 20, 2: 20}


def test_left_over_draws_go_to_classes_at_random_so_classes_are_equal_in_expectation():
    targets = [0] * 40 + [1] * 20 + [2] * 2  # 62 draws: 20 each and 2 left over
    totals = Counter()
    for epoch in range(300):
        counts = Counter(np.asarray(targets)[balanced_order(targets, 1, epoch)].tolist())
        assert sorted(counts.values()) == [20, 21, 21]
        totals.update(counts)
    for c in range(3):
        assert totals[c] / 300 == pytest.approx(62 / 3, abs=0.15)


def test_within_a_class_images_take_turns():
    order = balanced_order(SKEWED, seed=0, epoch=0)
    drawn = Counter(order.tolist())
    assert {drawn[i] for i in range(57, 60)} <= {6, 7}  # class 2: 3 images drawn 20 times
    assert {drawn[i] for i in range(50, 57)} <= {2, 3}  # class 1: 7 images drawn 20 times
    assert {drawn[i] for i in range(50)} <= {0, 1} and sum(drawn[i] for i in range(50)) == 20


def test_a_balanced_order_is_deterministic_per_seed_and_epoch_and_new_each_epoch():
    assert np.array_equal(balanced_order(SKEWED, 3, 2), balanced_order(SKEWED, 3, 2))
    assert not np.array_equal(balanced_order(SKEWED, 3, 2), balanced_order(SKEWED, 3, 3))
    assert not np.array_equal(balanced_order(SKEWED, 3, 2), balanced_order(SKEWED, 4, 2))


def test_without_balance_an_epoch_is_every_sample_once():
    assert sorted(epoch_order(10, 0, 1, shuffle=True).tolist()) == list(range(10))
    assert epoch_order(5, 0, 1, shuffle=False).tolist() == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    files = {}
    for c, (label, n) in enumerate({"cat": 2, "dog": 4, "owl": 12}.items()):
        for i in range(n):
            files[f"{label}/{label}_{i}.jpg"] = encoded(make_structured_rgb(16, 16, seed=10 * c + i), "JPEG")
    return write_tree(tmp_path_factory.mktemp("skewed") / "data", files)


def labels_of(source, workers, **options):
    with augkit.flow(source, None, batch_size=5, workers=workers, balance=True, **options) as flow:
        return [y.tolist() for _, y in flow]


def test_flow_with_balance_draws_every_class_equally_and_the_same_for_any_worker_count(skewed):
    per_batch = labels_of(skewed, 0, epochs=2)
    assert per_batch == labels_of(skewed, 2, epochs=2)
    first_epoch = [label for batch in per_batch[:4] for label in batch]
    assert Counter(first_epoch) == {0: 6, 1: 6, 2: 6}
    assert per_batch[:4] != per_batch[4:]


def test_draws_are_numbered_in_the_order_of_the_epoch():
    assert draw_numbers(np.array([3, 1, 3, 3, 1, 0])).tolist() == [0, 0, 1, 2, 1, 0]
    assert draw_numbers(np.random.default_rng(0).permutation(9)).tolist() == [0] * 9
    assert draw_numbers(np.array([], np.int64)).tolist() == []


def test_an_image_drawn_again_in_an_epoch_is_augmented_anew_the_same_for_any_worker_count(skewed):
    """cat has 2 images and is drawn 6 times an epoch: 6 different augmentations, not 3
    copies of 2; draw 0 is augmented as without balance."""
    recipe = {"transforms": [{"RandomBrightnessContrast": {"brightness_limit": 0.4, "contrast_limit": 0.4, "p": 1.0}}]}

    def cats(workers):
        with augkit.flow(skewed, recipe, batch_size=6, workers=workers, balance=True, epochs=1, seed=3) as flow:
            return [x[i].tobytes() for x, y in flow for i in np.flatnonzero(y == 0)]

    drawn = cats(0)
    assert len(drawn) == 6 and len(set(drawn)) == 6
    assert cats(2) == drawn
    with augkit.flow(skewed, recipe, batch_size=18, workers=0, shuffle=False, epochs=1, seed=3) as plain:
        x, y = next(iter(plain))
        firsts = {x[i].tobytes() for i in np.flatnonzero(y == 0)}
    assert firsts <= set(drawn)  # the first draw of each cat is its augmentation without balance


def test_balance_needs_classes_and_a_shuffled_order(skewed, tmp_path):
    with pytest.raises(UsageError, match="drop shuffle=False"):
        augkit.flow(skewed, None, workers=0, balance=True, shuffle=False)
    flat = write_tree(tmp_path / "flat", {"a.jpg": encoded(make_structured_rgb(8, 8), "JPEG")})
    with pytest.raises(UsageError, match="1 of the 1 images have no class"):
        augkit.flow(flat, None, workers=0, balance=True)
