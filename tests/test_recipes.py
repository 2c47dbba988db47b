"""augkit.recipes: a YAML or albumentations file becomes a pipeline that runs as written,
or a one-line RecipeError naming file, line, key and fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from augkit.core._albu import albumentations
from augkit.cli import cli
from augkit.core.errors import RecipeError, UsageError
from augkit.recipes import Recipe, TransformError, load_recipe, save_albumentations
from augkit.core.seeds import seed_pipeline
from augkit.recipes.transforms import registry

A = albumentations()
RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

ISSUE_EXAMPLE = """\
seed: 42                      # optional default seed
transforms:
  - HorizontalFlip: {p: 0.5}
  - RandomCrop: {height: 224, width: 224}
  - OneOf:
      p: 0.3
      transforms:
        - Blur: {blur_limit: 3}
        - CLAHE                 # a bare name takes every default
"""


@pytest.fixture
def write_recipe(tmp_path):
    """write_recipe(text, name) -> path of a recipe file holding the dedented text."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


# --- the recipe form -------------------------------------------------------------------


def test_issue_example_loads_and_runs(write_recipe, photo_sized_rgb):
    recipe = load_recipe(write_recipe(ISSUE_EXAMPLE))

    assert recipe.seed == 42
    assert [type(t).__name__ for t in recipe.compose.transforms] == ["HorizontalFlip", "RandomCrop", "OneOf"]
    assert [type(t).__name__ for t in recipe.compose.transforms[2].transforms] == ["Blur", "CLAHE"]
    out = recipe(photo_sized_rgb, seed=0)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_same_seed_gives_identical_output(write_recipe, photo_sized_rgb):
    recipe = load_recipe(write_recipe(ISSUE_EXAMPLE))
    first = recipe(photo_sized_rgb, seed=7)
    recipe(photo_sized_rgb, seed=8)  # whatever ran in between does not matter
    assert np.array_equal(recipe(photo_sized_rgb, seed=7), first)


def test_different_seeds_give_different_output(write_recipe, photo_sized_rgb):
    recipe = load_recipe(write_recipe(ISSUE_EXAMPLE))
    assert not np.array_equal(recipe(photo_sized_rgb, seed=1), recipe(photo_sized_rgb, seed=2))


def test_trace_gives_the_same_image_as_a_call_and_names_what_fired(write_recipe, photo_sized_rgb):
    recipe = load_recipe(write_recipe(ISSUE_EXAMPLE))
    for seed in range(4):
        traced, applied = recipe.trace(photo_sized_rgb, seed=seed)
        assert np.array_equal(traced, recipe(photo_sized_rgb, seed=seed))
        assert "RandomCrop" in [name for name, _ in applied]  # p: 1 by default


def _fired(recipe, image, seeds) -> list[frozenset]:
    return [frozenset(name for name, _ in recipe.trace(image, seed=s)[1]) for s in seeds]


def test_each_transform_decides_on_its_own_draws(small_rgb):
    # albumentations' set_random_seed gives every transform the same first number, so
    # p-decisions coincide (flip exactly when affine fired). One stream makes them independent.
    recipe = load_recipe({"transforms": [
        {"HorizontalFlip": {"p": 0.5}}, {"Affine": {"rotate": [-5, 5], "p": 0.5}},
        {"RGBShift": {"p": 0.3}}, {"CLAHE": {"p": 0.2}}, {"CoarseDropout": {"p": 0.3}},
    ]})
    fired = _fired(recipe, small_rgb, range(600))
    flip = np.array(["HorizontalFlip" in f for f in fired])
    affine = np.array(["Affine" in f for f in fired])
    shift = np.array(["RGBShift" in f for f in fired])

    assert len(set(fired)) >= 28  # of 32 combinations; a shared first draw gives 4
    assert 0.18 < np.mean(flip & affine) < 0.32  # independent: 0.25; coinciding: 0.5
    assert 0.10 < np.mean(flip & ~affine) < 0.40  # coinciding: never
    assert 0.05 < np.mean(shift & ~flip) < 0.25  # independent: 0.15; coinciding: never


def test_the_recipe_seed_gives_independent_decisions_too(small_rgb):
    recipe = load_recipe({"seed": 3, "transforms": [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}]})
    outcomes = {tuple(sorted(n for n, _ in recipe.trace(small_rgb)[1])) for _ in range(60)}
    assert len(outcomes) == 4


def test_for_image_equals_a_call_for_every_seed(photo_sized_rgb):
    recipe = load_recipe(RECIPES_DIR / "standard.yaml")
    augment = recipe.for_image(photo_sized_rgb)
    for seed in range(12):
        assert np.array_equal(augment(seed), recipe(photo_sized_rgb, seed=seed)), f"seed {seed}"


def test_for_image_runs_the_deterministic_head_once(photo_sized_rgb, monkeypatch):
    recipe = load_recipe({"transforms": [
        {"SmallestMaxSize": {"max_size": 128}}, {"CenterCrop": {"height": 120, "width": 120}},
        {"RandomCrop": {"height": 100, "width": 100}}, {"HorizontalFlip": {"p": 0.5}},
    ]})
    smallest = recipe.compose.transforms[0]
    calls = []
    original = type(smallest).__call__
    monkeypatch.setattr(type(smallest), "__call__", lambda self, **data: calls.append(1) or original(self, **data))

    augment = recipe.for_image(photo_sized_rgb)
    outputs = [augment(seed) for seed in range(5)]

    assert len(calls) == 1
    monkeypatch.undo()
    for seed, out in enumerate(outputs):
        assert np.array_equal(out, recipe(photo_sized_rgb, seed=seed))


def test_for_image_runs_a_head_that_draws_for_every_seed(photo_sized_rgb):
    # max_size as a list picks a size at random: not the same for every seed
    recipe = load_recipe({"transforms": [{"SmallestMaxSize": {"max_size": [100, 140, 180]}}, "HorizontalFlip"]})
    augment = recipe.for_image(photo_sized_rgb)
    shapes = set()
    for seed in range(20):
        out = augment(seed)
        assert np.array_equal(out, recipe(photo_sized_rgb, seed=seed))
        shapes.add(out.shape)
    assert len(shapes) == 3


def test_for_image_raises_a_failing_head_for_every_seed(small_rgb):
    recipe = load_recipe({"transforms": [{"CenterCrop": {"height": 500, "width": 500}}, "HorizontalFlip"]})
    augment = recipe.for_image(small_rgb)
    for seed in range(2):
        with pytest.raises(Exception, match="500"):
            augment(seed)


def test_the_recipe_seed_makes_two_fresh_loads_agree(write_recipe, photo_sized_rgb):
    path = write_recipe(ISSUE_EXAMPLE)
    assert np.array_equal(load_recipe(path)(photo_sized_rgb), load_recipe(path)(photo_sized_rgb))


def test_a_bare_name_takes_every_default(write_recipe):
    recipe = load_recipe(write_recipe("transforms:\n  - CLAHE\n"))
    (clahe,) = recipe.compose.transforms
    assert isinstance(clahe, A.CLAHE)
    assert clahe.clip_limit == A.CLAHE().clip_limit
    assert clahe.p == A.CLAHE().p


def test_compositions_nest(write_recipe, small_rgb):
    recipe = load_recipe(write_recipe("""\
        transforms:
          - Sequential:
              p: 1.0
              transforms:
                - SomeOf:
                    n: 2
                    p: 1.0
                    transforms:
                      - HorizontalFlip: {p: 1.0}
                      - VerticalFlip: {p: 1.0}
                      - OneOf:
                          p: 1.0
                          transforms:
                            - Blur: {p: 1.0}
                            - CLAHE: {p: 1.0}
        """))

    (sequential,) = recipe.compose.transforms
    assert isinstance(sequential, A.Sequential)
    (some_of,) = sequential.transforms
    assert isinstance(some_of, A.SomeOf) and some_of.n == 2
    assert isinstance(some_of.transforms[2], A.OneOf)
    for seed in range(5):
        _, applied = recipe.trace(small_rgb, seed=seed)
        leaves = [name for name, _ in applied if name in {"HorizontalFlip", "VerticalFlip", "Blur", "CLAHE"}]
        assert len(leaves) == 2, applied


def test_load_recipe_accepts_a_dict_and_exposes_the_compose(small_rgb):
    recipe = load_recipe({"transforms": [{"HorizontalFlip": {"p": 1.0}}]})
    assert isinstance(recipe, Recipe)
    assert isinstance(recipe.compose, A.Compose)
    assert np.array_equal(recipe(small_rgb), small_rgb[:, ::-1])


# --- every promised transform runs ----------------------------------------------------------

# (name, arguments, output shape for a 120x160 input; None: same as the input)
PROMISED = [
    ("HorizontalFlip", {}, None),
    ("VerticalFlip", {}, None),
    ("RandomCrop", {"height": 64, "width": 80}, (64, 80)),
    ("CenterCrop", {"height": 64, "width": 80}, (64, 80)),
    ("RandomResizedCrop", {"size": [64, 64], "scale": [0.5, 1.0]}, (64, 64)),
    ("ShiftScaleRotate", {"shift_limit": 0.1, "scale_limit": 0.1, "rotate_limit": 15}, None),
    ("RGBShift", {"r_shift_limit": 20, "g_shift_limit": 20, "b_shift_limit": 20}, None),
    ("PCAColor", {"sigma": 0.1}, None),
    ("CLAHE", {"clip_limit": 2.0, "tile_grid_size": [8, 8]}, None),
    ("CoarseDropout", {"num_holes_range": [1, 4], "hole_height_range": [0.1, 0.2], "hole_width_range": [0.1, 0.2]}, None),
    ("RandomBrightnessContrast", {"brightness_limit": 0.2, "contrast_limit": 0.2}, None),
    ("ColorJitter", {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.05}, None),
    ("Blur", {"blur_limit": 5}, None),
    ("Resize", {"height": 50, "width": 70}, (50, 70)),
    ("SmallestMaxSize", {"max_size": 60}, (60, 80)),
    ("LongestMaxSize", {"max_size": 80}, (60, 80)),
]


@pytest.mark.parametrize(("name", "args", "shape"), PROMISED, ids=[p[0] for p in PROMISED])
def test_every_promised_transform_runs_from_a_recipe(name, args, shape, small_rgb):
    recipe = load_recipe({"transforms": [{name: {**args, "p": 1.0}}]})

    out = recipe(small_rgb, seed=3)

    assert out.dtype == np.uint8
    assert out.shape == (*(shape or small_rgb.shape[:2]), 3)
    if shape is None:  # it fired (p: 1), so the pixels changed
        assert not np.array_equal(out, small_rgb)


def test_shift_scale_rotate_reaches_the_user_without_a_warning(write_recipe, small_rgb):
    path = write_recipe("""\
        transforms:
          - ShiftScaleRotate: {shift_limit: 0.06, rotate_limit: 15, border_mode: reflect_101, p: 1.0}
        """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recipe = load_recipe(path)
        recipe(small_rgb, seed=0)

    assert [str(w.message) for w in caught] == []
    assert recipe.compose.transforms[0].border_mode == cv2.BORDER_REFLECT_101


# --- bad recipes: one line naming file, line, key and fix ------------------------------------

BAD_RECIPES = [
    # id, recipe text, line the error must name, words the message must contain
    ("unknown transform", "transforms:\n  - HorizontalFlip: {p: 0.5}\n  - HorizantalFlip: {p: 0.5}\n",
     3, ["HorizantalFlip", "did you mean HorizontalFlip"]),
    ("unknown argument", "transforms:\n  - Blur:\n      blur_limt: 3\n",
     3, ["Blur", "'blur_limt'", "did you mean blur_limit?"]),
    ("renamed max_holes", "transforms:\n  - CoarseDropout:\n      p: 0.5\n      max_holes: 8\n",
     4, ["CoarseDropout", "'max_holes'", "1.x", "num_holes_range"]),
    ("renamed var_limit", "transforms:\n  - GaussNoise: {var_limit: [10, 50]}\n",
     2, ["GaussNoise", "'var_limit'", "std_range"]),
    ("renamed always_apply", "transforms:\n  - HorizontalFlip:\n      always_apply: true\n",
     3, ["'always_apply'", "p: 1"]),
    ("wrong type", "transforms:\n  - RandomCrop:\n      height: big\n      width: 64\n",
     3, ["RandomCrop", "height", "valid integer", "'big'"]),
    ("out of range", "transforms:\n  - HorizontalFlip:\n      p: 1.5\n",
     3, ["HorizontalFlip", "p:", "less than or equal to 1", "1.5"]),
    ("missing required argument", "transforms:\n  - RandomCrop: {height: 64}\n",
     2, ["RandomCrop", "width is required"]),
    ("a list one value short", "transforms:\n  - RandomResizedCrop: {size: [224]}\n",
     2, ["RandomResizedCrop", "size: give at least 2 values (got [224])"]),
    ("a colour one level short, in a union", "transforms:\n  - RandAugment: {fill: [1, 2]}\n",
     2, ["RandAugment", "fill: give 3 values (got [1, 2])"]),
    ("unknown enum word", "transforms:\n  - Affine:\n      rotate: [-5, 5]\n      border_mode: mirror\n",
     4, ["Affine", "border_mode", "'mirror'", "reflect_101"]),
    ("YAML syntax error", "transforms:\n  - RandomCrop: height: 64\n",
     2, ["not valid YAML", "mapping values are not allowed"]),
    ("unclosed brace", "transforms:\n  - HorizontalFlip: {p: 0.5\n  - Blur\n",
     2, ["not valid YAML", "flow mapping"]),
    ("duplicate key", "transforms:\n  - Blur:\n      blur_limit: 3\n      blur_limit: 5\n",
     4, ["duplicate key 'blur_limit'"]),
    ("mis-indented composition args", "transforms:\n  - OneOf:\n    p: 0.3\n    transforms:\n      - Blur\n",
     2, ["OneOf", "p, transforms", "indented under OneOf"]),
    ("mis-indented transform args", "transforms:\n  - HorizontalFlip:\n    p: 0.5\n",
     2, ["HorizontalFlip", "p must be indented under HorizontalFlip"]),
    ("unknown top-level key", "seed: 1\ntransfroms:\n  - Blur\n",
     2, ["unknown top-level key 'transfroms'", "did you mean 'transforms'?"]),
    ("transform at top level", "transforms:\n  - Blur\nHorizontalFlip: {p: 0.5}\n",
     3, ["'HorizontalFlip'", "under `transforms:`"]),
    ("transform needing bboxes", "transforms:\n  - BBoxSafeRandomCrop: {erosion_rate: 0.1}\n",
     2, ["BBoxSafeRandomCrop", "bounding boxes"]),
    ("transform needing a mask", "transforms:\n  - ConstrainedCoarseDropout: {p: 1.0}\n",
     2, ["ConstrainedCoarseDropout", "needs a mask"]),
    ("transform needing metadata", "transforms:\n  - FDA: {p: 1.0}\n",
     2, ["FDA", "reference images"]),
    ("composition without transforms", "transforms:\n  - OneOf: {p: 0.5}\n",
     2, ["OneOf", "transforms:"]),
    ("negative seed", "seed: -1\ntransforms:\n  - Blur\n",
     1, ["seed", "non-negative integer"]),
]


@pytest.mark.parametrize(("text", "line", "words"), [c[1:] for c in BAD_RECIPES], ids=[c[0] for c in BAD_RECIPES])
def test_a_bad_recipe_is_one_line_naming_file_line_key_and_fix(text, line, words, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(RecipeError) as info:
        load_recipe(path)

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: ")
    for word in words:
        assert word in message


def test_a_recipe_error_is_a_usage_error():
    with pytest.raises(UsageError):
        load_recipe({"transforms": [{"NoSuchTransform": {}}]})


def test_a_missing_recipe_file_says_so(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RecipeError, match=r"nope\.yaml: recipe file not found"):
        load_recipe(missing)


def test_every_problem_is_reported_at_once_one_line_each_in_line_order(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("seed: -3\n"
                    "transforms:\n"
                    "  - HorizantalFlip\n"
                    "  - Blur: {blur_limt: 3}\n"
                    "  - RandomCrop: {height: big, width: 64, p: x}\n"
                    "  - OneOf:\n"
                    "      transforms: [NoSuchThing, CLAHE]\n"
                    "  - 42\n")

    with pytest.raises(RecipeError) as info:
        load_recipe(path)

    lines = str(info.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:{n}" for n in (1, 3, 4, 5, 5, 7, 8)]
    assert "seed must be a non-negative integer" in lines[0]
    assert "did you mean HorizontalFlip" in lines[1]
    assert "did you mean blur_limit" in lines[2]
    assert {"RandomCrop: height: Input should be a valid integer", "RandomCrop: p: Input should be a valid number"} == {
        line.split(": ", 1)[1].split(",")[0] for line in lines[3:5]}
    assert "unknown transform 'NoSuchThing'" in lines[5]
    assert "expected a transform such as" in lines[6]


TRANSFORM_NAMES = sorted(registry().keys())


def _wrong(transform: str, **args) -> dict:
    if registry()[transform].kind == "composition":
        args["transforms"] = ["Blur"]
    return {"transforms": [{transform: args}]}


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
def test_every_transform_with_a_wrong_typed_argument_gives_lines_not_a_traceback(name):
    with pytest.raises(RecipeError) as info:
        load_recipe(_wrong(name, p="x"))
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"<dict>: {name}: ") for line in lines)
    assert any(line.startswith((f"<dict>: {name}: p: Input should be a valid number",
                                f"<dict>: {name}: p: must be a number from 0 to 1 (got 'x')")) for line in lines), lines


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
def test_every_transform_with_an_unknown_argument_names_it(name):
    with pytest.raises(RecipeError) as info:
        load_recipe(_wrong(name, bogus_argument=1))
    assert f"<dict>: {name}: unknown argument 'bogus_argument'; " in str(info.value)


@pytest.mark.parametrize("value", [{"a": 1}, [[1, 2], [3]], "x", -1, 1.5, None, [], True])
@pytest.mark.parametrize("name", ["Affine", "CoarseDropout", "RandomResizedCrop", "PCAColor", "Lambda", "SomeOf"])
def test_odd_values_for_every_argument_give_a_recipe_or_a_recipe_error(name, value):
    for argument in registry()[name].arguments:
        if argument == "transforms":
            continue
        try:
            recipe = load_recipe(_wrong(name, **{argument: value}))
        except RecipeError:
            continue
        recipe.describe()  # a recipe that loads can also be described and fingerprinted
        assert recipe.fingerprint


def test_a_lambda_in_a_recipe_file_is_refused_saying_why(write_recipe):
    path = write_recipe("transforms:\n  - Lambda: {}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value) == (f"{path}:2: Lambda runs Python functions, which a recipe file cannot hold; build a "
                               f"recipe with a Lambda from Python: load_recipe({{'transforms': [...]}})")


def test_a_lambda_from_python_can_be_described_and_fingerprinted(small_rgb):
    recipe = load_recipe({"transforms": [{"Lambda": {"image": to_unit_float}}]})
    assert "Lambda(" in recipe.describe() and "to_unit_float" in recipe.describe()
    assert len(recipe.fingerprint) == 64


def test_a_stats_path_that_is_a_folder_is_one_line(write_recipe, tmp_path):
    (tmp_path / "stats").mkdir()
    path = write_recipe("transforms:\n  - PCAColor: {source: dataset, stats: stats}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value) == (f"{path}:2: PCAColor: stats file {tmp_path / 'stats'} is a folder, not a regular "
                               f"file; give the stats.json `augkit stats` wrote")


# --- a transform that fails on an image names itself ------------------------------------------------


def test_a_transform_that_fails_on_an_image_names_its_step_and_line(write_recipe, small_rgb):
    recipe = load_recipe(write_recipe("transforms:\n  - HorizontalFlip\n  - RandomCrop: {height: 512, width: 512}\n"))
    for call in (lambda: recipe(small_rgb, seed=0), lambda: recipe.trace(small_rgb, seed=0),
                 lambda: recipe.for_image(small_rgb)(0)):
        with pytest.raises(TransformError) as info:
            call()
        assert str(info.value) == ("RandomCrop at line 3: CropSizeError: Crop size (height, width) exceeds image "
                                   "dimensions (height, width): (512, 512) vs (120, 160)")
        assert info.value.step.line == 3


def test_a_failing_deterministic_head_is_named_for_every_seed(small_rgb):
    recipe = load_recipe({"transforms": [{"Resize": {"height": 50, "width": 50}},
                                         {"CenterCrop": {"height": 64, "width": 64}}, "HorizontalFlip"]})
    augment = recipe.for_image(small_rgb)
    for seed in range(2):
        with pytest.raises(TransformError, match=r"^CenterCrop: CropSizeError"):
            augment(seed)


# --- albumentations interoperability ------------------------------------------------------------


def _reference_compose():
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.RandomCrop(height=64, width=96),
        A.OneOf([A.Blur(blur_limit=3), A.CLAHE(clip_limit=2.0)], p=0.7),
        A.Affine(rotate=(-10, 10), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.RGBShift(p=0.5),
    ])


@pytest.mark.parametrize("data_format", ["json", "yaml"])
def test_a_pipeline_saved_by_albumentations_loads_and_matches_it(data_format, tmp_path, small_rgb):
    compose = _reference_compose()
    path = tmp_path / f"pipeline.{data_format}"
    A.save(compose, str(path), data_format=data_format)

    recipe = load_recipe(path)

    for seed in range(6):
        seed_pipeline(compose, seed)
        expected = compose(image=small_rgb)["image"]
        assert np.array_equal(recipe(small_rgb, seed=seed), expected), f"seed {seed}"


def test_save_albumentations_writes_what_albumentations_loads(tmp_path, small_rgb):
    import augkit.recipes.pca_color  # noqa: F401 - registers PCAColor for A.load

    recipe = load_recipe({"transforms": [
        {"HorizontalFlip": {"p": 0.5}},
        {"Affine": {"rotate": [-10, 10], "border_mode": "reflect_101", "p": 0.8}},
        {"OneOf": {"p": 0.5, "transforms": ["Blur", "CLAHE"]}},
        {"RGBShift": {"r_shift_limit": 10, "p": 0.5}},
        {"PCAColor": {"sigma": 0.2, "p": 0.9}},
    ]})
    path = tmp_path / "exported.json"

    save_albumentations(recipe, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = A.load(str(path))

    assert [str(w.message) for w in caught] == []  # nothing A.load would ignore

    assert json.loads(path.read_text())["transform"]["__class_fullname__"] == "Compose"
    for seed in range(6):
        seed_pipeline(loaded, seed)
        assert np.array_equal(loaded(image=small_rgb)["image"], recipe(small_rgb, seed=seed)), f"seed {seed}"


def test_an_exported_recipe_with_pca_color_loads_in_a_fresh_process_after_importing_augkit_pca_color(tmp_path):
    recipe = load_recipe({"transforms": [{"PCAColor": {"sigma": 0.2, "p": 1.0}}, "HorizontalFlip"]})
    path = tmp_path / "exported.json"
    save_albumentations(recipe, path)
    code = ("import sys, augkit.recipes.pca_color, albumentations as A\n"
            "pipeline = A.load(sys.argv[1])\n"
            "print([type(t).__name__ for t in pipeline.transforms])\n")

    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})

    assert result.returncode == 0, result.stderr
    assert result.stdout == "['PCAColor', 'HorizontalFlip']\n"


def test_recipe_export_of_pca_color_says_what_a_script_must_import(tmp_path):
    source = tmp_path / "pca.yaml"
    source.write_text("transforms:\n  - PCAColor: {sigma: 0.1}\n")
    out = tmp_path / "pipe.json"
    result = CliRunner().invoke(cli, ["recipe", "export", str(source), str(out)])
    assert result.exit_code == 0
    assert result.stderr == ("note: the file uses augkit's PCAColor: `import augkit.recipes.pca_color` before "
                             "albumentations' A.load reads it\n")
    assert out.exists()


def test_save_albumentations_yaml_keeps_the_seed(tmp_path):
    recipe = load_recipe({"seed": 5, "transforms": [{"HorizontalFlip": {"p": 0.5}}]})
    path = tmp_path / "exported.yaml"

    save_albumentations(recipe, path)

    assert isinstance(A.load(str(path), data_format="yaml"), A.Compose)
    assert load_recipe(path).seed == 5


# --- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_ignores_comments_and_formatting(write_recipe):
    block = write_recipe("""\
        # a comment
        transforms:
          - HorizontalFlip:
              p: 0.5   # half the time
          - Blur:
              blur_limit: 3
        """, "block.yaml")
    flow = write_recipe("transforms: [{HorizontalFlip: {p: 0.5}}, {Blur: {blur_limit: 3}}]\n", "flow.yaml")

    assert load_recipe(block).fingerprint == load_recipe(flow).fingerprint


def test_fingerprint_counts_defaults_as_written(write_recipe):
    implicit = load_recipe(write_recipe("transforms:\n  - CLAHE\n", "implicit.yaml"))
    explicit = load_recipe(write_recipe("transforms:\n  - CLAHE: {clip_limit: [1, 4], p: 0.5}\n", "explicit.yaml"))
    assert implicit.fingerprint == explicit.fingerprint


def test_fingerprint_changes_when_an_argument_changes(write_recipe):
    three = load_recipe(write_recipe("transforms:\n  - Blur: {blur_limit: 3}\n", "three.yaml"))
    five = load_recipe(write_recipe("transforms:\n  - Blur: {blur_limit: 5}\n", "five.yaml"))
    assert three.fingerprint != five.fingerprint


# --- what a recipe returns: augkit's commands take uint8 RGB only ---------------------------------


def to_unit_float(image, **_):
    """A Lambda's image function (at module level: Lambda refuses a lambda)."""
    return image.astype(np.float32) / 255


NORMALIZED = """\
    transforms:
      - HorizontalFlip: {p: 0.5}
      - Normalize
    """


def test_a_recipe_ending_in_normalize_runs_from_python_but_is_refused_for_the_commands(write_recipe, small_rgb):
    recipe = load_recipe(write_recipe(NORMALIZED))
    assert recipe(small_rgb, seed=0).dtype == np.float32  # recipe(image) keeps working

    with pytest.raises(RecipeError) as caught:
        recipe.require_image_output("drop {name}: the consumer's advice")

    assert isinstance(caught.value, UsageError)  # exit code 2 at the command line
    assert str(caught.value) == (f"{recipe.source}:3: Normalize makes float32 images, but augkit's commands take "
                                 f"uint8 RGB images; drop Normalize: the consumer's advice")


def test_a_normalize_inside_a_one_of_is_refused_at_its_own_line(write_recipe):
    recipe = load_recipe(write_recipe("""\
        transforms:
          - OneOf:
              transforms:
                - Blur: {blur_limit: 3}
                - Normalize: {p: 0.2}
        """))
    assert "(when it fires)" in recipe.describe_output()
    with pytest.raises(RecipeError, match=r"recipe\.yaml:5: Normalize makes float32 images"):
        recipe.require_image_output("drop {name}")


def test_to_float_then_from_float_is_accepted(write_recipe, small_rgb):
    recipe = load_recipe(write_recipe("transforms:\n  - ToFloat\n  - Blur: {p: 1}\n  - FromFloat\n"))
    recipe.require_image_output("drop {name}")
    assert recipe.describe_output() == "uint8 RGB"
    assert recipe(small_rgb, seed=0).dtype == np.uint8


@pytest.mark.parametrize("steps, message", [
    ("  - ToFloat\n  - HorizontalFlip\n", ":2: ToFloat makes float32 images, .*; drop ToFloat$"),
    ("  - ToFloat\n  - FromFloat: {dtype: uint16}\n", ":3: FromFloat makes uint16 images, .*; set dtype: uint8$"),
    ("  - ToGray: {num_output_channels: 1}\n", ":2: ToGray makes 1-channel images, .*; set num_output_channels: 3$"),
    ("  - FromFloat\n", ":2: FromFloat turns uint8 images into float ones .*; drop it, or put ToFloat before it$"),
    ("  - Sequential:\n      p: 0.5\n      transforms: [ToFloat]\n  - FromFloat: {p: 1}\n",
     ":5: FromFloat turns uint8 images into float ones"),  # when the Sequential does not fire
    ("  - SomeOf:\n      n: 1\n      transforms: [Blur, ToFloat]\n", ":4: ToFloat makes float32 images"),
], ids=["to-float", "from-float-uint16", "one-channel-gray", "from-float-alone", "skipped-branch", "some-of"])
def test_every_step_that_changes_dtype_or_channels_is_refused_with_its_fix(write_recipe, steps, message):
    recipe = load_recipe(write_recipe("transforms:\n" + steps))
    with pytest.raises(RecipeError, match=message):
        recipe.require_image_output("drop {name}")


def test_recipe_check_reports_the_output(write_recipe):
    runner = CliRunner()
    plain_recipe = write_recipe("transforms:\n  - HorizontalFlip\n", "plain.yaml")
    plain = runner.invoke(cli, ["recipe", "check", str(plain_recipe)])
    normalized = runner.invoke(cli, ["recipe", "check", str(write_recipe(NORMALIZED, "normalized.yaml"))])

    assert plain.exit_code == 0 and "\noutput: uint8 RGB\n" in plain.stdout
    assert normalized.exit_code == 0
    assert ("\noutput: float32 after Normalize at line 3: usable only from Python (recipe(image)), "
            "not by augkit's commands\n") in normalized.stdout


@pytest.mark.parametrize("where", ["head", "tail"])
def test_for_image_turns_a_result_that_is_not_a_uint8_rgb_image_into_an_error(small_rgb, where):
    # A Lambda declares nothing: only the result shows what it made. "head": it runs once
    # per image (p 1, draws nothing); "tail": after a flip, for every seed.
    steps = [{"Lambda": {"image": to_unit_float}}, {"HorizontalFlip": {"p": 0.5}}]
    recipe = load_recipe({"transforms": steps if where == "head" else steps[::-1]})
    assert recipe(small_rgb, seed=0).dtype == np.float32
    for seed in range(2):
        with pytest.raises(ValueError, match=r"the recipe returned float32 \(120, 160, 3\), not a uint8 RGB image"):
            recipe.for_image(small_rgb)(seed)


# --- the recipes shipped in recipes/ ----------------------------------------------------------------

SHIPPED = sorted(RECIPES_DIR.glob("*.yaml"))


def test_recipes_are_shipped():
    assert len(SHIPPED) >= 5


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_recipe_gives_224_rgb(path, photo_sized_rgb):
    recipe = load_recipe(path)
    assert recipe.describe_output() == "uint8 RGB"  # usable by every command
    for seed in range(4):
        out = recipe(photo_sized_rgb, seed=seed)
        assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_the_eval_recipe_is_shorter_side_256_then_the_centre_224(photo_sized_rgb):
    import cv2

    out = load_recipe(RECIPES_DIR / "eval.yaml")(photo_sized_rgb, seed=0)  # 300x400
    resized = cv2.resize(photo_sized_rgb, (341, 256), interpolation=cv2.INTER_AREA)  # 400 * 256 / 300 = 341.3
    top, left = (256 - 224) // 2, (341 - 224) // 2
    assert out.shape == (224, 224, 3)
    assert np.array_equal(out, resized[top:top + 224, left:left + 224])


def test_the_letterbox_recipe_keeps_the_whole_image_between_black_bars(photo_sized_rgb):
    out = load_recipe(RECIPES_DIR / "eval-letterbox.yaml")(photo_sized_rgb, seed=0)  # 300x400 -> 168x224
    assert out.shape == (224, 224, 3)
    assert not out[:28].any() and not out[28 + 168:].any() and out[28:28 + 168].mean() > 50
