"""augkit.recipes.pca_color: PCAColor is the AlexNet formula, offset = eigvecs @ (alpha * eigvals) * 255,
added to every pixel, rounded and saturated, for each source of the eigen decomposition."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from augkit.core.errors import RecipeError
from augkit.recipes.pca_color import IMAGENET_EIGVALS, IMAGENET_EIGVECS, PCAColor, image_pca
from augkit.recipes import load_recipe


def alexnet_reference(image: np.ndarray, eigvals: np.ndarray, eigvecs_as_columns: np.ndarray, alpha) -> np.ndarray:
    """The formula written directly in NumPy, in float64 over the whole image."""
    offset = eigvecs_as_columns @ (np.asarray(alpha) * eigvals) * 255.0
    return np.clip(np.rint(image.astype(np.float64) + offset), 0, 255).astype(np.uint8)


def drawn_alpha(recipe, image: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(output, the alpha PCAColor drew) for one seeded call."""
    out, applied = recipe.trace(image, seed=seed)
    ((name, params),) = applied
    assert name == "PCAColor"
    return out, np.asarray(params["alpha"])


@pytest.fixture
def dataset_stats(tmp_path):
    """A stats.json whose eigenvectors (rows, eigenvectors[i] for eigenvalues[i]) are an
    orthonormal basis that is not symmetric, so reading rows as columns would show."""
    q, _ = np.linalg.qr(np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [2.0, 0.1, -0.7]]))
    rows = q.T
    eigenvalues = [0.05, 0.01, 0.002]
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"pca": {"eigenvalues": eigenvalues, "eigenvectors": rows.tolist()}}))
    return path, np.array(eigenvalues), rows.T


def test_imagenet_source_is_the_alexnet_formula_with_published_constants(small_rgb):
    recipe = load_recipe({"transforms": [{"PCAColor": {"sigma": 0.5, "source": "imagenet", "p": 1.0}}]})
    for seed in range(3):
        out, alpha = drawn_alpha(recipe, small_rgb, seed)
        assert np.array_equal(out, alexnet_reference(small_rgb, IMAGENET_EIGVALS, IMAGENET_EIGVECS, alpha))
        assert not np.array_equal(out, small_rgb)


def test_imagenet_first_component_is_a_near_equal_rgb_shift():
    # The published first eigenvector is close to (1, 1, 1)/sqrt(3) up to sign: brightness.
    first = IMAGENET_EIGVECS[:, 0]
    assert np.allclose(np.abs(first), 1 / np.sqrt(3), atol=0.02)
    assert np.allclose(np.linalg.norm(IMAGENET_EIGVECS, axis=0), 1.0, atol=1e-3)


def test_dataset_source_reads_eigenvectors_by_row_from_stats(dataset_stats, small_rgb):
    path, eigvals, eigvecs_as_columns = dataset_stats
    recipe = load_recipe({"transforms": [{"PCAColor": {"sigma": 1.0, "source": "dataset", "stats": str(path), "p": 1.0}}]})
    for seed in range(3):
        out, alpha = drawn_alpha(recipe, small_rgb, seed)
        assert np.array_equal(out, alexnet_reference(small_rgb, eigvals, eigvecs_as_columns, alpha))


def test_image_pca_is_the_eigen_decomposition_of_the_0_1_covariance(small_rgb):
    cov = np.cov(small_rgb.reshape(-1, 3).T / 255.0, bias=True)
    ref_vals, ref_vecs = np.linalg.eigh(cov)
    ref_vals, ref_vecs = ref_vals[::-1], ref_vecs[:, ::-1]

    eigvals, eigvecs = image_pca(small_rgb)

    assert np.allclose(eigvals, ref_vals, rtol=1e-5, atol=1e-9)
    assert list(eigvals) == sorted(eigvals, reverse=True)
    # Each eigenvector is defined up to its sign.
    assert np.allclose(np.abs(np.sum(eigvecs * ref_vecs, axis=0)), 1.0, atol=1e-5)


def test_image_source_is_the_alexnet_formula_on_the_image_own_covariance(small_rgb):
    cov = np.cov(small_rgb.reshape(-1, 3).T / 255.0, bias=True)
    ref_vals, ref_vecs = np.linalg.eigh(cov)
    ref_vals, ref_vecs = ref_vals[::-1], ref_vecs[:, ::-1]
    recipe = load_recipe({"transforms": [{"PCAColor": {"sigma": 0.5, "source": "image", "p": 1.0}}]})

    out, alpha = drawn_alpha(recipe, small_rgb, seed=4)

    # An eigenvector's sign is arbitrary, and alpha is symmetric around 0: the output is
    # the formula for alpha with some choice of signs.
    candidates = [
        alexnet_reference(small_rgb, ref_vals, ref_vecs, alpha * np.array(signs))
        for signs in itertools.product((1, -1), repeat=3)
    ]
    assert any(np.array_equal(out, c) for c in candidates)
    assert not np.array_equal(out, small_rgb)


def test_apply_with_a_given_alpha_matches_the_formula(small_rgb):
    alpha = np.array([0.3, -0.2, 0.1])
    out = PCAColor(p=1.0).apply(small_rgb, alpha=alpha)
    assert np.array_equal(out, alexnet_reference(small_rgb, IMAGENET_EIGVALS, IMAGENET_EIGVECS, alpha))


def test_output_saturates_at_255_instead_of_wrapping_around():
    bright = np.full((8, 8, 3), 240, np.uint8)
    # -first component: about +31 on every channel.
    out = PCAColor(p=1.0).apply(bright, alpha=np.array([-1.0, 0.0, 0.0]))
    assert np.all(out == 255)


def test_output_saturates_at_0_instead_of_wrapping_around():
    dark = np.full((8, 8, 3), 10, np.uint8)
    out = PCAColor(p=1.0).apply(dark, alpha=np.array([1.0, 0.0, 0.0]))
    assert np.all(out == 0)


def test_output_is_uint8_with_the_input_shape(small_rgb):
    out = load_recipe({"transforms": [{"PCAColor": {"p": 1.0}}]})(small_rgb, seed=0)
    assert out.dtype == np.uint8 and out.shape == small_rgb.shape


def test_sigma_zero_leaves_the_image_unchanged(small_rgb):
    out = load_recipe({"transforms": [{"PCAColor": {"sigma": 0.0, "p": 1.0}}]})(small_rgb, seed=0)
    assert np.array_equal(out, small_rgb)


def test_dataset_source_without_stats_is_an_error_naming_the_fix():
    with pytest.raises(RecipeError, match=r"PCAColor: .*source 'dataset' needs stats"):
        load_recipe({"transforms": [{"PCAColor": {"source": "dataset"}}]})


def test_dataset_source_with_a_missing_stats_file_is_an_error(tmp_path):
    missing = tmp_path / "stats.json"
    with pytest.raises(RecipeError, match=r"stats\.json not found; write it with `augkit stats"):
        load_recipe({"transforms": [{"PCAColor": {"source": "dataset", "stats": str(missing)}}]})


def test_stats_without_a_pca_section_is_an_error(tmp_path):
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"mean": [0.5, 0.5, 0.5]}))
    with pytest.raises(RecipeError, match=r"no usable 'pca' section"):
        load_recipe({"transforms": [{"PCAColor": {"source": "dataset", "stats": str(stats)}}]})


def test_stats_with_another_source_is_an_error(dataset_stats):
    path, _, _ = dataset_stats
    with pytest.raises(RecipeError, match=r"stats is only used with source: dataset"):
        load_recipe({"transforms": [{"PCAColor": {"source": "imagenet", "stats": str(path)}}]})


def test_unknown_source_is_an_error():
    with pytest.raises(RecipeError, match=r"PCAColor: source"):
        load_recipe({"transforms": [{"PCAColor": {"source": "cifar"}}]})


def test_a_non_uint8_image_is_refused(small_rgb):
    with pytest.raises(TypeError, match="RGB uint8"):
        PCAColor(p=1.0).apply(small_rgb.astype(np.float32), alpha=np.zeros(3))


# --- the scale convention -------------------------------------------------------------------


def test_imagenet_eigenvalues_are_variances_of_0_1_pixel_values():
    # ImageNet train set, std over all pixels on the 0-1 scale (pytorch/vision#1439). The
    # constants reproduce it only when read as 0-1 variances: as standard deviations they
    # would give ~0.125, and their x255 versions (55.46 ...) as 0-255 variances ~0.018.
    measured_std = np.array([0.2806, 0.2736, 0.2877])
    implied = IMAGENET_EIGVECS @ np.diag(IMAGENET_EIGVALS) @ IMAGENET_EIGVECS.T
    assert np.allclose(np.sqrt(np.diag(implied)), measured_std, rtol=0.015)
    assert IMAGENET_EIGVALS.sum() == pytest.approx(np.sum(measured_std**2), rel=0.03)
    as_std = IMAGENET_EIGVECS @ np.diag(IMAGENET_EIGVALS**2) @ IMAGENET_EIGVECS.T
    assert np.all(np.sqrt(np.diag(as_std)) < 0.5 * measured_std)


def rms_offset_255(eigvals: np.ndarray, sigma: float = 0.1) -> float:
    """RMS of one channel's offset in 0-255 levels: the eigenvectors are orthonormal."""
    return float(255 * sigma * np.sqrt(np.sum(np.square(eigvals)) / 3))


def test_one_sigma_gives_offsets_of_comparable_size_in_every_mode():
    from augkit.input.decoding import decode_image
    from augkit.input.discovery import discover
    from augkit.stages.stats import compute_stats

    sample_data = Path(__file__).resolve().parent.parent / "sample_data"
    imagenet = rms_offset_255(IMAGENET_EIGVALS)
    dataset = rms_offset_255(np.array(compute_stats(sample_data, workers=0)["pca"]["eigenvalues"]))
    per_image = [rms_offset_255(image_pca(decode_image(s.path))[0]) for s in discover(sample_data).samples]
    assert imagenet == pytest.approx(3.21, abs=0.01)
    assert imagenet / 2 < dataset < imagenet * 2
    assert imagenet / 3 < float(np.median(per_image)) < imagenet * 2


def test_empirical_offsets_match_the_rms_formula(small_rgb):
    mid = np.full((4, 4, 3), 128, np.uint8)
    t = PCAColor(sigma=0.1, p=1.0)
    rng = np.random.default_rng(0)
    offsets = np.array([t.apply(mid, alpha=rng.normal(0, 0.1, 3))[0, 0].astype(float) - 128 for _ in range(4000)])
    assert np.sqrt(np.mean(offsets**2)) == pytest.approx(rms_offset_255(IMAGENET_EIGVALS), rel=0.05)


# --- exactness of the fast paths -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_image_pca_equals_float64_numpy_on_random_images(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (rng.integers(1, 400), rng.integers(1, 400), 3), dtype=np.uint8)
    image[..., 1] = image[..., 0] // 2 + image[..., 1] // 2  # correlated channels
    cov = np.cov(image.reshape(-1, 3).T.astype(np.float64) / 255.0, bias=True)
    eigvals, eigvecs = image_pca(image)
    assert np.allclose(eigvecs @ np.diag(eigvals) @ eigvecs.T, cov, rtol=1e-12, atol=1e-15)


def test_the_offset_add_is_the_rounded_saturated_formula_for_every_level():
    from augkit.recipes.pca_color import add_offset_uint8

    every_level = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    rng = np.random.default_rng(1)
    for offset in [*rng.uniform(-300, 300, (200, 3)), np.array([0.0, 255.0, -255.0]), np.array([0.49, -0.49, 1e9])]:
        expected = np.clip(np.rint(every_level + offset), 0, 255).astype(np.uint8)
        assert np.array_equal(add_offset_uint8(every_level, offset), expected)


def test_a_flipped_view_is_handled_like_a_copy(small_rgb):
    view = small_rgb[:, ::-1]
    for source in ("imagenet", "image"):
        t = PCAColor(source=source, p=1.0)
        alpha = np.array([0.4, -0.3, 0.2])
        assert np.array_equal(t.apply(view, alpha=alpha), t.apply(view.copy(), alpha=alpha))


def test_the_input_is_not_modified(small_rgb):
    before = small_rgb.copy()
    for source in ("imagenet", "image"):
        PCAColor(source=source, p=1.0).apply(small_rgb, alpha=np.array([1.0, 1.0, 1.0]))
    assert np.array_equal(small_rgb, before)


@pytest.mark.parametrize("source", ["imagenet", "image"])
def test_no_float_copy_of_the_image_is_made(source):
    import tracemalloc

    image = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    t = PCAColor(source=source, p=1.0)
    t.apply(image, alpha=np.array([0.1, 0.2, 0.3]))  # warm up
    tracemalloc.start()
    try:
        t.apply(image, alpha=np.array([0.1, 0.2, 0.3]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * image.nbytes  # the output itself; a float32 copy alone would be 4x


def test_a_stats_path_that_is_a_folder_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^stats file .* is a folder, not a regular file; give the stats.json"):
        PCAColor(source="dataset", stats=str(tmp_path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_stats_path_that_is_a_named_pipe_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "stats.json"
    os.mkfifo(fifo)
    code = ("import sys\nfrom augkit.recipes.pca_color import load_dataset_pca\n"
            "try:\n    load_dataset_pca(sys.argv[1])\nexcept ValueError as e:\n    print(e)\n")
    # A child process: opening a FIFO for reading waits for a writer, which would hang this test.
    result = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60)
    assert result.stdout == f"stats file {fifo} is a named pipe (FIFO), not a regular file; give the stats.json " \
                            f"`augkit stats` wrote\n"


@pytest.mark.parametrize("pca", [
    {"eigenvalues": [float("nan"), 0.1, 0.1], "eigenvectors": np.eye(3).tolist()},
    {"eigenvalues": [-1, 0.1, 0.1], "eigenvectors": np.eye(3).tolist()},
    {"eigenvalues": [0.2, 0.1, 0.1], "eigenvectors": [[float("inf"), 0, 0], [0, 1, 0], [0, 0, 1]]},
], ids=["nan", "negative", "inf"])
def test_stats_with_numbers_that_are_not_a_covariance_are_refused(pca, tmp_path):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"pca": pca}))
    with pytest.raises(ValueError, match="eigenvalues must be finite and not negative"):
        PCAColor(source="dataset", stats=str(path))
