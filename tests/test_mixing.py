"""MixUp / CutMix: soft targets that say what was mixed, drawn from (seed, epoch, batch)
alone, mixed in place."""

from __future__ import annotations

import numpy as np
import pytest

import augkit
from augkit.core.errors import UsageError
from augkit.stages.mixing import BatchMixer, MixDraw, MixOptions, draw, mix_in_place, soft_targets
from imagefiles import class_folders, encoded, write_tree

COLOURS = {"black": 0, "grey": 100, "light": 200, "white": 250}


@pytest.fixture(scope="module")
def flat_colours(tmp_path_factory):
    """4 classes x 3 PNGs, each image one flat grey level that names its class."""
    files = {}
    for label, level in COLOURS.items():
        for i in range(3):
            files[f"{label}/{label}_{i}.png"] = encoded(np.full((20, 30, 3), level, np.uint8), "PNG")
    return write_tree(tmp_path_factory.mktemp("mix") / "data", files)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("mixflow") / "data", per_class=5)


def level_of(label_index: int) -> int:
    return list(COLOURS.values())[label_index]


def batches(source, recipe=None, workers=0, **options):
    with augkit.flow(source, recipe, batch_size=4, workers=workers, **options) as flow:
        return [(x.copy(), y.copy()) for x, y in flow], flow.classes


def test_soft_targets_are_rows_that_sum_to_one_with_smoothing_spread_as_timm_does():
    y = np.array([0, 2, 1, 1])
    t = soft_targets(y, 3, lam=0.7, smoothing=0.1)
    assert t.shape == (4, 3) and t.dtype == np.float32
    np.testing.assert_allclose(t.sum(axis=1), 1, rtol=1e-6)
    on, off = 1 - 0.1 + 0.1 / 3, 0.1 / 3
    np.testing.assert_allclose(t[0], 0.7 * np.array([on, off, off]) + 0.3 * np.array([off, on, off]), rtol=1e-6)


def test_cutmix_label_weight_is_the_area_truly_pasted(flat_colours):
    out, classes = batches(flat_colours, cutmix=1.0, size=(20, 30), epochs=3)
    checked = 0
    for x, y in out:
        n = len(y)
        for i in range(n // 2):
            own, partner = y[i].argmax(), y[n - 1 - i].argmax()
            if own == partner or y[i].max() == 1:
                continue
            pasted = (x[i, ..., 0] == level_of(int(partner))).mean()
            assert y[i, partner] == pytest.approx(pasted, abs=1e-6)
            assert y[n - 1 - i, own] == pytest.approx(pasted, abs=1e-6)  # the same box, the other way
            checked += 1
    assert checked >= 3


def test_mixup_label_weight_is_the_weight_of_the_pixels(flat_colours):
    out, _ = batches(flat_colours, mixup=1.0, size=(20, 30), preprocess=((0, 0, 0), (1, 1, 1)))
    x, y = out[0]
    n = len(y)
    lam = y[0].max() if y[0].argmax() != y[n - 1].argmax() else None
    assert lam is not None
    own, partner = level_of(int(y[0].argmax())) / 255, level_of(int(y[n - 1].argmax())) / 255
    np.testing.assert_allclose(x[0], lam * own + (1 - lam) * partner, atol=1e-5)


def test_mixing_is_identical_for_workers_0_1_2_and_differs_between_epochs(dataset):
    recipe = {"transforms": [{"RandomResizedCrop": {"size": [24, 24]}}]}
    options = dict(mixup=0.8, cutmix=1.0, label_smoothing=0.1, epochs=2, preprocess="tf")
    reference, _ = batches(dataset, recipe, 0, **options)
    for workers in (1, 2):
        other, _ = batches(dataset, recipe, workers, **options)
        assert all(np.array_equal(a, b) and np.array_equal(s, t) for (a, s), (b, t) in zip(reference, other))
    per_epoch = len(reference) // 2
    first = [y for _, y in reference[:per_epoch]]
    second = [y for _, y in reference[per_epoch:]]
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))


def test_the_draw_depends_on_seed_epoch_and_batch_only():
    options = MixOptions(mixup=0.8)
    assert draw(options, 0, 1, 2, 32, 32) == draw(options, 0, 1, 2, 32, 32)
    draws = {draw(options, s, e, b, 32, 32).lam for s in range(2) for e in range(4) for b in range(4)}
    assert len(draws) == 32


def test_both_kinds_are_drawn_as_switch_prob_says_and_mix_prob_leaves_batches_alone():
    options = MixOptions(mixup=0.8, cutmix=1.0, switch_prob=0.25, mix_prob=0.6)
    drawn = [draw(options, 0, 0, b, 32, 32) for b in range(4000)]
    unmixed = sum(d.lam == 1.0 and d.box is None for d in drawn) / len(drawn)
    mixed = [d for d in drawn if not (d.lam == 1.0 and d.box is None)]
    assert unmixed == pytest.approx(0.4, abs=0.03)
    assert sum(d.box is not None for d in mixed) / len(mixed) == pytest.approx(0.25, abs=0.03)
    mixup_lams = [d.lam for d in mixed if d.box is None]
    assert np.mean(mixup_lams) == pytest.approx(0.5, abs=0.02)  # Beta(a, a) is symmetric


def test_mixing_in_place_equals_mixing_with_the_flipped_batch():
    rng = np.random.default_rng(0)
    x = rng.random((5, 6, 7, 3), dtype=np.float32)
    expected = 0.3 * x + 0.7 * x[::-1]
    mix_in_place(x, MixDraw(0.3), channels_first=False)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)

    u = rng.integers(0, 256, (4, 3, 6, 7), dtype=np.uint8)
    flipped = u[::-1].copy()
    expected = u.copy()
    expected[:, :, 1:4, 2:6] = flipped[:, :, 1:4, 2:6]
    mix_in_place(u, MixDraw(0.5, (1, 4, 2, 6)), channels_first=True)
    assert np.array_equal(u, expected)


def test_uint8_batches_are_mixed_and_rounded_to_whole_levels():
    u = np.stack([np.full((2, 2, 3), 10, np.uint8), np.full((2, 2, 3), 20, np.uint8)])
    mix_in_place(u, MixDraw(0.25), channels_first=False)
    assert u.dtype == np.uint8 and u[0, 0, 0, 0] == 18 and u[1, 0, 0, 0] == 12  # 17.5 and 12.5 round to even


def test_the_mixer_pickles_and_mixes_as_it_did():
    import pickle

    mixer = BatchMixer(MixOptions(cutmix=1.0), seed=5, classes=3, channels_first=False)
    x = np.arange(4 * 8 * 8 * 3, dtype=np.float32).reshape(4, 8, 8, 3)
    y = np.array([0, 1, 2, 0])
    x2 = x.copy()
    t1 = mixer(x, y, 1, 2)
    t2 = pickle.loads(pickle.dumps(mixer))(x2, y, 1, 2)
    assert np.array_equal(x, x2) and np.array_equal(t1, t2)


@pytest.mark.parametrize("options, message", [
    ({"mixup": -1}, "mixup=-1: give the alpha"),
    ({"cutmix": float("nan")}, "cutmix=nan"),
    ({"mix_prob": 1.5}, "mix_prob=1.5: a probability"),
    ({"label_smoothing": 1.0}, "label_smoothing=1.0"),
])
def test_bad_options_are_usage_errors_naming_the_option(dataset, options, message):
    with pytest.raises(UsageError, match=message):
        augkit.flow(dataset, None, size=8, workers=0, **options)


def test_one_hot_gives_unmixed_one_hot_rows_of_the_class_indices(dataset):
    plain, _ = batches(dataset, None, shuffle=False)
    hot, _ = batches(dataset, None, shuffle=False, one_hot=True)
    assert len(plain) == len(hot) > 0
    for (x, y), (hx, hy) in zip(plain, hot):
        assert np.array_equal(x, hx)  # pixels untouched
        assert hy.dtype == np.float32 and np.array_equal(hy, np.eye(hy.shape[1], dtype=np.float32)[y])


def test_soft_targets_need_a_class_for_every_image(tmp_path):
    flat = write_tree(tmp_path / "flat", {"a.png": encoded(np.zeros((8, 8, 3), np.uint8), "PNG")})
    with pytest.raises(UsageError, match="1 of the 1 images have no class"):
        augkit.flow(flat, None, workers=0, mixup=0.8)
