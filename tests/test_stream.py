"""`augkit stream`: batches over a pipe, readable with NumPy alone; a reader that leaves is fine."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import augkit
from augkit.stream import read_stream, write_stream
from conftest import make_structured_rgb
from imagefiles import class_folders, encoded, write_tree

NUMPY_ONLY_READER = textwrap.dedent("""
    import sys, numpy as np
    class Pipe:
        def __init__(self, f): self.read = f.read
    f = sys.stdin.buffer
    n = 0
    while f.peek(1):
        x = np.lib.format.read_array(Pipe(f)); y = np.lib.format.read_array(Pipe(f)); n += 1
        assert x.shape[1:] == (16, 16, 3) and x.dtype == np.float32 and len(y) == len(x)
    print(n, x.shape[0], y.tolist())
""")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("stream") / "data", per_class=3)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n  - RandomCrop: {height: 40, width: 40}\n")
    return path


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """3 classes a linear model can tell apart: each tinted towards its own channel."""
    files = {}
    for c, name in enumerate(("red", "green", "blue")):
        for i in range(3):
            image = make_structured_rgb(60, 80, seed=100 * c + i).astype(np.int16)
            image[..., c] += 70
            files[f"{name}/{name}_{i}.jpg"] = encoded(np.clip(image, 0, 255).astype(np.uint8), "JPEG", quality=90)
    return write_tree(tmp_path_factory.mktemp("learnable") / "data", files)


def augkit_stream(*args) -> list[str]:
    return [sys.executable, "-m", "augkit", "stream", *map(str, args)]


def test_a_numpy_only_reader_gets_every_batch(data, recipe):
    producer = subprocess.Popen(augkit_stream(recipe, data, "-b", 4, "--size", 16, "--preprocess", "tf", "--epochs", 2,
                                              "--no-shuffle"), stdout=subprocess.PIPE)
    reader = subprocess.run([sys.executable, "-c", NUMPY_ONLY_READER], stdin=producer.stdout, capture_output=True, text=True)
    producer.stdout.close()
    assert producer.wait(timeout=60) == 0
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.split()[0:2] == ["6", "1"]  # 9 images in batches of 4, 2 epochs


def test_a_reader_that_stops_early_ends_the_stream_quietly(data, recipe):
    pipeline = f"{' '.join(augkit_stream(recipe, data, '--size', 16, '--epochs', 0))} | head -c 1000 | wc -c"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1000"
    assert "Traceback" not in done.stderr and "Error" not in done.stderr


def test_read_stream_round_trips_what_write_stream_wrote(data, recipe):
    buffer = io.BytesIO()
    with augkit.flow(data, recipe, batch_size=4, workers=0, size=16) as batches:
        expected = [(x.copy(), y.copy()) for x, y in batches]
    write_stream(iter(expected), buffer)
    buffer.seek(0)
    got = list(read_stream(buffer))
    assert len(got) == len(expected) == 3
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(got, expected))


def test_a_stream_cut_inside_a_batch_is_an_error():
    buffer = io.BytesIO()
    write_stream([(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]))], buffer)
    with pytest.raises(ValueError):
        list(read_stream(io.BytesIO(buffer.getvalue()[:-10])))


def test_the_example_trains_a_classifier_from_the_stream(learnable, recipe):
    example = __import__("pathlib").Path(__file__).parent.parent / "examples" / "train_from_stream.py"
    producer = subprocess.Popen(augkit_stream(recipe, learnable, "--size", 16, "--preprocess", "tf", "--epochs", 10, "-b", 4),
                                stdout=subprocess.PIPE)
    trainer = subprocess.run([sys.executable, str(example)], stdin=producer.stdout, capture_output=True, text=True)
    producer.stdout.close()
    assert producer.wait(timeout=60) == 0 and trainer.returncode == 0, trainer.stderr
    words = trainer.stdout.split()
    first, last = float(words[words.index("loss") + 1]), float(words[words.index("loss") + 3].rstrip(","))
    assert words[0] == "90" and last < first  # 9 images x 10 epochs, and it learned something


def test_stream_refuses_a_recipe_ending_in_normalize_in_one_line_with_exit_2(data, tmp_path):
    recipe = tmp_path / "normalized.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n  - Normalize\n")
    done = subprocess.run(augkit_stream(recipe, data, "--preprocess", "tf"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"Error: {recipe}:3: Normalize makes float32 images, but augkit's commands take uint8 RGB "
                           f"images; drop Normalize and use preprocess='torch', 'tf' or (mean, std) (--preprocess) "
                           f"instead\n")


def test_a_stream_where_every_image_failed_exits_1_with_one_line_per_image(recipe, tmp_path):
    data = write_tree(tmp_path / "bad", {"cat/empty.jpg": b"", "dog/page.jpg": b"<html></html>"})
    done = subprocess.run(augkit_stream(recipe, data, "-w", 0, "-b", 2), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == ("Error: no batch was written: every image failed (1 empty, "
                                            "1 not_an_image); see the lines above")
