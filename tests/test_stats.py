"""`augkit stats`: one exact pass over a dataset; every number matches NumPy over the same pixels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from augkit.input.decoding import decode_image
from augkit.input.discovery import discover
from augkit.stages.stats import _quantiles
from conftest import make_structured_rgb
from imagefiles import bad_images, class_folders, encoded, good_images, write_tree
from clirun import run


def numpy_stats(paths) -> dict:
    """The reference: decode every image, stack all pixels, compute in float64."""
    pixels = np.concatenate([decode_image(p).reshape(-1, 3) for p in paths]).astype(np.float64) / 255.0
    cov = np.cov(pixels.T, bias=True)
    eigvals, eigvecs = np.linalg.eigh(cov)
    return {"n": len(pixels), "mean": pixels.mean(axis=0), "std": pixels.std(axis=0), "cov": cov,
            "eigvals": eigvals[::-1], "eigvecs": eigvecs[:, ::-1],
            "hist": [np.bincount((pixels[:, c] * 255).round().astype(int), minlength=256) for c in range(3)]}


@pytest.fixture
def mixed_dataset(tmp_path) -> Path:
    """Three classes of structured JPEGs of different sizes, every decodable kind of file,
    and the usual bad files."""
    files = {}
    for c, name in enumerate(("cat", "dog", "owl")):
        for i in range(3 + c):
            files[f"{name}/{name}_{i}.jpg"] = encoded(make_structured_rgb(40 + 10 * i, 60 + 7 * c, seed=10 * c + i), "JPEG")
    files.update({f"odd/{n}": d for n, d in good_images().items()})
    files.update({f"broken/{n}": d for n, (d, _) in bad_images().items()})
    return write_tree(tmp_path / "data", files)


def test_quantiles_of_a_size_histogram():
    q = _quantiles(Counter({100: 1, 200: 18, 300: 1}))
    assert q == {"min": 100, "p5": 100, "median": 200, "p95": 200, "max": 300, "mean": 200.0}
    assert _quantiles(Counter()) is None


# --- stats.json ---------------------------------------------------------------------------


def test_stats_json_matches_numpy_over_the_same_pixels(mixed_dataset, tmp_path):
    out = tmp_path / "stats.json"
    result = run("stats", mixed_dataset, "-o", out, "-w", 0)
    stats = json.loads(out.read_text())
    good = [s.path for s in discover(mixed_dataset).samples if not s.key.startswith("broken/")]
    ref = numpy_stats(good)

    assert stats["pixels"] == ref["n"]
    assert np.allclose(stats["mean"], ref["mean"], rtol=1e-12)
    assert np.allclose(stats["std"], ref["std"], rtol=1e-10)
    assert np.allclose(stats["covariance"], ref["cov"], rtol=1e-10, atol=1e-15)
    assert np.allclose(stats["pca"]["eigenvalues"], ref["eigvals"], rtol=1e-10)
    rows = np.array(stats["pca"]["eigenvectors"])  # eigenvectors[i] belongs to eigenvalues[i]
    assert np.allclose(np.abs(np.sum(rows.T * ref["eigvecs"], axis=0)), 1.0, atol=1e-10)
    assert np.isclose(sum(stats["pca"]["explained_variance_ratio"]), 1.0)
    for c, name in enumerate("RGB"):
        assert stats["histograms"][name] == ref["hist"][c].tolist()
    assert "mean (0." in result.output and "PCA eigenvalues" in result.output


def test_counts_sizes_and_bad_files(mixed_dataset, tmp_path):
    out = tmp_path / "stats.json"
    result = run("stats", mixed_dataset, "-o", out, "-w", 0)
    stats = json.loads(out.read_text())
    good, bad = good_images(), bad_images()
    assert stats["images"] == 3 + 4 + 5 + len(good) + len(bad)
    assert stats["classes"] == {"broken": len(bad), "cat": 3, "dog": 4, "odd": len(good), "owl": 5}
    assert stats["ok"] == stats["images"] - len(bad) and stats["failed"] == len(bad)
    assert {f["path"]: f["reason"] for f in stats["failures"]} == {f"broken/{n}": r for n, (_, r) in bad.items()}
    assert all(f["path"] in f["message"] for f in stats["failures"])
    assert stats["failures_by_reason"] == dict(Counter(r for _, r in bad.values()))
    assert f"{len(bad)} bad files" in result.output
    assert result.output.startswith(f"{stats['images']} images ({len(bad)} unreadable, listed below), 5 classes")

    shapes = [decode_image(s.path).shape for s in discover(mixed_dataset).samples if not s.key.startswith("broken/")]
    sizes = stats["sizes"]
    assert sorted((w, h, n) for w, h, n in sizes["counts"]) == sorted((w, h, n) for (h, w), n in Counter(s[:2] for s in shapes).items())
    assert sizes["width"]["min"] == min(s[1] for s in shapes) and sizes["height"]["max"] == max(s[0] for s in shapes)
    assert sizes["width"]["median"] == sorted(s[1] for s in shapes)[(len(shapes) + 1) // 2 - 1]
    assert sum(sizes["orientation"].values()) == len(shapes) and sizes["counts_complete"]


def test_result_is_identical_for_any_worker_count(tmp_path):
    data = class_folders(tmp_path / "data", per_class=5)
    run("stats", data, "-o", tmp_path / "w0.json", "-w", 0)
    run("stats", data, "-o", tmp_path / "w2.json", "-w", 2)
    assert (tmp_path / "w0.json").read_text() == (tmp_path / "w2.json").read_text()


def test_one_split_of_a_manifest(tmp_path):
    data = class_folders(tmp_path / "data")
    run("split", data, "-o", data / "split.csv", "--val", 0.25, "--test", 0.25)
    stats_all = json.loads(run("stats", data / "split.csv", "--split", "all", "-o", tmp_path / "all.json", "-w", 0, "--json").output)
    val = json.loads(run("stats", data / "split.csv", "--split", "val", "-o", tmp_path / "val.json", "-w", 0, "--json").output)
    assert stats_all["images"] == 12 and val["images"] == 3 and val["split"] == "val"
    assert val["classes"] == {"cat": 1, "dog": 1, "owl": 1}
    rows = [line.split(",") for line in (data / "split.csv").read_text().splitlines()[1:]]
    assert np.allclose(val["mean"], numpy_stats([data / r[0] for r in rows if r[2] == "val"])["mean"], rtol=1e-12)
    result = run("stats", data / "split.csv", "--split", "holdout", "-o", tmp_path / "x.json", expect=2)
    assert "no rows with split 'holdout'" in result.output


def test_sample_is_a_deterministic_subset_of_images(tmp_path):
    data = class_folders(tmp_path / "data", per_class=6)
    a = json.loads(run("stats", data, "--sample", 5, "-o", tmp_path / "a.json", "-w", 0, "--json").output)
    b = json.loads(run("stats", data, "--sample", 5, "-o", tmp_path / "b.json", "-w", 0, "--json").output)
    c = json.loads(run("stats", data, "--sample", 5, "--seed", 1, "-o", tmp_path / "c.json", "-w", 0, "--json").output)
    assert a == b and a["analyzed"] == 5 and a["ok"] == 5 and a["sample"] == {"images": 5, "seed": 0}
    assert a["images"] == 18 and a["classes"] == {"cat": 6, "dog": 6, "owl": 6}  # counts cover the whole dataset
    assert c["mean"] != a["mean"]
    full = json.loads(run("stats", data, "--sample", 100, "-o", tmp_path / "f.json", "-w", 0, "--json").output)
    assert full["sample"] is None and full["analyzed"] == 18


def test_stats_json_feeds_pca_color_dataset_mode(tmp_path, small_rgb):
    from augkit.recipes import load_recipe

    data = class_folders(tmp_path / "data")
    stats_path = tmp_path / "stats.json"
    run("stats", data, "-o", stats_path, "-w", 0)
    pca = json.loads(stats_path.read_text())["pca"]
    recipe = load_recipe({"transforms": [{"PCAColor": {"sigma": 2.0, "source": "dataset", "stats": str(stats_path), "p": 1.0}}]})
    out, applied = recipe.trace(small_rgb, seed=5)
    alpha = np.asarray(applied[0][1]["alpha"])
    offset = np.array(pca["eigenvectors"]).T @ (alpha * np.array(pca["eigenvalues"])) * 255
    assert np.array_equal(out, np.clip(np.rint(small_rgb + offset), 0, 255).astype(np.uint8))


def test_plot_draws_a_png(tmp_path):
    data = class_folders(tmp_path / "data")
    run("stats", data, "-o", tmp_path / "stats.json", "--plot", tmp_path / "stats.png", "-w", 0)
    plot = cv2.imread(str(tmp_path / "stats.png"))
    assert plot is not None and plot.shape == (460, 1320, 3)
    assert len(np.unique(plot.reshape(-1, 3), axis=0)) > 10  # bars, dots, three curves, text


def test_unlabelled_flat_folder(tmp_path):
    data = write_tree(tmp_path / "flat", {f"img_{i}.png": encoded(make_structured_rgb(20, 30, i), "PNG") for i in range(3)})
    stats = json.loads(run("stats", data, "-o", tmp_path / "s.json", "-w", 0, "--json").output)
    assert stats["classes"] == {} and stats["unlabelled"] == 3 and stats["ok"] == 3
    first = run("stats", data, "-o", tmp_path / "s.json", "-w", 0).output.splitlines()[0]
    assert first == "3 images, no labels"  # it said "0 classes", as if the labels were lost


# --- usage and failure ---------------------------------------------------------------------


def test_missing_source_is_a_usage_error(tmp_path):
    result = run("stats", tmp_path / "nope", "-o", tmp_path / "s.json", expect=2)
    assert "no such file or folder" in result.output
    assert not (tmp_path / "s.json").exists()


def test_plot_over_the_json_is_refused(tmp_path):
    data = class_folders(tmp_path / "data", per_class=1)
    result = run("stats", data, "-o", tmp_path / "s.json", "--plot", tmp_path / "s.json", expect=2)
    assert "--plot" in result.output and "ending in .png" in result.output


# --- stats.json and the plot replace only what augkit stats wrote ------------------------


def test_an_image_of_the_source_is_never_written_over_not_even_with_overwrite(tmp_path):
    data = class_folders(tmp_path / "data", per_class=2)
    photo = data / "cat" / "cat_0.jpg"
    png = write_tree(data, {"dog/snap.png": encoded(make_structured_rgb(20, 30), "PNG")}) / "dog" / "snap.png"
    before = photo.read_bytes(), png.read_bytes()
    result = run("stats", data, "-o", photo, "-w", 0, expect=2)  # JSON under a photo's name
    assert result.output == f"Error: -o {photo}: the statistics are JSON; give a file name ending in .json\n"
    result = run("stats", data, "-o", tmp_path / "s.json", "--plot", photo, "-w", 0, "--overwrite", expect=2)
    assert "ending in .png" in result.output  # PNG bytes under a .jpg name
    result = run("stats", data, "-o", tmp_path / "s.json", "--plot", png, "-w", 0, "--overwrite", expect=2)
    assert result.output == (f"Error: --plot {png}: is one of the input images ({data}); augkit never writes over "
                             f"its inputs: choose another path\n")
    new = data / "plot.png"  # not there yet: the next listing would read it as an image of the dataset
    result = run("stats", data, "-o", tmp_path / "s.json", "--plot", new, "-w", 0, expect=2)
    assert "where it would be read as one of its images; choose a path outside it" in result.output
    assert (photo.read_bytes(), png.read_bytes()) == before and not new.exists() and not (tmp_path / "s.json").exists()


def test_no_plot_is_written_inside_the_dataset_folder_of_a_split_manifest(tmp_path):
    data = class_folders(tmp_path / "data", per_class=2)
    manifest = data / "split.csv"  # where `augkit split data` writes it
    manifest.write_text("path,label,split\ncat/cat_0.jpg,cat,train\ndog/dog_0.jpg,dog,val\ncat/cat_1.jpg,cat,val\n")
    plot = data / "plot.png"  # the next `augkit split data` would read it as an image
    result = run("stats", manifest, "--split", "val", "-o", tmp_path / "s.json", "--plot", plot, "-w", 0, expect=2)
    assert result.output == (f"Error: --plot {plot}: is inside {data}, where it would be read as one of its "
                             f"images; choose a path outside it\n")
    assert not plot.exists() and not (tmp_path / "s.json").exists()
    run("stats", manifest, "--split", "val", "-o", tmp_path / "s.json", "--plot", tmp_path / "plot.png", "-w", 0)


def test_a_users_own_stats_json_is_kept_unless_overwrite(tmp_path, monkeypatch):
    data = class_folders(tmp_path / "data", per_class=1)
    monkeypatch.chdir(tmp_path)
    Path("stats.json").write_text('{"my": "precious notes"}')
    result = run("stats", data, "-w", 0, expect=2)  # the default -o
    assert result.output == ("Error: -o stats.json: exists and is not a stats.json augkit stats wrote; choose another "
                             "path, or --overwrite to replace it\n")
    assert Path("stats.json").read_text() == '{"my": "precious notes"}'
    run("stats", data, "-w", 0, "--overwrite")
    assert json.loads(Path("stats.json").read_text())["written_by"] == "augkit stats"


def test_a_file_that_is_not_a_plot_stats_drew_is_kept_unless_overwrite(tmp_path):
    data = class_folders(tmp_path / "data", per_class=1)
    mine = tmp_path / "mine.png"
    mine.write_bytes(encoded(make_structured_rgb(20, 30), "PNG"))
    before = mine.read_bytes()
    result = run("stats", data, "-o", tmp_path / "s.json", "--plot", mine, "-w", 0, expect=2)
    assert result.output == (f"Error: --plot {mine}: exists and is a PNG image, not a plot augkit stats drew; choose "
                             f"another path, or --overwrite to replace it\n")
    assert mine.read_bytes() == before and not (tmp_path / "s.json").exists()


def test_stats_replaces_its_own_json_and_plot_and_a_stats_json_written_before_the_mark(tmp_path):
    data = class_folders(tmp_path / "data", per_class=1)
    out, plot = tmp_path / "s.json", tmp_path / "s.png"
    run("stats", data, "-o", out, "--plot", plot, "-w", 0)
    older = json.loads(out.read_text())
    del older["written_by"]  # as stats wrote it before it marked the file
    out.write_text(json.dumps(older))
    run("stats", data, "-o", out, "--plot", plot, "-w", 0)
    assert json.loads(out.read_text())["written_by"] == "augkit stats"


def test_a_dataset_of_only_bad_files_is_written_and_exits_1(tmp_path):
    data = write_tree(tmp_path / "bad", {"a/empty.jpg": b"", "a/page.jpg": b"<html></html>"})
    result = run("stats", data, "-o", tmp_path / "s.json", "-w", 0, expect=1)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["ok"] == 0 and stats["mean"] is None and stats["pca"] is None and stats["failed"] == 2
    assert "none of the 2 images could be read" in result.output


def test_sizes_are_binned_the_same_way_whatever_the_order(monkeypatch):
    import random

    import augkit.stages.stats as stats_mod

    monkeypatch.setattr(stats_mod, "SIZE_PAIRS_KEPT", 50)
    sizes = [(100 + i, 200 + (7 * i) % 90) for i in range(300)]
    moments = stats_mod.Moments(1, (0, 0, 0), ((0, 0, 0),) * 3)
    results = []
    for k in range(3):
        random.Random(k).shuffle(sizes)
        totals = stats_mod.Totals()
        for w, h in sizes:
            totals.add(stats_mod.ImageStats(w, h, moments, np.zeros((3, 256), np.int64)))
        results.append(stats_mod.summarize(totals)["sizes"])
    assert results[0] == results[1] == results[2]
    assert results[0]["size_step"] > 1 and results[0]["distinct"] <= 50
    assert sum(n for *_, n in results[0]["counts"]) == 300
    assert results[0]["width"]["min"] == 100 and results[0]["width"]["max"] == 399  # quantiles stay exact


def test_on_ray_the_result_is_the_same(tmp_path):
    ray = pytest.importorskip("ray")
    data = class_folders(tmp_path / "data", per_class=3)
    write_tree(data, {"cat/empty.jpg": b""})
    run("stats", data, "-o", tmp_path / "local.json", "-w", 0)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"NO_ALBUMENTATIONS_UPDATE": "1"}})
    try:
        run("stats", data, "-o", tmp_path / "ray.json", "--engine", "ray")
    finally:
        ray.shutdown()
    assert (tmp_path / "ray.json").read_text() == (tmp_path / "local.json").read_text()


@pytest.mark.parametrize("top, ticks", [(2083, [0, 500, 1000, 1500, 2000]), (1.3, [0, 0.5, 1.0]),
                                        (40, [0, 10, 20, 30, 40]), (0.07, [0, 0.02, 0.04, 0.06]), (0, [0])])
def test_plot_axes_are_labelled_at_round_values_not_at_their_limits(top, ticks):
    from augkit.stages.stats import _ticks

    assert _ticks(top) == pytest.approx(ticks)


def test_an_imbalanced_dataset_gets_one_warning_line_with_the_balance_to_ask_for(tmp_path):
    files = {f"{label}/{label}_{i}.png": encoded(make_structured_rgb(8, 8, seed=i), "PNG")
             for label, n in {"cat": 2, "dog": 7, "owl": 3}.items() for i in range(n)}
    data = write_tree(tmp_path / "data", files)
    result = run("stats", data, "-o", tmp_path / "stats.json", "-w", 0)
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: classes are imbalanced: dog has 7 images, cat 2 (3.5x); balance them with "
                        f"`augkit augment RECIPE {data} OUT --balance 7`, or on the fly with flow(..., balance=True) "
                        f"(stream --balance)"]


def test_classes_within_three_times_of_each_other_get_no_warning(tmp_path):
    files = {f"{label}/{label}_{i}.png": encoded(make_structured_rgb(8, 8, seed=i), "PNG")
             for label, n in {"cat": 2, "dog": 6}.items() for i in range(n)}
    result = run("stats", write_tree(tmp_path / "data", files), "-o", tmp_path / "stats.json", "-w", 0)
    assert "warning" not in result.output
