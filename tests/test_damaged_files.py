"""Every command reports each damaged file as a failure row, never as pixels, and no
decoder writes to the terminal.

The corpus is imagefiles.damaged_files(): damage that libjpeg, libpng, libtiff or
OpenCV meet with a line on stderr (or nothing) while returning an image. The CLI
commands run as a user runs them, in a subprocess with worker processes, so what
their decoders would print is in the captured stderr whichever process decoded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import ImageFile

import augkit
import mobilenet_like
from imagefiles import class_folders, damaged_files, write_tree
from clirun import read_csv

RECIPE = """\
transforms:
  - HorizontalFlip: {p: 0.5}
  - Resize: {height: 32, width: 32}
"""

# What libjpeg, libpng, libtiff, OpenCV's log and Python's warnings put on stderr.
DECODER_TEXT = re.compile(
    r"Corrupt JPEG data|Premature end of JPEG|extraneous bytes|libpng|TIFF|Decode:|"
    r"\[ ?(WARN|ERROR|INFO)|imdecode|Warning|warnings\.warn"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two classes of whole JPEGs; under damaged/ the files whose damage costs pixels,
    under whole/ those whose damage provably costs none."""
    root = class_folders(tmp_path_factory.mktemp("corpus") / "data", classes=("cat", "dog"), per_class=2)
    files = {}
    for name, (data, undamaged) in damaged_files().items():
        files[f"{'damaged' if undamaged is None else 'whole'}/{name}"] = data
    return write_tree(root, files)


def relative_files(folder: Path, under: Path) -> set[str]:
    return {p.relative_to(under).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def damaged(corpus) -> set[str]:
    return relative_files(corpus / "damaged", corpus)


@pytest.fixture(scope="module")
def decodable(corpus, damaged) -> set[str]:
    return relative_files(corpus, corpus) - damaged


def augkit_cli(*args, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUGKIT_CACHE_DIR": str(tmp_path / "augkit-cache")}
    result = subprocess.run([sys.executable, "-m", "augkit", *map(str, args)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def assert_no_decoder_text(*streams: str) -> None:
    lines = [line for stream in streams for line in stream.splitlines()]
    assert [line for line in lines if DECODER_TEXT.search(line)] == []


def assert_failure_rows(rows: list[dict[str, str]], key: str, damaged: set[str]) -> None:
    assert sorted(row[key] for row in rows) == sorted(damaged)
    assert {row["reason"] for row in rows} <= {"corrupt", "truncated"}
    assert all(row[key] in row["message"] for row in rows)  # the message names the file


def test_stats_counts_each_damaged_file_as_a_failure(corpus, damaged, decodable, tmp_path):
    result = augkit_cli("stats", corpus, "-o", tmp_path / "stats.json", "-w", 2, tmp_path=tmp_path)

    stats = json.loads((tmp_path / "stats.json").read_text())
    assert_failure_rows(stats["failures"], "path", damaged)
    assert stats["ok"] == len(decodable)
    assert_no_decoder_text(result.stdout, result.stderr)


def test_augment_writes_no_output_for_a_damaged_file_and_lists_it_in_failures_csv(corpus, damaged, decodable, tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    out = tmp_path / "out"
    result = augkit_cli("augment", tmp_path / "recipe.yaml", corpus, out, "-w", 2, "--quiet", tmp_path=tmp_path)

    assert_failure_rows(read_csv(out / "failures.csv"), "source", damaged)
    assert {row["source"] for row in read_csv(out / "manifest.csv")} == decodable
    assert_no_decoder_text(result.stdout, result.stderr)


def test_cache_features_computes_no_features_for_a_damaged_file(corpus, damaged, decodable, tmp_path):
    model = tmp_path / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=1), model)
    cache = tmp_path / "cache"
    result = augkit_cli("cache-features", corpus, "-o", cache, "--backbone", model, "--input-size", 64,
                        "--dtype", "float32", "--quiet", "-w", 2, tmp_path=tmp_path)

    assert_failure_rows(read_csv(cache / "failures.csv"), "path", damaged)
    assert {row["path"] for row in augkit.load_features(cache).manifest} == decodable
    assert_no_decoder_text(result.stdout, result.stderr)


def test_flow_leaves_each_damaged_file_out_of_the_batches_and_records_it(corpus, damaged, decodable, capfd):
    # In this process (workers=0), so that capfd sees file descriptor 2 of the decoding process.
    recipe = {"transforms": [{"Resize": {"height": 32, "width": 32}}]}
    with augkit.flow(corpus, recipe, batch_size=4, workers=0, shuffle=False) as batches:
        images = sum(len(y) for _, y in batches)

    assert_failure_rows(batches.failures, "source", damaged)
    assert images == len(decodable)
    assert_no_decoder_text(*capfd.readouterr())


def test_flow_reports_each_damaged_file_even_where_the_user_lets_pillow_load_truncated_images(
        corpus, damaged, decodable, monkeypatch):
    # A common line in PyTorch training scripts; Pillow then returns damaged GIFs and PNGs as pixels.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    recipe = {"transforms": [{"Resize": {"height": 32, "width": 32}}]}
    with augkit.flow(corpus, recipe, batch_size=4, workers=0, shuffle=False) as batches:
        images = sum(len(y) for _, y in batches)

    assert_failure_rows(batches.failures, "source", damaged)
    assert images == len(decodable)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
