"""augkit.preview: captions that name what fired with its drawn values, and a seeded grid."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from augkit.cli import cli
from augkit.errors import AugkitError
from augkit.preview import caption_for, preview, sample_captions
from augkit.recipes import load_recipe

GAP = 4  # pixels between tiles and around the grid


@pytest.fixture
def varied_recipe():
    return load_recipe({"transforms": [
        {"Affine": {"rotate": [-20, 20], "scale": [0.8, 1.2], "p": 0.7}},
        {"RGBShift": {"p": 0.5}},
        {"CLAHE": {"p": 0.5}},
    ]})


def test_caption_for_affine_shows_rotation_and_one_scale_when_x_equals_y():
    params = {"shape": (120, 160, 3), "rotate": -8.7312, "scale": {"x": 1.0312, "y": 1.0312}, "matrix": np.eye(3)}
    assert caption_for("Affine", params) == "Affine rot=-8.73 scale=1.03"


def test_caption_for_affine_shows_both_scales_when_they_differ():
    params = {"rotate": 3.0, "scale": {"x": 1.1, "y": 0.9}}
    assert caption_for("Affine", params) == "Affine rot=3 scale=1.10/0.90"


def test_caption_for_clahe_shows_the_clip_limit():
    assert caption_for("CLAHE", {"clip_limit": 2.4567, "shape": (64, 64, 3)}) == "CLAHE clip=2.46"


def test_caption_for_rgb_shift_shows_the_three_shifts():
    caption = caption_for("RGBShift", {"noise_map": np.array([-10.527, 12.05, 3.0])})
    assert caption == "RGBShift shift=-10.5,12.1,3"


def test_caption_for_a_crop_shows_size_and_corner():
    caption = caption_for("RandomCrop", {"crop_coords": (54, 16, 114, 66), "pad_params": None, "fill": 0.0})
    assert caption == "RandomCrop crop=60x50@54,16"


def test_caption_for_coarse_dropout_counts_holes():
    holes = np.array([[1, 2, 5, 6], [10, 10, 20, 20]])
    assert caption_for("CoarseDropout", {"holes": holes, "seed": 12345}) == "CoarseDropout holes=2"


def test_caption_for_a_transform_without_values_is_its_name():
    assert caption_for("HorizontalFlip", {"shape": (64, 64, 3)}) == "HorizontalFlip"


def test_caption_for_drawn_params_of_a_real_run(small_rgb):
    recipe = load_recipe({"transforms": [
        {"Affine": {"rotate": [-10, 10], "scale": [0.9, 1.1], "keep_ratio": True, "p": 1.0}},
        {"CLAHE": {"p": 1.0}},
    ]})
    _, applied = recipe.trace(small_rgb, seed=0)
    captions = [caption_for(name, params) for name, params in applied]
    assert captions[0].startswith("Affine rot=") and " scale=" in captions[0] and "/" not in captions[0]
    assert captions[1].startswith("CLAHE clip=")


def test_sample_captions_start_with_the_original(small_rgb, varied_recipe):
    samples = sample_captions(varied_recipe, small_rgb, "cat/a.jpg", n=3, seed=0)
    assert len(samples) == 4
    image, caption = samples[0]
    assert image is small_rgb and caption == ["original 160x120", "cat/a.jpg"]
    assert [c[0] for _, c in samples[1:]] == ["#1 160x120", "#2 160x120", "#3 160x120"]


def _assert_grid_layout(grid: np.ndarray, rows: int, columns: int, tile: int) -> None:
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    assert grid.shape[1] == columns * (tile + GAP) + GAP
    cell_height, remainder = divmod(grid.shape[0] - GAP, rows)
    assert remainder == 0
    assert cell_height - GAP > tile  # the tile plus its caption


@pytest.mark.parametrize(("n", "tile"), [(3, 64), (8, 96), (1, 80)])
def test_one_image_gives_a_near_square_grid(n, tile, small_rgb, varied_recipe):
    grid = preview(varied_recipe, [(small_rgb, "a.png")], n=n, seed=0, tile=tile)
    columns = math.ceil(math.sqrt(n + 1))
    _assert_grid_layout(grid, rows=math.ceil((n + 1) / columns), columns=columns, tile=tile)


def test_several_images_give_one_row_each(small_rgb, varied_recipe):
    images = [(small_rgb, "a.png"), (small_rgb[:, ::-1].copy(), "b.png"), (small_rgb[::2], "c.png")]
    grid = preview(varied_recipe, images, n=4, seed=0, tile=64)
    _assert_grid_layout(grid, rows=3, columns=5, tile=64)


def test_the_original_tile_shows_the_image_letterboxed(small_rgb, varied_recipe):
    grid = preview(varied_recipe, [(small_rgb, "a.png")], n=1, seed=0, tile=160)
    first_tile = grid[GAP : GAP + 160, GAP : GAP + 160]
    # 160x120 into a 160 square: 20 rows of background above, the image in the middle.
    assert np.array_equal(first_tile[20:140], small_rgb)


def test_same_seed_gives_the_same_grid(small_rgb, varied_recipe):
    first = preview(varied_recipe, [(small_rgb, "a.png")], n=4, seed=3, tile=64)
    again = preview(varied_recipe, [(small_rgb, "a.png")], n=4, seed=3, tile=64)
    assert np.array_equal(first, again)


def test_different_seeds_give_different_grids(small_rgb, varied_recipe):
    first = preview(varied_recipe, [(small_rgb, "a.png")], n=4, seed=3, tile=64)
    other = preview(varied_recipe, [(small_rgb, "a.png")], n=4, seed=4, tile=64)
    assert not np.array_equal(first, other)


# --- a grid shows uint8 RGB images only ---------------------------------------------------


def to_unit_float(image, **_):
    """A Lambda's image function (at module level: Lambda refuses a lambda)."""
    return image.astype(np.float32) / 255


def test_preview_cli_refuses_a_recipe_ending_in_normalize(tmp_path, small_rgb):
    recipe = tmp_path / "normalized.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n  - Normalize\n")
    image, grid = tmp_path / "photo.png", tmp_path / "grid.png"
    cv2.imwrite(str(image), small_rgb)

    result = CliRunner().invoke(cli, ["preview", str(recipe), str(image), "-o", str(grid)])

    assert result.exit_code == 2
    assert result.stderr == (f"Error: {recipe}:3: Normalize makes float32 images, but augkit's commands take uint8 "
                             f"RGB images; drop Normalize: images are written as 8-bit\n")
    assert not grid.exists()


def test_a_sample_that_is_not_an_image_at_run_time_is_an_error_not_a_tile(small_rgb):
    recipe = load_recipe({"transforms": [{"Lambda": {"image": to_unit_float}}]})
    with pytest.raises(AugkitError, match=r"^photo: sample #1: the recipe returned float32 \(120, 160, 3\)"):
        sample_captions(recipe, small_rgb, "photo", n=2, seed=0)
