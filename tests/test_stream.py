"""`augkit stream`: batches over a pipe, readable with NumPy alone; a reader that leaves is fine."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import augkit
from augkit.engines import _shm
from augkit.engines.local import LocalEngine
from augkit.stages.stream import read_stream, write_stream
from conftest import make_structured_rgb
from imagefiles import bad_images, class_folders, encoded, write_tree
from interrupting import session_processes

REPO = Path(__file__).resolve().parent.parent

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


def first_batch(producer: subprocess.Popen):
    """The first batch ``producer`` writes (its process group is killed if none comes)."""
    watchdog = threading.Timer(120, os.killpg, (producer.pid, signal.SIGKILL))
    watchdog.start()
    try:
        return next(read_stream(producer.stdout))
    finally:
        watchdog.cancel()


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


# --- every failure one line: stdout, Ctrl-C, images without --size --------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_stdout_is_one_line_and_exit_1(data, recipe):
    with open("/dev/full", "wb") as full:
        done = subprocess.run(augkit_stream(recipe, data, "--size", 16, "-w", 2), stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "Error: cannot write the stream to stdout: No space left on device\n"


def test_a_closed_stdout_is_one_line_and_exit_1(data, recipe):
    done = subprocess.run(["bash", "-c", '"$@" >&-', "-", *augkit_stream(recipe, data, "--size", 16)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "Error: stdout is closed; pipe the stream into a program (augkit stream ... | python train.py)\n"


def test_ctrl_c_stops_the_stream_with_one_line(data, recipe):
    producer = subprocess.Popen(augkit_stream(recipe, data, "--size", 16, "--epochs", 0, "-w", 2),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        first_batch(producer)  # running: workers, slots and all
        os.killpg(producer.pid, signal.SIGINT)  # what the terminal does with Ctrl-C
        _, stderr = producer.communicate(timeout=120)
    finally:
        if producer.poll() is None:
            os.killpg(producer.pid, signal.SIGKILL)
            producer.wait()
    assert stderr.decode().strip() == "interrupted"
    assert producer.returncode in (130, -signal.SIGINT)  # a shell reports both as 130


@pytest.mark.skipif(not (os.path.isdir(_shm.SHM_DIR) and _shm._pid_namespace()), reason="needs /dev/shm and /proc")
def test_what_a_stream_killed_with_sigkill_leaves_in_dev_shm_is_removed_by_the_next_run(data, recipe):
    producer = subprocess.Popen(augkit_stream(recipe, data, "--size", 16, "--epochs", 0, "-w", 2),
                                stdout=subprocess.PIPE, start_new_session=True)
    try:
        first_batch(producer)
        prefix = f"augkit-{producer.pid}-{_shm._pid_namespace()}-"
        left = {name for name in os.listdir(_shm.SHM_DIR) if name.startswith((prefix, f"sem.mp-{prefix}"))}
    finally:
        os.killpg(producer.pid, signal.SIGKILL)  # nothing of it runs any cleanup
        producer.wait()
        producer.stdout.close()
    assert sum(name.startswith(prefix) for name in left) >= 1  # its batch slots
    assert sum(name.startswith("sem.mp-") for name in left) == 5  # its process pool's semaphores
    # Nothing of the run is left to remove them (its forkserver, workers and resource tracker
    # died with it). Whether they are still there now is not asked: any augkit process on the
    # machine may start a run, and sweep them, at any moment; the next run here must have.
    deadline = time.monotonic() + 60  # SIGKILL takes them all; the kernel may take a moment to end them
    while session_processes(producer.pid):
        assert time.monotonic() < deadline, "the killed run's processes never ended"
        time.sleep(0.01)
    with LocalEngine(workers=1):  # the next run, any command
        pass
    assert not any(os.path.lexists(os.path.join(_shm.SHM_DIR, name)) for name in left)


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("sizes") / "data", {
        "cat/a.jpg": encoded(make_structured_rgb(60, 80), "JPEG"),
        "dog/b.jpg": encoded(make_structured_rgb(40, 50, seed=1), "JPEG"),
    })


def test_a_stream_that_can_never_give_a_batch_ends_even_with_epochs_0(data, recipe):
    done = subprocess.run(augkit_stream(recipe, data, "-b", 64, "--drop-last", "--epochs", 0), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == ("Error: no batch was written: 0 batches per epoch (fewer images than "
                                            "--batch-size 64 with --drop-last?)")


def test_without_size_images_of_several_sizes_are_bad_usage_before_any_batch(two_sizes, tmp_path):
    flip = tmp_path / "flip.yaml"
    flip.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    done = subprocess.run(augkit_stream(flip, two_sizes), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("Error: images differ in size (cat/a.jpg 60x80, dog/b.jpg 40x50) and the recipe does not "
                           "make them one size: pass size=(H, W) (--size H,W) or end the recipe with a Resize or a "
                           "crop\n")


def test_without_size_a_first_image_that_cannot_be_read_is_a_skipped_line(recipe, tmp_path):
    cut, _ = bad_images()["cut.jpg"]
    data = write_tree(tmp_path / "data", {"cat/0_cut.jpg": cut, "cat/1.jpg": encoded(make_structured_rgb(60, 80), "JPEG")})
    done = subprocess.run(augkit_stream(recipe, data, "-w", 2), capture_output=True, timeout=120)
    assert done.returncode == 0
    assert [x.shape for x, _ in read_stream(io.BytesIO(done.stdout))] == [(1, 40, 40, 3)]
    assert done.stderr.decode() == ("skipped: cat/0_cut.jpg: file is truncated (incomplete download or copy?)\n"
                                    .replace("cat/0_cut.jpg", str(data / "cat" / "0_cut.jpg")))


# --- the snippets people copy ------------------------------------------------------------


def help_snippets() -> list[str]:
    """The Python snippets of `augkit stream --help`: paragraphs that start with an import."""
    shown = subprocess.run([sys.executable, "-m", "augkit", "stream", "--help"], capture_output=True, text=True,
                           check=True).stdout
    paragraphs = [textwrap.dedent(p) for p in shown.split("\n\n")]
    return [p.strip("\n") + "\n" for p in paragraphs if p.lstrip().startswith("import ")]


def readme_snippets(language: str) -> list[str]:
    """The ``language`` code blocks of README's "Training batches on the fly" section (with
    its "augkit stream" subsection)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Training batches on the fly\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


# What the README leaves to the reader: a model to fit, and torch imported.
PRELUDES = {
    "model.fit": ("import keras\n"
                  "model = keras.Sequential([keras.layers.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D(),\n"
                  "                          keras.layers.Dense(4, activation='softmax')])\n"
                  "model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy')\n"),
    "torch.utils": "import torch\n",
}


def test_the_help_shows_both_ways_to_read_a_stream():
    snippets = help_snippets()
    assert len(snippets) == 2 and "read_stream" in snippets[0] and "Pipe(f)" in snippets[1]


@pytest.mark.parametrize("where", ["help", "readme"])
def test_every_snippet_that_reads_a_stream_reads_all_of_a_real_one(data, recipe, where):
    snippets = help_snippets() if where == "help" else [s for s in readme_snippets("python") if "stdin" in s]
    assert snippets
    for snippet in snippets:
        producer = subprocess.Popen(augkit_stream(recipe, data, "-b", 4, "--size", 16, "--no-shuffle", "-w", 2),
                                    stdout=subprocess.PIPE)
        reader = subprocess.run([sys.executable, "-c", snippet + "print(x.shape, y.tolist())\n"],
                                stdin=producer.stdout, capture_output=True, text=True, timeout=120)
        producer.stdout.close()
        assert producer.wait(timeout=60) == 0
        assert reader.returncode == 0, (snippet, reader.stderr)
        assert reader.stdout == "(1, 16, 16, 3) [2]\n", snippet  # the last batch: 9 images in 4s


def test_every_other_python_snippet_of_the_flow_section_runs(tmp_path):
    # In a folder laid out as the snippets assume: data/train (4 classes) and recipes/.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train").symlink_to(REPO / "sample_data")
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    snippets = [s for s in readme_snippets("python") if "stdin" not in s]
    assert len(snippets) == 3  # flow, PyTorch, Keras
    for snippet in snippets:
        if "torch.utils" in snippet:
            pytest.importorskip("torch")
        if "keras" in snippet:
            pytest.importorskip("keras")
        prelude = "".join(code for marker, code in PRELUDES.items() if marker in snippet)
        code = snippet.replace("epochs=10", "epochs=2").replace("range(10)", "range(2)")  # the same, shorter
        done = subprocess.run([sys.executable, "-c", prelude + code + "print('ran')\n"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")})
        assert done.returncode == 0 and done.stdout.endswith("ran\n"), (snippet, done.stderr[-2000:])


def test_the_shell_snippet_of_the_stream_section_trains_from_a_stream():
    (snippet,) = readme_snippets("bash")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", snippet], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training accuracy" in done.stdout


def test_a_stream_with_mixing_and_balance_writes_flows_batches_with_soft_targets(data, recipe):
    options = ["--mixup", "0.8", "--cutmix", "1.0", "--label-smoothing", "0.1", "--balance"]
    done = subprocess.run(augkit_stream(recipe, data, "-b", 4, "--size", 16, "-w", 2, *options), capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    streamed = list(read_stream(io.BytesIO(done.stdout)))
    with augkit.flow(data, recipe, batch_size=4, workers=0, size=16, mixup=0.8, cutmix=1.0, label_smoothing=0.1,
                     balance=True) as batches:
        expected = [(x.copy(), y.copy()) for x, y in batches]
    assert len(streamed) == len(expected) == 3
    for (x, y), (x2, y2) in zip(streamed, expected):
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert streamed[0][1].shape == (4, 3) and streamed[0][1].dtype == np.float32


def test_a_mixing_option_out_of_range_is_bad_usage(data, recipe):
    done = subprocess.run(augkit_stream(recipe, data, "--mix-prob", "1.5"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "--mix-prob" in done.stderr


@pytest.mark.parametrize("size", ["0", "-3", "64.5", "64,64,3", "x", ""])
def test_a_size_that_is_not_one_is_bad_usage_before_any_batch(tmp_path, size):
    from click.testing import CliRunner

    from augkit.cli import cli

    data = class_folders(tmp_path / "data", per_class=1)
    result = CliRunner().invoke(cli, ["stream", str(REPO / "recipes" / "standard.yaml"), str(data), "--size", size])
    assert result.exit_code == 2 and result.stdout_bytes == b""
    assert result.stderr.endswith(f"Invalid value for --size: {size!r}: give one size (224) or height,width (224,160)\n")
