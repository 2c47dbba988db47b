"""augkit.recipes.checks and .probe: values that build but cannot run are refused at load time; the
image size a recipe needs is said; a dry run names the line of what fails on an image."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from augkit.cli import cli
from augkit.core.errors import RecipeError
from augkit.recipes.checks import MAX_KERNEL, describe_exception
from augkit.recipes.probe import probe, probe_isolated
from augkit.recipes import load_recipe


@pytest.fixture
def write_recipe(tmp_path):
    def write(text: str, name: str = "recipe.yaml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- refused at load time: no image can run them ---------------------------------------------------

REFUSED = [
    ("some-of-negative-n", "  - SomeOf: {n: -1, transforms: [Blur, CLAHE]}\n",
     "SomeOf: n: -1 transforms cannot be applied; n is how many of the 2 to apply, at least 1"),
    ("random-order-zero-n", "  - RandomOrder: {n: 0, transforms: [Blur, CLAHE]}\n",
     "RandomOrder: n: 0 transforms cannot be applied"),
    ("random-scale-to-zero", "  - RandomScale: {scale_limit: -1, p: 1}\n",
     "RandomScale: scale_limit: the factor reaches 1 + (-1) = 0x, an empty image; keep the limits above -1"),
    ("random-scale-below-zero", "  - RandomScale: {scale_limit: [-1.5, 0]}\n",
     "RandomScale: scale_limit: the factor reaches 1 + (-1.5) = -0.5x"),
    ("huge-blur-kernel", "  - Blur: {blur_limit: 100001}\n",
     f"Blur: blur_limit: a 100001 px kernel is past {MAX_KERNEL} px"),
    ("huge-median-kernel", "  - MedianBlur: {blur_limit: [3, 65537]}\n",
     f"MedianBlur: blur_limit: a 65537 px kernel is past {MAX_KERNEL} px"),
    ("number-past-int32", "  - Blur: {blur_limit: 1.0e+24}\n",
     "Blur: blur_limit: 1e+24 is past what OpenCV takes (2^31 - 1)"),
    ("int-past-int32", "  - Blur: {blur_limit: 1000000000000000000000000}\n",
     "Blur: blur_limit: 1e+24 is past what OpenCV takes (2^31 - 1)"),
    ("not-finite", "  - Affine: {rotate: [-.inf, 5]}\n", "Affine: rotate: -inf is not a finite number"),
    ("nan-p", "  - HorizontalFlip: {p: .nan}\n", "HorizontalFlip: p: nan is not a finite number"),
    ("yaml-reads-1e24-as-text", "  - Blur: {blur_limit: 1e24}\n",
     "YAML reads 1e24 as text: write a number such as 1.0e+3"),
]


@pytest.mark.parametrize(("step", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_value_no_image_can_run_with_is_refused_at_its_line(step, message, write_recipe):
    path = write_recipe("transforms:\n" + step)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:2: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_kernel_up_to_the_limit_builds():
    load_recipe({"transforms": [{"MedianBlur": {"blur_limit": [3, MAX_KERNEL]}}]})


# --- the image size a recipe needs ---------------------------------------------------------------


@pytest.mark.parametrize(("steps", "needs"), [
    ([{"RandomCrop": {"height": 512, "width": 600}}],
     ["needs images at least 600 wide and 512 high (RandomCrop)"]),
    ([{"Resize": {"height": 600, "width": 600}}, {"RandomCrop": {"height": 512, "width": 512}}], ["any size"]),
    ([{"SmallestMaxSize": {"max_size": 256}}, {"RandomCrop": {"height": 224, "width": 224}}], ["any size"]),
    ([{"RandomCrop": {"height": 64, "width": 64, "pad_if_needed": True}}], ["any size"]),
    ([{"LongestMaxSize": {"max_size": 300}}, {"CenterCrop": {"height": 224, "width": 224}}],
     ["needs images at least 224 wide and 224 high where it runs (after the resizing before it) (CenterCrop)"]),
    ([{"OneOf": {"transforms": [{"Crop": {"x_max": 300, "y_max": 200}}, "Blur"]}}],
     ["needs images at least 300 wide and 200 high (Crop)"]),
    ([{"HorizontalFlip": {}}, {"Affine": {"rotate": 5}}, {"RandomCrop": {"height": 32, "width": 32}}],
     ["needs images at least 32 wide and 32 high (RandomCrop)"]),
], ids=["crop", "after-resize", "after-smallest-max-size", "padded", "after-longest-max-size", "inside-one-of",
        "after-size-keeping-steps"])
def test_describe_input_names_each_crop_that_needs_larger_images(steps, needs):
    assert load_recipe({"transforms": steps}).describe_input() == needs  # a dict has no lines to name


def test_recipe_check_says_which_transform_needs_what_size(write_recipe):
    path = write_recipe("transforms:\n  - HorizontalFlip\n  - RandomCrop: {height: 512, width: 512}\n")
    result = CliRunner().invoke(cli, ["recipe", "check", "--no-dry-run", str(path)])
    assert result.exit_code == 0
    assert "\ninput: needs images at least 512 wide and 512 high (RandomCrop at line 3)\n" in result.stdout


# --- a dry run ----------------------------------------------------------------------------------------

FAILS_ON_IMAGES = "transforms:\n  - HorizontalFlip\n  - GlassBlur: {sigma: 0, p: 0.1}\n"


def test_probe_names_the_line_of_a_transform_that_fails_on_every_image(write_recipe):
    recipe = load_recipe(write_recipe(FAILS_ON_IMAGES))
    report = probe(recipe)
    ((line, message),) = report.problems
    assert line == 3
    assert message.startswith("GlassBlur: fails on a 256x256 image: error: (-215:Assertion failed) ksize.width > 0")


def test_probe_runs_a_crop_on_an_image_large_enough_for_it(write_recipe):
    recipe = load_recipe(write_recipe("transforms:\n  - RandomCrop: {height: 512, width: 300}\n"))
    report = probe(recipe)
    assert report.problems == [] and report.side == 512


def test_probe_finds_a_crop_larger_than_what_the_recipe_resized_to(write_recipe):
    recipe = load_recipe(write_recipe("transforms:\n  - Resize: {height: 100, width: 100}\n"
                                      "  - RandomCrop: {height: 224, width: 224}\n"))
    ((line, message),) = probe(recipe).problems
    assert line == 3
    assert message.startswith("RandomCrop: fails in the recipe on a 256x256 image (seed 0): CropSizeError: Crop size")


def test_probe_leaves_out_a_crop_larger_than_the_largest_probe_and_says_so():
    recipe = load_recipe({"transforms": [{"CenterCrop": {"height": 5000, "width": 10}}]})
    report = probe(recipe)
    assert report.problems == []
    assert report.notes == ["CenterCrop not tried: it needs images larger than 4096 px",
                            "the whole recipe not tried: it needs images larger than 4096 px"]


def test_the_isolated_probe_reports_the_same_problem_from_a_child_process(write_recipe):
    path = write_recipe(FAILS_ON_IMAGES)
    ((line, message),) = probe_isolated(str(path)).problems
    assert line == 3 and message.startswith("GlassBlur: fails on a 256x256 image")


def test_a_probe_child_that_does_not_get_to_a_transform_in_time_is_a_note_not_a_problem(write_recipe):
    path = write_recipe("transforms:\n  - Blur\n")
    report = probe_isolated(str(path), timeout=0.001)
    assert report.problems == []
    assert report.notes == ["not run: the child process did not finish within 0.001 s before trying a transform"]


def test_a_probe_child_that_dies_on_a_transform_is_a_problem_at_its_line(write_recipe, monkeypatch):
    # What a hard crash (OpenCV's median filter on a huge kernel, before the kernel limit)
    # looks like from outside: the child says what it is trying, then dies by a signal.
    path = write_recipe("transforms:\n  - HorizontalFlip\n  - Blur\n")
    code = ("import json, os, signal\n"
            "print(json.dumps({'trying': ['Blur', 3]}), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda command, **kw: real_popen([sys.executable, "-c", code], **kw))

    ((line, message),) = probe_isolated(str(path)).problems

    assert line == 3
    assert message.startswith("Blur: the dry run crashed (signal 9) while trying it on a synthetic image")


def test_recipe_check_reports_every_dry_run_problem_with_its_line_and_exits_2(write_recipe):
    path = write_recipe(FAILS_ON_IMAGES + "  - Resize: {height: 50, width: 50}\n  - CenterCrop: {height: 64, width: 64}\n")
    result = CliRunner().invoke(cli, ["recipe", "check", str(path)])
    assert result.exit_code == 2
    errors = result.stderr.removeprefix("Error: ").splitlines()
    assert [e.split(": ")[0:2] for e in errors] == [[f"{path}:3", "GlassBlur"], [f"{path}:5", "CenterCrop"]]
    assert "Traceback" not in result.output


def test_recipe_check_of_a_recipe_that_runs_says_what_the_dry_run_did(write_recipe):
    path = write_recipe("transforms:\n  - HorizontalFlip\n  - Blur: {blur_limit: 3}\n")
    result = CliRunner().invoke(cli, ["recipe", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "\ndry run: each transform and the whole recipe ran on a 256x256 synthetic image, 3 seeds\n" in result.stdout


def test_describe_exception_is_one_line_without_opencvs_source_path():
    import cv2
    import numpy as np

    try:
        cv2.GaussianBlur(np.zeros((4, 4), np.uint8), (0, 0), 0)
    except cv2.error as exc:
        text = describe_exception(exc)
    assert text.startswith("error: (-215:Assertion failed)") and "\n" not in text and "/io/" not in text
