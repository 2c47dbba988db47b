"""Tar shards as a source (augkit.input.shard_sources): which shards, their samples, keys and labels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from augkit.core.errors import UsageError
from augkit.input.decode_error import DecodeError
from augkit.input.decoding import decode_image
from augkit.input.discovery import discover
from augkit.input.shard_sources import Shards, expand_braces, is_shard_source
from conftest import make_structured_rgb
from shardfiles import png, sample, tar_of


@pytest.fixture
def shards(tmp_path) -> Path:
    """data/shard-00000{0,1}.tar: four labelled samples, two classes, in two shards."""
    folder = tmp_path / "data"
    folder.mkdir()
    tar_of(folder / "shard-000000.tar", sample("cat/a_00", 0, "cat") + sample("dog/b_00", 1, "dog", seed=1))
    tar_of(folder / "shard-000001.tar", sample("cat/c_00", 0, "cat", seed=2) + sample("dog/d_00", 1, "dog", seed=3))
    return folder


def described(dataset) -> list[tuple[str, str | None]]:
    return [(s.key, s.label) for s in dataset.samples]


def test_a_folder_a_brace_pattern_and_each_shard_give_the_same_samples(shards):
    whole = discover(shards)
    assert whole.kind == "shards" and whole.classes == ["cat", "dog"]
    assert described(whole) == [("cat/a_00.png", "cat"), ("cat/c_00.png", "cat"), ("dog/b_00.png", "dog"),
                                ("dog/d_00.png", "dog")]  # sorted by key, which is the image member's name
    assert described(discover(f"{shards}/shard-{{000000..000001}}.tar")) == described(whole)
    assert described(discover(f"{shards}/shard-{{000000,000001}}.tar")) == described(whole)
    assert len(discover(shards / "shard-000001.tar")) == 2


def test_every_sample_decodes_to_the_image_its_member_holds(shards):
    for sample_, seed in zip(discover(shards).samples, (0, 2, 1, 3)):
        assert (decode_image(sample_.path) == make_structured_rgb(12, 16, seed)).all()


def test_brace_patterns_count_zero_padded_as_written_and_multiply():
    assert expand_braces("s-{0008..0010}.tar") == ["s-0008.tar", "s-0009.tar", "s-0010.tar"]
    assert expand_braces("s-{8..10}.tar") == ["s-8.tar", "s-9.tar", "s-10.tar"]
    assert expand_braces("{a,b}/{0..1}.tar") == ["a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar"]


@pytest.mark.parametrize("pattern, words", [("shard-{000000..000002}.tar", "shard-000002.tar (from the pattern"),
                                            ("shard-{000001..000000}.tar", "counts down"),
                                            ("shard-{x}.tar", "neither a range")])
def test_a_pattern_naming_a_missing_shard_or_no_range_is_a_usage_error(shards, pattern, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        discover(f"{shards}/{pattern}")


def test_what_augment_writes_beside_its_shards_is_skipped_and_counted(shards):
    (shards / "manifest.csv").write_text("path\n")
    (shards / ".augkit-lock").write_text("")
    assert discover(shards).skipped == {"not a shard": 1, "hidden": 1}


@pytest.mark.parametrize("beside", ["x.jpg", "cat/x.jpg"])
def test_a_folder_holding_shards_and_images_is_refused_as_ambiguous(shards, beside):
    (shards / beside).parent.mkdir(exist_ok=True)
    (shards / beside).write_bytes(png())
    with pytest.raises(UsageError, match="holds tar shards .* and images or folders"):
        discover(shards)


def test_an_empty_folder_beside_shards_says_nothing_and_is_passed_over(shards):
    (shards / "cat").mkdir()  # as an --overwrite of a run that wrote files leaves its class folders
    assert len(discover(shards)) == 4


def test_a_folder_of_images_with_no_shard_is_read_as_before(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "x.png").write_bytes(png())
    assert not is_shard_source(tmp_path) and discover(tmp_path).kind == "folders"


def test_the_same_key_in_two_shards_is_refused_naming_both(tmp_path):
    tar_of(tmp_path / "a.tar", sample("x", 0))
    tar_of(tmp_path / "b.tar", sample("x", 0))
    with pytest.raises(UsageError, match=r"x.png: in .*a.tar and in .*b.tar"):
        discover(tmp_path)


def test_cls_indices_order_the_classes_so_y_is_cls_beyond_ten_classes(tmp_path):
    tar_of(tmp_path / "s.tar", [m for i in range(12) for m in sample(f"s{i:02d}", i)])
    dataset = discover(tmp_path)
    assert dataset.classes == [str(i) for i in range(12)]  # not "0", "1", "10", "11", "2", ...
    assert all(dataset.class_to_index[s.label] == int(s.key[1:3]) for s in dataset.samples)


def test_a_class_index_no_sample_has_keeps_its_place(tmp_path):
    tar_of(tmp_path / "s.tar", sample("a", 0, "ant") + sample("c", 2, "cow"))
    assert discover(tmp_path).classes == ["ant", "1", "cow"]


def test_two_names_for_one_class_index_are_refused(tmp_path):
    tar_of(tmp_path / "s.tar", sample("a", 0, "ant") + sample("b", 0, "bee"))
    with pytest.raises(UsageError, match="class 0 is named 'bee' here and 'ant'"):
        discover(tmp_path)


def test_a_cls_that_is_not_a_class_index_is_a_failure_row_when_read(tmp_path):
    tar_of(tmp_path / "s.tar", [("a.png", png()), ("a.cls", b"cat")] + sample("b", 1))
    dataset = discover(tmp_path)
    assert described(dataset) == [("a.png", None), ("b.png", "1")]
    with pytest.raises(DecodeError, match="holds 'cat', not a class index") as caught:
        decode_image(dataset.samples[0].path)
    assert caught.value.reason == "corrupt"


def test_another_label_key_reads_class_names_sorted_by_name(tmp_path):
    tar_of(tmp_path / "s.tar", [("a.png", png()), ("a.txt", b"zebra\n"), ("b.png", png()), ("b.txt", b"ant"),
                                ("c.png", png())])
    dataset = discover(Shards(tmp_path, label_key="txt"))
    assert described(dataset) == [("a.png", "zebra"), ("b.png", "ant"), ("c.png", None)]
    assert dataset.classes == ["ant", "zebra"]


def test_a_label_that_cannot_name_a_folder_is_refused_with_its_member(tmp_path):
    tar_of(tmp_path / "s.tar", [("a.png", png()), ("a.txt", b"a/b")])
    with pytest.raises(UsageError, match=r"s.tar/a.txt: label 'a/b' is not a plain folder name"):
        discover(Shards(tmp_path, label_key="txt"))


def test_label_key_on_a_folder_of_images_says_it_is_for_shards(tmp_path):
    (tmp_path / "x.png").write_bytes(png())
    with pytest.raises(UsageError, match="--label-key reads labels of tar shards"):
        discover(Shards(tmp_path, label_key="txt"))


def test_members_that_make_no_sample_are_skipped_and_counted(tmp_path):
    tar_of(tmp_path / "s.tar", [("a.png", png()), ("a.jpg", png()), ("b.txt", b"text only"), ("README", b"hi")])
    dataset = discover(tmp_path)
    assert described(dataset) == [("a.png", None)]
    assert dataset.skipped == {"second image of a sample": 1, "sample without an image": 1,
                               "member without a sample key": 1}


def test_the_unreadable_rest_of_a_damaged_shard_is_one_failure_row(tmp_path):
    shard = tar_of(tmp_path / "s.tar", sample("a", 0) + sample("b", 1))
    data = bytearray(shard.read_bytes())
    second = data.index(b"b.png")
    data[second + 148:second + 156] = b"garbage!"
    shard.write_bytes(bytes(data))
    dataset = discover(tmp_path)
    assert [s.key for s in dataset.samples] == ["a.png", "s.tar"]
    with pytest.raises(DecodeError, match="s.tar: is damaged after its first 2 members"):
        decode_image(dataset.samples[1].path)


def test_split_selects_rows_of_a_manifest_not_of_shards(shards):
    with pytest.raises(UsageError, match="--split train selects rows of a split manifest"):
        discover(shards, split="train")
    assert len(discover(shards, split="all")) == 4


def test_a_fifo_named_like_a_shard_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "s.tar")
    with pytest.raises(UsageError, match="named pipe"):
        discover(tmp_path / "s.tar")


def test_the_source_folders_are_those_the_shards_are_in(shards, tmp_path):
    assert discover(shards).source_folders() == [shards]


# --- every command that reads a source reads shards -----------------------------------------
# Shards of the same images as a folder (tests/shardfiles: PNGs) give every command the same
# result as the folder, with the same keys and classes.


@pytest.fixture
def twins(tmp_path) -> tuple[Path, Path]:
    """(a folder of class folders, shards of the same PNGs): 2 classes of 3."""
    folder = tmp_path / "folder"
    members = []
    for c, name in enumerate(("cat", "dog")):
        for i in range(3):
            key, seed = f"{name}/{name}_{i}", 10 * c + i
            (folder / name).mkdir(parents=True, exist_ok=True)
            (folder / f"{key}.png").write_bytes(png(seed))
            members += sample(key, c, name, seed=seed)
    (tmp_path / "shards").mkdir()
    tar_of(tmp_path / "shards" / "s-0.tar", members[:9])
    tar_of(tmp_path / "shards" / "s-1.tar", members[9:])
    return folder, tmp_path / "shards"


def invoke(*args, expect: int = 0):
    from click.testing import CliRunner

    from augkit.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == expect, (result.output, result.exception)
    return result


def test_stats_of_shards_are_the_stats_of_the_same_images_in_a_folder(twins, tmp_path):
    folder, shards = twins
    invoke("stats", folder, "-o", tmp_path / "a.json", "-w", 0)
    invoke("stats", f"{shards}/s-{{0..1}}.tar", "-o", tmp_path / "b.json", "-w", 2)
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    for entry in (a, b):
        entry.pop("source")
    assert a == b


def test_flow_and_the_pytorch_adapter_give_the_folders_samples(twins):
    import numpy as np

    import augkit

    folder, shards = twins
    recipe = {"transforms": [{"HorizontalFlip": {"p": 0.5}}, {"RandomCrop": {"height": 8, "width": 8}}]}
    from_folder = list(augkit.flow(folder, recipe, batch_size=4, epochs=2, workers=0))
    from_shards = list(augkit.flow(shards, recipe, batch_size=4, epochs=2, workers=2))
    assert all(np.array_equal(x, x2) and np.array_equal(y, y2) for (x, y), (x2, y2) in zip(from_folder, from_shards))
    torch_adapter = pytest.importorskip("augkit.torch")
    data = torch_adapter.AugkitDataset(shards, recipe)
    assert data.classes == ["cat", "dog"] and data.targets == [0, 0, 0, 1, 1, 1]


def test_stream_reads_shards_with_labels_from_another_member(tmp_path):
    import io
    import subprocess
    import sys

    import augkit

    tar_of(tmp_path / "s.tar", [("a.png", png(1)), ("a.txt", b"zebra"), ("b.png", png(2)), ("b.txt", b"ant"),
                                ("c.png", png(3)), ("c.txt", b"zebra")])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    done = subprocess.run([sys.executable, "-m", "augkit", "stream", str(recipe), str(tmp_path / "s.tar"), "-b", "3",
                           "--no-shuffle", "--label-key", "txt", "-w", "0"], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    (x, y), = list(augkit.read_stream(io.BytesIO(done.stdout)))
    assert x.shape == (3, 12, 16, 3) and y.tolist() == [1, 0, 1]  # classes sorted by name: ant, zebra


def test_preview_and_cache_features_read_shards(twins, tmp_path):
    import mobilenet_like

    from augkit.stages.features import load_features

    folder, shards = twins
    recipe = tmp_path / "r.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    invoke("preview", recipe, f"{shards}/s-{{0..1}}.tar", "-o", tmp_path / "grid.png", "--max-images", 2, "-n", 2)
    assert (tmp_path / "grid.png").stat().st_size > 0
    model = tmp_path / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=0), model)
    for src, cache in ((folder, "a"), (shards, "b")):
        invoke("cache-features", src, "-o", tmp_path / cache, "--backbone", model, "--input-size", 64, "--quiet",
               "-w", 0)
    a, b = load_features(tmp_path / "a"), load_features(tmp_path / "b")
    assert a.classes == b.classes and (a.labels == b.labels).all() and (a.features == b.features).all()
