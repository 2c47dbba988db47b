"""The plan of an augment run; here `--balance N`: N outputs for every class, copies spread
evenly over each class's images, deterministic."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from augkit.core.errors import UsageError
from augkit.input.discovery import Sample
from augkit.stages.augment_plan import AugmentOptions, balance_plan, check_options, plan_jobs
from imagefiles import encoded, tree_bytes, write_tree
from conftest import make_structured_rgb
from clirun import run

RECIPE = "transforms:\n  - HorizontalFlip: {p: 0.5}\n  - RGBShift: {p: 0.5}\n"


def skewed_samples(counts: dict[str, int]) -> list[Sample]:
    return [Sample(f"/d/{label}/{label}_{i}.jpg", f"{label}/{label}_{i}.jpg", label)
            for label, n in counts.items() for i in range(n)]


def outputs_per_class(jobs) -> Counter:
    return Counter(job.label for job in jobs for _ in job.outputs)


def test_every_class_gets_exactly_n_outputs_with_copies_spread_evenly():
    samples = skewed_samples({"rare": 3, "common": 20, "single": 1})
    jobs = plan_jobs(samples, AugmentOptions(balance=10, seed=0))
    assert outputs_per_class(jobs) == {"rare": 10, "common": 10, "single": 10}
    per_image = {label: sorted(len(j.outputs) for j in jobs if j.label == label) for label in ("rare", "single")}
    assert per_image == {"rare": [3, 3, 4], "single": [10]}
    assert sorted(len(j.outputs) for j in jobs if j.label == "common") == [0] * 10 + [1] * 10


def test_originals_count_towards_n_with_include_original():
    samples = skewed_samples({"rare": 3, "common": 12})
    jobs = plan_jobs(samples, AugmentOptions(balance=10, include_original=True, seed=0))
    assert outputs_per_class(jobs) == {"rare": 10, "common": 10}
    rare = [j for j in jobs if j.label == "rare"]
    assert all(j.outputs[0][1] is None for j in rare)  # each rare image keeps its original, and 2-3 copies
    assert sorted(len(j.outputs) for j in rare) == [3, 3, 4]
    originals = [j for j in jobs if j.label == "common" and j.outputs and j.outputs[0][1] is None]
    assert len(originals) == 10 and all(len(j.outputs) == 1 for j in originals)  # 10 of 12 originals, no copies


def test_the_plan_per_class_says_what_each_class_gets():
    _, classes = balance_plan(skewed_samples({"a": 3, "b": 20}), AugmentOptions(balance=10, include_original=True))
    assert classes["a"].originals == 3 and classes["a"].copies == 7 and (classes["a"].least, classes["a"].most) == (2, 3)
    assert classes["b"].originals == 10 and classes["b"].copies == 0 and classes["b"].planned == 10


def test_the_plan_is_deterministic_and_independent_of_the_listing_order():
    samples = skewed_samples({"a": 7, "b": 2})
    options = AugmentOptions(balance=10, seed=3)
    assert plan_jobs(samples, options) == plan_jobs(samples, options)
    by_key = {j.key: j.outputs for j in plan_jobs(samples, options)}
    assert {j.key: j.outputs for j in plan_jobs(samples[::-1], options)} == by_key
    other_seed = {j.key: j.outputs for j in plan_jobs(samples, AugmentOptions(balance=10, seed=4))}
    assert other_seed != by_key  # which images take the extra copy follows the seed


def test_output_names_are_wide_enough_for_the_most_copies():
    jobs = plan_jobs(skewed_samples({"one": 1, "many": 3}), AugmentOptions(balance=150, seed=0))
    names = [rel for j in jobs if j.label == "one" for rel, _ in j.outputs]
    assert names[0] == "one/one_0_000.jpg" and names[-1] == "one/one_0_149.jpg"


def test_a_balance_below_one_or_past_the_output_limit_is_a_usage_error():
    with pytest.raises(UsageError, match="at least 1"):
        check_options(AugmentOptions(balance=0))
    with pytest.raises(UsageError, match="5,000,000 outputs for each of 3 classes"):
        check_options(AugmentOptions(balance=5_000_000), inputs=10, classes=3)


# --- through the command ---------------------------------------------------------------------


@pytest.fixture
def skewed(tmp_path):
    """An imbalanced dataset built in code: cat 2 images, dog 5, owl 9."""
    files = {}
    for c, (label, n) in enumerate({"cat": 2, "dog": 5, "owl": 9}.items()):
        for i in range(n):
            files[f"{label}/{label}_{i}.jpg"] = encoded(make_structured_rgb(40, 48, seed=10 * c + i), "JPEG")
    return write_tree(tmp_path / "data", files)


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


def files_per_class(out):
    return {d.name: len(list(d.iterdir())) for d in sorted(out.iterdir()) if d.is_dir()}


def test_balance_gives_exactly_n_outputs_per_class_and_reports_the_plan(recipe, skewed, tmp_path):
    out = tmp_path / "out"
    result = run("augment", recipe, skewed, out, "--balance", 8, "--include-original", "-w", 0)
    assert files_per_class(out) == {"cat": 8, "dog": 8, "owl": 8}
    assert "cat: 2 images, 2 originals + 6 copies (3 per image) -> 8" in result.output
    assert "owl: 9 images, 8 originals + 0 copies (0 per image) -> 8" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs_per_class"] == {"cat": 8, "dog": 8, "owl": 8}
    assert summary["balance"]["target"] == 8
    assert summary["balance"]["per_class"]["dog"] == {"images": 5, "originals": 5, "copies": 3,
                                                       "copies_per_image": [0, 1], "planned": 8, "outputs": 8,
                                                       "unreadable_images": 0}


def test_a_balanced_run_is_the_same_for_any_worker_count_and_resumes(recipe, skewed, tmp_path):
    run("augment", recipe, skewed, tmp_path / "a", "--balance", 6, "-w", 0)
    run("augment", recipe, skewed, tmp_path / "b", "--balance", 6, "-w", 2)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert "0 written, 18 already there" in run("augment", recipe, skewed, tmp_path / "a", "--balance", 6,
                                                  "-w", 0).output
    assert "6 written, 18 already there" in run("augment", recipe, skewed, tmp_path / "a", "--balance", 8,
                                                  "-w", 0).output
    run("augment", recipe, skewed, tmp_path / "fresh", "--balance", 8, "-w", 0)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "fresh")


def test_a_smaller_balance_is_refused_unless_overwrite_like_fewer_copies(recipe, skewed, tmp_path):
    out = tmp_path / "out"
    run("augment", recipe, skewed, out, "--balance", 8, "-w", 0)
    assert "balance 8 -> 4" in run("augment", recipe, skewed, out, "--balance", 4, "-w", 0, expect=2).output
    run("augment", recipe, skewed, out, "--balance", 4, "-w", 0, "--overwrite")
    assert files_per_class(out) == {"cat": 4, "dog": 4, "owl": 4}


def test_a_class_with_no_readable_image_is_reported_not_divided_by_zero(recipe, skewed, tmp_path):
    for f in (skewed / "cat").iterdir():
        f.write_bytes(b"<html>not an image</html>")
    out = tmp_path / "out"
    result = run("augment", recipe, skewed, out, "--balance", 4, "-w", 0)
    assert "cat: none of its 2 images could be read, so it has no output" in result.output
    assert files_per_class(out) == {"cat": 0, "dog": 4, "owl": 4}
    assert json.loads((out / "summary.json").read_text())["balance"]["per_class"]["cat"]["outputs"] == 0


def test_balance_with_copies_or_with_unlabelled_images_is_a_usage_error(recipe, skewed, tmp_path):
    assert "drop --copies" in run("augment", recipe, skewed, tmp_path / "o", "--balance", 4, "-k", 2, expect=2).output
    flat = write_tree(tmp_path / "flat", {"a.jpg": encoded(make_structured_rgb(20, 20), "JPEG")})
    result = run("augment", recipe, flat, tmp_path / "o2", "--balance", 4, "-w", 0, expect=2)
    assert "1 of the 1 images have no class (e.g. a.jpg)" in result.output
