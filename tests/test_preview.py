"""augkit.stages.preview: captions that name what fired with its drawn values, and a seeded grid."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from augkit.cli import cli
from augkit.core.errors import AugkitError
from augkit.stages.preview import _fmt_number, caption_for, preview, sample_captions
from augkit.recipes import load_recipe
from augkit.recipes.auto_augment import applied_magnitude

GAP = 4  # pixels between tiles and around the grid


VARIED = [
    {"Affine": {"rotate": [-20, 20], "scale": [0.8, 1.2], "p": 0.7}},
    {"RGBShift": {"p": 0.5}},
    {"CLAHE": {"p": 0.5}},
]


@pytest.fixture
def varied_recipe():
    return load_recipe({"transforms": VARIED})


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


@pytest.mark.parametrize(("params", "caption"), [
    ({"alpha": np.array([-0.0004, 0.1712])}, "X alpha=0,0.171"),
    ({"alpha": -0.0}, "X alpha=0"),
    ({"alpha": np.array([-0.004, 0.17, 0.05])}, "X alpha=-0.004,0.17,0.05"),
    ({"temperature": 9785.4}, "X temperature=9785"),
], ids=["tiny-negative-is-0", "negative-zero", "three-sig-digits", "no-exponent"])
def test_caption_numbers_have_three_significant_digits_and_never_minus_zero(params, caption):
    assert caption_for("X", params) == caption


def test_caption_for_color_jitter_shows_all_four_factors():
    params = {"brightness": 1.1, "contrast": 0.968, "saturation": 0.904, "hue": 0.0113, "order": [2, 0, 3, 1]}
    assert caption_for("ColorJitter", params) == "ColorJitter bright=1.1 contr=0.968 sat=0.904 hue=0.0113"


def test_caption_for_gauss_noise_shows_the_noise_spread_in_levels():
    noise = np.random.default_rng(0).normal(0, 12.0, (64, 64, 3))
    assert caption_for("GaussNoise", {"noise_map": noise, "shape": (64, 64, 3)}) == "GaussNoise noise_sd=12"


def test_caption_for_resize_shows_the_size_it_made():
    params = {"interpolation": 1, "shape": (120, 160, 3)}
    assert caption_for("Resize", params, output_shape=(64, 80, 3)) == "Resize to=80x64"
    assert caption_for("Resize", params, output_shape=(120, 160, 3)) == "Resize"


def test_caption_for_rotate_shows_the_angle_of_its_matrix():
    import cv2

    matrix = cv2.getRotationMatrix2D((80, 60), 30, 1.0)
    assert caption_for("Rotate", {"matrix": matrix, "x_min": -1, "x_max": -1}) == "Rotate rot=30"


def test_caption_for_values_of_odd_shapes_leaves_them_out():
    circles = [(0.5, (1, 2), 3, (255, 255, 255)), (0.2, (4, 5), 6, (255, 255, 255))]  # RandomSunFlare's
    assert caption_for("RandomSunFlare", {"circles": circles, "flare_center": (67, 15)}) == (
        "RandomSunFlare flare_center=67,15")


@pytest.mark.filterwarnings("ignore::UserWarning")  # ToRGB: "The image is already an RGB"
def test_every_registered_transform_gets_a_caption_from_a_real_run(small_rgb):
    from augkit.stages.preview import _captions
    from augkit.recipes.transforms import registry

    for name, entry in registry().items():
        if entry.kind == "composition":
            continue
        try:
            recipe = load_recipe({"transforms": [{name: {"p": 1.0}}]})
            out, applied = recipe.trace(small_rgb, seed=0)
        except Exception:  # noqa: BLE001 - needs arguments, or cannot run on defaults: not a caption's business
            continue
        for caption in _captions(applied, out.shape):
            assert caption.startswith(name) and "-0," not in caption and not caption.endswith("-0")


def test_caption_for_rand_augment_names_each_op_drawn_and_its_magnitude(small_rgb):
    params = {"shape": (64, 64, 3), "interpolation": 0, "fill": 0.0,
              "ops": (("Rotate", -8.1234), ("Equalize", None), ("Posterize", 6.0))}
    assert caption_for("RandAugment", params) == "RandAugment Rotate=-8.12 Equalize Posterize=6"
    shifts = {**params, "ops": (("TranslateX", -30.5), ("TranslateY", 1.07))}  # applied in whole pixels
    assert caption_for("RandAugment", shifts) == "RandAugment TranslateX=-30 TranslateY=1"
    recipe = load_recipe({"transforms": [{"TrivialAugmentWide": {}}]})
    _, applied = recipe.trace(small_rgb, seed=1)
    (name, magnitude), = applied[0][1]["ops"]
    expected = name if magnitude is None else f"{name}={_fmt_number(applied_magnitude(name, magnitude))}"
    assert caption_for(*applied[0]) == f"TrivialAugmentWide {expected}"


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


def test_without_a_seed_the_recipes_seed_is_taken(small_rgb, varied_recipe):
    seeded = load_recipe({"seed": 4, "transforms": VARIED})
    assert np.array_equal(preview(seeded, [(small_rgb, "a.png")], n=4, tile=64),
                          preview(varied_recipe, [(small_rgb, "a.png")], n=4, seed=4, tile=64))


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


# --- failures are one line naming the image and the transform --------------------------------------


def _write_png(path, image):
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


CROP_512 = "transforms:\n  - HorizontalFlip\n  - RandomCrop: {height: 512, width: 512}\n"


def test_a_crop_larger_than_the_image_is_one_line_naming_the_image_and_the_transform(tmp_path, small_rgb):
    recipe = tmp_path / "crop.yaml"
    recipe.write_text(CROP_512)
    image, grid = tmp_path / "photo.png", tmp_path / "grid.png"
    _write_png(image, small_rgb)

    result = CliRunner().invoke(cli, ["preview", str(recipe), str(image), "-o", str(grid)])

    assert result.exit_code == 1
    assert result.stderr == ("Error: photo.png: sample #1: RandomCrop at line 3: CropSizeError: Crop size (height, "
                             "width) exceeds image dimensions (height, width): (512, 512) vs (120, 160)\n")
    assert not grid.exists()


def test_in_a_folder_an_image_the_recipe_fails_on_is_skipped(tmp_path, small_rgb):
    from conftest import make_structured_rgb

    recipe = tmp_path / "crop.yaml"
    recipe.write_text("transforms:\n  - RandomCrop: {height: 200, width: 200}\n")
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    _write_png(folder / "cat" / "big.png", make_structured_rgb(240, 320))
    _write_png(folder / "cat" / "small.png", small_rgb)
    grid = tmp_path / "grid.png"

    result = CliRunner().invoke(cli, ["preview", str(recipe), str(folder), "-o", str(grid), "-n", "2"])

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("skipped: cat/small.png: sample #1: RandomCrop at line 2: CropSizeError")
    # One image left: its original and 2 samples in a near-square grid, 2 columns (3 for two images).
    assert cv2.imread(str(grid)).shape[1] == 2 * (256 + GAP) + GAP


def test_a_split_manifest_is_a_source_with_split_as_everywhere(tmp_path, small_rgb):
    recipe = tmp_path / "flip.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip\n")
    for i in range(3):
        (tmp_path / "images" / "cat").mkdir(parents=True, exist_ok=True)
        _write_png(tmp_path / "images" / "cat" / f"c{i}.png", small_rgb)
    manifest = tmp_path / "split.csv"
    manifest.write_text("path,label,split\nimages/cat/c0.png,cat,train\nimages/cat/c1.png,cat,val\n"
                        "images/cat/c2.png,cat,val\n")
    grid = tmp_path / "grid.png"
    refused = CliRunner().invoke(cli, ["preview", str(recipe), str(manifest), "-o", str(grid)])
    assert refused.exit_code == 2 and "pass --split train" in refused.output and not grid.exists()
    done = CliRunner().invoke(cli, ["preview", str(recipe), str(manifest), "--split", "val", "-o", str(grid), "-n", "1"])
    assert done.exit_code == 0, done.output
    one = tmp_path / "one.png"
    assert CliRunner().invoke(cli, ["preview", str(recipe), str(manifest), "--split", "train", "-o", str(one),
                                    "-n", "1"]).exit_code == 0
    two_rows, one_row = cv2.imread(str(grid)).shape[0], cv2.imread(str(one)).shape[0]
    assert two_rows - GAP == 2 * (one_row - GAP)  # a row per image: the val split's two, train's one


@pytest.mark.parametrize(("suffix", "magic"), [(".jpg", b"\xff\xd8\xff"), (".png", b"\x89PNG"), (".webp", b"RIFF")])
def test_the_grid_is_written_in_the_format_its_suffix_names(suffix, magic, tmp_path, small_rgb):
    recipe = tmp_path / "flip.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip\n")
    image, grid = tmp_path / "photo.png", tmp_path / f"grid{suffix}"
    _write_png(image, small_rgb)

    result = CliRunner().invoke(cli, ["preview", str(recipe), str(image), "-o", str(grid), "-n", "1"])

    assert result.exit_code == 0, result.output
    assert grid.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["grid.gif", "grid"])
def test_a_grid_file_without_a_known_image_suffix_is_refused_before_any_work(name, tmp_path, small_rgb):
    recipe = tmp_path / "flip.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip\n")
    image = tmp_path / "photo.png"
    _write_png(image, small_rgb)

    result = CliRunner().invoke(cli, ["preview", str(recipe), str(image), "-o", str(tmp_path / name)])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path / name}: cannot write a grid as ")
    assert result.stderr.endswith("; end -o with .png, .jpg or .webp\n")
    assert not (tmp_path / name).exists()


# --- -o replaces only a grid augkit preview drew ---------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_an_unrelated_file_at_o_is_kept_unless_overwrite_and_a_grid_preview_drew_is_replaced(suffix, tmp_path,
                                                                                              small_rgb):
    recipe = tmp_path / "flip.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip\n")
    image, mine = tmp_path / "photo.png", tmp_path / f"myphoto{suffix}"
    _write_png(image, small_rgb)
    cv2.imwrite(str(mine), small_rgb[::-1])
    before = mine.read_bytes()

    result = CliRunner().invoke(cli, ["preview", str(recipe), str(image), "-o", str(mine), "-n", "1"])

    assert result.exit_code == 2
    kind = {".png": "a PNG image", ".jpg": "a JPEG image", ".webp": "a WebP image"}[suffix]
    assert result.stderr == (f"Error: -o {mine}: exists and is {kind}, not a grid augkit preview drew; choose another "
                             f"path, or --overwrite to replace it\n")
    assert mine.read_bytes() == before
    for args in (["--overwrite"], []):  # then its own grid, which a rerun replaces
        result = CliRunner().invoke(cli, ["preview", str(recipe), str(image), "-o", str(mine), "-n", "1", *args])
        assert result.exit_code == 0, result.output
    assert mine.read_bytes() != before and cv2.imread(str(mine)) is not None


def test_a_grid_is_never_written_into_the_folder_it_shows(tmp_path, small_rgb):
    recipe = tmp_path / "flip.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip\n")
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    _write_png(folder / "cat" / "a.png", small_rgb)
    before = (folder / "cat" / "a.png").read_bytes()

    for target in (folder / "cat" / "a.png", folder / "grid.png"):
        result = CliRunner().invoke(cli, ["preview", str(recipe), str(folder), "-o", str(target), "--overwrite"])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"Error: -o {target}: is ")
    assert sorted(p.name for p in folder.rglob("*")) == ["a.png", "cat"] and (folder / "cat" / "a.png").read_bytes() == before
