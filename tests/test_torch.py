"""`augkit.torch.AugkitDataset`: a torch Dataset with per-epoch, per-sample seeds."""

from __future__ import annotations

import multiprocessing
import pickle
import re

import pytest

torch = pytest.importorskip("torch")

from augkit.torch import AugkitDataset  # noqa: E402
from imagefiles import class_folders, write_tree  # noqa: E402

RECIPE = {"transforms": [{"HorizontalFlip": {"p": 0.5}}, {"RandomResizedCrop": {"size": [20, 20], "scale": [0.3, 1.0]}},
                         {"ColorJitter": {"p": 0.8}}]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return AugkitDataset(class_folders(tmp_path_factory.mktemp("torch") / "data", per_class=4), RECIPE)


def epoch_batches(dataset, num_workers, epoch=0):
    dataset.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, num_workers=num_workers)
    return [(x.clone(), y.clone()) for x, y in loader]


def same(a, b):
    return all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b)) and len(a) == len(b)


def epochs_through(dataset, epochs, **loader_options):
    """The batches of each epoch, through ONE DataLoader, calling set_epoch before each."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, **loader_options)
    seen = []
    for e in epochs:
        dataset.set_epoch(e)
        seen.append([(x.clone(), y.clone()) for x, y in loader])
    return seen


def start_method(name):
    if name not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {name!r} start method on this platform")
    return name


def test_items_are_tensors_in_torch_layout(dataset):
    x, y = dataset[0]
    assert x.shape == (3, 20, 20) and x.dtype == torch.float32 and y == 0
    assert dataset.classes == ["cat", "dog", "owl"] and len(dataset) == 12


@pytest.mark.filterwarnings("ignore:AugkitDataset. sample")  # the same epoch twice, on purpose
def test_identical_for_zero_and_two_dataloader_workers(dataset):
    assert same(epoch_batches(dataset, 0), epoch_batches(dataset, 2))


def test_no_two_samples_share_an_augmentation_across_workers(tmp_path):
    # Twelve copies of one image: any repeated random stream would repeat an output.
    data = class_folders(tmp_path / "d", classes=("a",), per_class=1)
    source = next((data / "a").iterdir()).read_bytes()
    for i in range(12):
        (data / "a" / f"copy_{i}.jpg").write_bytes(source)
    outputs = torch.cat([x for x, _ in epoch_batches(AugkitDataset(data, RECIPE), 2)])
    distinct = {bytes(t.numpy().tobytes()) for t in outputs}
    assert len(distinct) == len(outputs)


def test_set_epoch_gives_new_augmentations(dataset):
    assert not same(epoch_batches(dataset, 0, epoch=0), epoch_batches(dataset, 0, epoch=1))
    assert same(epoch_batches(dataset, 0, epoch=1), epoch_batches(dataset, 0, epoch=1))


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_persistent_workers_see_every_epoch(dataset, context):
    # Workers that outlive an epoch were started with the dataset as it was then: the epoch
    # must reach them afterwards, through fork's inherited memory or spawn's pickles alike.
    epochs = (0, 1, 2)
    seen = epochs_through(dataset, epochs, num_workers=2, persistent_workers=True,
                          multiprocessing_context=start_method(context))
    assert not same(seen[0], seen[1]) and not same(seen[1], seen[2])
    assert all(same(got, epoch_batches(dataset, 0, epoch=e)) for got, e in zip(seen, epochs))


@pytest.mark.parametrize("num_workers", [1, 2])
def test_epoch_e_is_the_same_with_and_without_persistent_workers(dataset, num_workers):
    epochs = (0, 1, 2, 1)
    options = dict(num_workers=num_workers, multiprocessing_context=start_method("fork"))
    persistent = epochs_through(dataset, epochs, persistent_workers=True, **options)
    assert all(same(a, b) for a, b in zip(persistent, epochs_through(dataset, epochs, **options)))
    assert same(persistent[1], persistent[3]) and not same(persistent[0], persistent[1])


def test_a_copy_keeps_its_epoch_and_its_own_persistent_workers_follow_it(dataset):
    dataset.set_epoch(3)
    copy = pickle.loads(pickle.dumps(dataset))  # a copy is not a worker: it gets a cell of its own
    dataset.set_epoch(0)
    assert copy.epoch == 3 and dataset.epoch == 0
    seen = epochs_through(copy, (1, 2), num_workers=2, persistent_workers=True,
                          multiprocessing_context=start_method("fork"))
    assert dataset.epoch == 0
    assert same(seen[0], epoch_batches(dataset, 0, epoch=1)) and same(seen[1], epoch_batches(dataset, 0, epoch=2))


def test_a_torch_model_trains_for_an_epoch(dataset):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 3))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# --- a bad file never stops training ----------------------------------------------------------


@pytest.fixture
def with_bad_files(tmp_path):
    from imagefiles import bad_images, write_tree

    root = class_folders(tmp_path / "data", per_class=4)
    cut, _ = bad_images()["cut.jpg"]
    write_tree(root, {"cat/cat_1.jpg": cut, "owl/owl_3.jpg": b""})  # two of the twelve are unusable
    return root


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_bad_image_is_replaced_by_the_next_sample_and_listed_even_from_workers(with_bad_files, num_workers):
    data = AugkitDataset(with_bad_files, RECIPE)
    clean = AugkitDataset(with_bad_files, RECIPE)

    batches = epoch_batches(data, num_workers)

    assert [len(y) for _, y in batches] == [5, 5, 2]  # every batch full: the default collate works
    xs = torch.cat([x for x, _ in batches])
    keys = [s.key for s in data.dataset.samples]
    assert keys[1] == "cat/cat_1.jpg" and torch.equal(xs[1], clean[2][0])  # sample 2 stands in for sample 1
    assert torch.equal(xs[11], clean[0][0])  # the last one, owl_3, wraps round to sample 0
    assert sorted((f["source"], f["reason"]) for f in data.failures) == [("cat/cat_1.jpg", "truncated"),
                                                                        ("owl/owl_3.jpg", "empty")]


def test_a_dataset_with_nothing_usable_says_so_in_one_line(tmp_path):
    from imagefiles import write_tree

    from augkit.core.errors import AugkitError

    data = AugkitDataset(write_tree(tmp_path / "bad", {"a/x.jpg": b"", "b/y.jpg": b"<html>"}), RECIPE)
    with pytest.raises(AugkitError, match="none of the 2 samples could be used"):
        data[0]


def test_targets_and_sample_weights_serve_a_weighted_sampler(tmp_path):
    from imagefiles import class_folders as folders

    root = folders(tmp_path / "a", classes=("big",), per_class=6)
    folders(root, classes=("small",), per_class=2)
    data = AugkitDataset(root, RECIPE)

    assert data.classes == ["big", "small"] and data.targets == [0] * 6 + [1] * 2
    assert data.sample_weights == [1 / 6] * 6 + [1 / 2] * 2
    sampler = torch.utils.data.WeightedRandomSampler(data.sample_weights, 4000, generator=torch.Generator().manual_seed(0))
    drawn = torch.tensor([data.targets[i] for i in sampler])
    assert abs(float((drawn == 1).float().mean()) - 0.5) < 0.05  # each class equally often


def test_a_long_run_of_bad_files_is_bridged_by_the_next_good_sample(tmp_path):
    from imagefiles import write_tree

    root = class_folders(tmp_path / "data", classes=("ants",), per_class=2)
    write_tree(root, {f"bees/scraped_{i:02d}.jpg": b"<html>429 Too Many Requests</html>" for i in range(20)})
    data = AugkitDataset(root, RECIPE)  # ants_0, ants_1, then 20 pages
    x, y = data[5]
    assert torch.equal(x, data[0][0]) and y == 0  # after the last page, round to sample 0
    assert sorted(f["source"] for f in data.failures) == [f"bees/scraped_{i:02d}.jpg" for i in range(3, 20)]


def test_mix_is_a_batch_transform_giving_soft_targets_the_same_for_any_num_workers(tmp_path):
    data = AugkitDataset(class_folders(tmp_path / "data", per_class=4), RECIPE, mixup=0.8, cutmix=1.0,
                         label_smoothing=0.1)

    def mixed(num_workers, epoch):
        data.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=num_workers)
        return [tuple(t.clone() for t in data.mix(x, y, b)) for b, (x, y) in enumerate(loader)]

    first = mixed(0, 1)
    assert same(first, mixed(2, 1)) and not same(first, mixed(0, 2))
    x, y = first[0]
    assert y.shape == (4, 3) and y.dtype == torch.float32 and torch.allclose(y.sum(dim=1), torch.ones(4))
    loss = torch.nn.functional.cross_entropy(torch.zeros(4, 3, requires_grad=True), y)  # soft targets
    assert torch.isfinite(loss)


def test_mix_on_a_batch_mixes_it_in_place_as_flow_mixes_its_own(tmp_path):
    import numpy as np

    from augkit.stages.mixing import BatchMixer, MixOptions

    data = AugkitDataset(class_folders(tmp_path / "data", per_class=2), RECIPE, cutmix=1.0, seed=3)
    x = torch.rand(6, 3, 20, 20)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    expected = x.numpy().copy()
    targets = BatchMixer(MixOptions(cutmix=1.0), 3, 3, channels_first=True)(expected, y.numpy(), 0, 5)
    mixed, soft = data.mix(x, y, 5)
    assert mixed is x and np.array_equal(x.numpy(), expected) and np.array_equal(soft.numpy(), targets)


def test_mix_without_mixing_options_says_what_to_give(dataset):
    from augkit.core.errors import AugkitError

    with pytest.raises(AugkitError, match="mixup=, cutmix=, label_smoothing= or one_hot=True"):
        dataset.mix(torch.zeros(2, 3, 20, 20), torch.tensor([0, 1]), 0)


def test_the_balanced_sampler_draws_every_class_equally_each_epoch(tmp_path):
    from collections import Counter

    from imagefiles import write_tree

    root = class_folders(tmp_path / "data", per_class=2)
    write_tree(root, {f"owl/owl_extra_{i}.jpg": (root / "owl" / "owl_0.jpg").read_bytes() for i in range(7)})
    data = AugkitDataset(root, RECIPE)
    sampler = data.balanced_sampler()
    first = list(sampler)
    assert len(first) == len(data) == 13
    counts = Counter(data.targets[i] for i in first)
    assert sorted(counts.values()) == [4, 4, 5]
    assert list(sampler) == first
    data.set_epoch(1)
    assert list(sampler) != first
    loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=sampler)
    assert sum(len(y) for _, y in loader) == 13


def test_the_balanced_sampler_augments_an_image_drawn_again_anew_in_workers_too(tmp_path):
    root = class_folders(tmp_path / "data", classes=("cat", "dog"), per_class=1)
    write_tree(root, {f"dog/dog_extra_{i}.jpg": (root / "dog" / "dog_0.jpg").read_bytes() for i in range(5)})
    data = AugkitDataset(root, RECIPE)  # cat: 1 image drawn 3 or 4 times an epoch
    sampler = data.balanced_sampler()
    cat = data.targets[0]
    repeats = [i for i in sampler if data.targets[i] == cat]
    assert [i.draw for i in repeats] == list(range(len(repeats))) and len(repeats) >= 3
    assert pickle.loads(pickle.dumps(repeats[1])).draw == 1
    loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=sampler, num_workers=2)
    cats = [x[j].numpy().tobytes() for x, y in loader for j in range(len(y)) if y[j] == cat]
    assert len(cats) == len(repeats) and len(set(cats)) == len(cats)
    plain = AugkitDataset(root, RECIPE)[0][0]
    assert data[repeats[0]][0].numpy().tobytes() == plain.numpy().tobytes()  # draw 0: as plain indexing


@pytest.mark.parametrize("size", [-3, 0, (64,), "64", 64.5])
def test_a_size_that_is_not_one_is_bad_usage(tmp_path, size):
    from augkit.core.errors import UsageError

    with pytest.raises(UsageError, match=rf"^size={re.escape(repr(size))}: not a size; give one whole number"):
        AugkitDataset(class_folders(tmp_path / "data", per_class=1), RECIPE, size=size)


@pytest.mark.parametrize("box", [None, (2, 9, 5, 17)])
def test_a_batch_on_another_device_is_mixed_as_a_cpu_batch_is(box):
    import numpy as np

    from augkit.stages.mixing import MixDraw, mix_in_place
    from augkit.torch import _mix_on_device  # what mix() runs on a GPU batch, tried here on the CPU

    x = torch.rand(5, 3, 20, 20)
    expected = x.numpy().copy()
    mix_in_place(expected, MixDraw(0.3, box), channels_first=True)
    _mix_on_device(x, MixDraw(0.3, box), channels_first=True)
    assert np.allclose(x.numpy(), expected, atol=1e-6)


def test_a_second_epoch_without_set_epoch_warns_once_that_augmentations_repeat(tmp_path):
    import warnings

    data = AugkitDataset(class_folders(tmp_path / "data", per_class=2), RECIPE)
    loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(loader)
        assert caught == []  # one epoch: every sample once
        list(loader)  # forgot data.set_epoch(1)
        list(loader)
    assert len(caught) == 1 and "call data.set_epoch(epoch) before each epoch" in str(caught[0].message)
    assert "balanced_sampler" in str(caught[0].message)  # a shuffled sampler: a repeat may be a replacement draw
    balanced = AugkitDataset(class_folders(tmp_path / "data", per_class=2), RECIPE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # forgot set_epoch, with the balanced sampler already in use
            list(torch.utils.data.DataLoader(balanced, batch_size=3, sampler=balanced.balanced_sampler()))
    assert len(caught) == 1 and str(caught[0].message).endswith("before each epoch's loop")
    fresh = AugkitDataset(class_folders(tmp_path / "data", per_class=2), RECIPE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for epoch in range(3):
            fresh.set_epoch(epoch)
            list(torch.utils.data.DataLoader(fresh, batch_size=3, shuffle=True))  # as documented: no warning
