"""The size hint each command gives the decoder (augkit.stages.decode_size), and what the
commands make with it: a JPEG decoded at 1/2, 1/4 or 1/8 of its size when what they do
first shrinks it that much, within a grey level or two of a full decode, bit-identical
with the option that turns it off, and recorded so a rerun that decodes otherwise is
another run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from augkit.core.errors import UsageError
from augkit.core.seeds import derive_seed
from augkit.input.decoding import decode_image, decode_image_with_info
from augkit.input.reduced import SizeHint
from augkit.recipes import load_recipe
from augkit.stages.augment import AugmentOptions, augment
from augkit.stages.decode_size import decode_setting, features_hint, flow_hint, recipe_hint
from augkit.stages.features.task import FeatureOptions, FeatureTask
from augkit.stages.preprocess import Preprocessing
from conftest import make_structured_rgb
from imagefiles import encoded, write_tree

SHRINK = {"transforms": [{"SmallestMaxSize": {"max_size": 96}}, {"CenterCrop": {"height": 96, "width": 96}},
                         {"HorizontalFlip": {"p": 0.5}}]}
CROP_ONLY = {"transforms": [{"RandomCrop": {"height": 96, "width": 96}}]}
PREP = Preprocessing(input_size=64, resize=73, range=(0.0, 1.0), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                     channels="RGB", layout="NCHW")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two classes of JPEGs large enough to be decoded at 1/4 for a shorter side of 96."""
    root = tmp_path_factory.mktemp("photos")
    files = {f"{c}/{c}_{i}.jpg": encoded(make_structured_rgb(480 + 8 * i, 640, seed=i + 10 * k), "JPEG", quality=90)
             for k, c in enumerate(("cat", "dog")) for i in range(3)}
    return write_tree(root, files)


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b).mean())


# --- the hints ----------------------------------------------------------------------------


def test_augment_gives_the_recipes_hint_unless_turned_off():
    recipe = load_recipe(SHRINK)
    assert recipe_hint(recipe).shorter == 96
    assert recipe_hint(recipe, enabled=False) is None
    assert recipe_hint(load_recipe(CROP_ONLY)) is None


def test_a_training_sample_gives_the_recipes_hint_or_without_a_recipe_its_final_size():
    assert flow_hint(load_recipe(SHRINK), (32, 32)).shorter == 96  # the recipe comes first
    assert flow_hint(load_recipe(CROP_ONLY), (32, 32)) is None
    assert flow_hint(None, (120, 90)) == SizeHint(height=120, width=90)
    assert flow_hint(None, None) is None  # the samples are the images as they are
    assert flow_hint(None, (120, 90), enabled=False) is None


def test_a_feature_row_needs_the_crop_rules_shorter_side_and_what_the_recipes_views_need():
    shrink, crop = load_recipe(SHRINK), load_recipe(CROP_ONLY)
    assert features_hint(None, PREP, 1, False) == SizeHint(shorter=73)
    assert features_hint(shrink, PREP, 2, False).shorter == 96  # every view through the recipe
    both = features_hint(shrink, PREP, 2, True)  # the plain view too
    assert both.shorter == 96 and [rule(480, 640) for rule in both.shapes] == [(96, 128)]
    assert features_hint(crop, PREP, 2, False) is None  # a crop first: pixels at full resolution
    assert features_hint(crop, PREP, 1, True) == SizeHint(shorter=73)  # only the plain view
    assert features_hint(None, PREP, 1, False, enabled=False) is None


def test_a_run_records_reduced_decoding_and_nothing_when_it_decodes_whole():
    assert decode_setting(SizeHint(shorter=96)) == {"decode": "reduced"}
    assert decode_setting(None) == {}


# --- augment --------------------------------------------------------------------------------


def test_augment_decodes_reduced_and_exactly_with_the_option_off(photos, tmp_path):
    recipe = load_recipe(SHRINK)
    reduced = augment(recipe, photos, tmp_path / "reduced", options=AugmentOptions(copies=1, fmt="png"), workers=0)
    exact = augment(recipe, photos, tmp_path / "exact", options=AugmentOptions(copies=1, fmt="png", reduced_decode=False),
                    workers=0)
    assert reduced.written == exact.written == 6
    for path in sorted(photos.rglob("*.jpg")):
        name, key = f"{path.parent.name}/{path.stem}_00.png", f"{path.parent.name}/{path.name}"
        seed = derive_seed(0, key, 0)
        whole = decode_image(tmp_path / "exact" / name)
        np.testing.assert_array_equal(whole, recipe(decode_image(path), seed=seed))
        mine = decode_image(tmp_path / "reduced" / name)
        np.testing.assert_array_equal(mine, recipe(decode_image(path, size_hint=recipe_hint(recipe)), seed=seed))
        assert mine.shape == whole.shape and not np.array_equal(mine, whole)
    assert json.loads((tmp_path / "reduced" / "augkit-run.json").read_text())["decode"] == "reduced"
    assert "decode" not in json.loads((tmp_path / "exact" / "augkit-run.json").read_text())


@pytest.mark.parametrize("interpolation", ["area", "linear"])
def test_a_shrink_from_a_reduced_decode_is_as_close_to_an_antialiased_one_as_from_the_whole_image(photos, interpolation):
    """The DCT scale averages each block, as an antialiased shrink does; a linear shrink of
    the whole image samples it (aliasing), so there the reduced decode is the closer one."""
    import cv2

    recipe = load_recipe({"transforms": [{"SmallestMaxSize": {"max_size": 96, "interpolation": interpolation}}]})
    for path in sorted(photos.rglob("*.jpg")):
        whole = decode_image(path)
        mine = recipe(decode_image(path, size_hint=recipe_hint(recipe)), seed=0)
        exact = recipe(whole, seed=0)
        reference = cv2.resize(whole, exact.shape[1::-1], interpolation=cv2.INTER_AREA)
        if interpolation == "area":  # the whole image shrunk by area is the reference
            assert _mean_difference(mine, exact) < 1.5
        else:
            assert _mean_difference(mine, reference) < 1.5 < _mean_difference(exact, reference)


def test_a_rerun_that_decodes_otherwise_is_another_run(photos, tmp_path):
    recipe = load_recipe(SHRINK)
    augment(recipe, photos, tmp_path / "out", options=AugmentOptions(copies=1), workers=0)
    with pytest.raises(UsageError, match=r"\(decode 'reduced' -> whole\); use another OUT"):  # never "-> None"
        augment(recipe, photos, tmp_path / "out", options=AugmentOptions(copies=1, reduced_decode=False), workers=0)


def test_the_original_is_written_whole_and_the_copies_are_those_of_a_run_without_it(photos, tmp_path):
    recipe = load_recipe(SHRINK)
    augment(recipe, photos, tmp_path / "with", options=AugmentOptions(copies=1, fmt="png", include_original=True),
            workers=0)
    augment(recipe, photos, tmp_path / "without", options=AugmentOptions(copies=1, fmt="png"), workers=0)
    original = decode_image(tmp_path / "with" / "cat" / "cat_0_orig.png")
    np.testing.assert_array_equal(original, decode_image(photos / "cat" / "cat_0.jpg"))
    np.testing.assert_array_equal(decode_image(tmp_path / "with" / "cat" / "cat_0_00.png"),
                                  decode_image(tmp_path / "without" / "cat" / "cat_0_00.png"))


# --- cache-features' task -------------------------------------------------------------------


@pytest.mark.parametrize("recipe", [None, SHRINK])
def test_a_feature_rows_input_from_a_reduced_decode_is_within_a_grey_level_or_two(photos, recipe):
    loaded = load_recipe(recipe) if recipe else None
    path = str(photos / "dog" / "dog_2.jpg")
    item = (path, "dog/dog_2.jpg", "dog")
    reduced = FeatureTask(loaded, PREP, FeatureOptions(views=2, plain_first=True, seed=0))
    exact = FeatureTask(loaded, PREP, FeatureOptions(views=2, plain_first=True, seed=0, reduced_decode=False))
    assert decode_image_with_info(path, size_hint=reduced.size_hint)[1].scale == 4
    mine, whole = reduced(item), exact(item)
    assert mine.shape == whole.shape == (2, 64, 64, 3)
    assert 0 < _mean_difference(mine, whole) < 2.0


# --- flow -----------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe, size", [(SHRINK, None), (None, (60, 80))])
def test_flow_decodes_reduced_gives_the_same_shapes_and_exactly_with_the_option_off(photos, recipe, size):
    from augkit.stages.batches import SamplePipeline, flow

    def batches(**kw):
        with flow(photos, recipe, batch_size=6, shuffle=False, workers=0, size=size, **kw) as f:
            return [x for x, _ in f]

    (mine,), (whole,) = batches(), batches(reduced_decode=False)
    assert mine.shape == whole.shape and mine.shape[0] == 6
    assert 0 < _mean_difference(mine, whole) < 5
    exact = SamplePipeline(load_recipe(recipe) if recipe else None, seed=0, size=size, reduced_decode=False)
    path = str(photos / "cat" / "cat_0.jpg")
    np.testing.assert_array_equal(whole[0], exact.transformed(decode_image(path), "cat/cat_0.jpg", 0))


def test_flow_tells_the_sample_size_from_the_files_sizes_not_the_reduced_ones(tmp_path):
    """A recipe that keeps the aspect ratio makes one size only of images of one size:
    flow checks the headers against the first image's whole size, so images of one size
    pass however they are decoded, and images of two sizes are still told apart."""
    from augkit.stages.batches import flow

    shrink = {"transforms": [{"SmallestMaxSize": {"max_size": 96}}]}
    same = write_tree(tmp_path / "same", {f"c/{i}.jpg": encoded(make_structured_rgb(480, 640, i), "JPEG")
                                          for i in range(3)})
    with flow(same, shrink, batch_size=3, workers=0) as f:
        assert f.sample_size == (96, 128) and f.pipeline.size_hint is not None
    mixed = write_tree(tmp_path / "mixed", {"c/0.jpg": encoded(make_structured_rgb(480, 640), "JPEG"),
                                           "c/1.jpg": encoded(make_structured_rgb(480, 720), "JPEG")})
    with pytest.raises(UsageError, match="480x640.*480x720"):
        flow(mixed, shrink, batch_size=2, workers=0)


# --- the command line -----------------------------------------------------------------------


def test_exact_decode_on_the_command_line_decodes_whole(photos, tmp_path):
    import io

    from click.testing import CliRunner

    from augkit.cli import cli
    from augkit.stages.batches import flow
    from augkit.stages.stream import read_stream

    recipe = tmp_path / "shrink.yaml"
    recipe.write_text(json.dumps(SHRINK))
    result = CliRunner().invoke(cli, ["augment", str(recipe), str(photos), str(tmp_path / "out"), "--exact-decode",
                                      "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "decode" not in json.loads((tmp_path / "out" / "augkit-run.json").read_text())
    result = CliRunner().invoke(cli, ["stream", str(recipe), str(photos), "--exact-decode", "--workers", "0",
                                      "-b", "6", "--no-shuffle"])
    assert result.exit_code == 0, result.output
    (x, _), = list(read_stream(io.BytesIO(result.stdout_bytes)))
    with flow(photos, SHRINK, batch_size=6, shuffle=False, workers=0, reduced_decode=False) as exact:
        np.testing.assert_array_equal(x, next(iter(exact))[0])
