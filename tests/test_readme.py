"""Every snippet the README shows runs as shown.

Python blocks run in a folder laid out as the README assumes (``recipes/``, ``sample_data/``,
``data/train/``, a ``features/`` cache); a name a fragment leaves to the reader (``model``
for Keras's ``fit``, ``torch``) is given by a short prelude. Shell lines that are commands
(not synopses with ``[OPTIONS]`` or ``SRC``) run too, except the few that need what a test
machine has not: the network for model weights, a Ray cluster, the test suite itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)

# Commands a test machine cannot run, each with the reason.
NOT_HERE = {
    "pip install": "installs packages: CI runs the install commands themselves",
    "augkit cache-features sample_data -o features/": "downloads the MobileNet v2 weights (network)",
    "augkit cache-features data/train -o feats/": "downloads the MobileNet v2 weights (network)",
    "augkit cache-features split.csv": "downloads the MobileNet v2 weights (network)",
    "--device cuda": "needs an NVIDIA GPU and onnxruntime-gpu",
    "--engine ray": "needs a Ray cluster at ray://head:10001",
}
PRELUDES = {
    "torch.": "import torch\n",
    "model.fit": ("import os\nos.environ.setdefault('KERAS_BACKEND', 'torch')\nimport keras\n"
                  "model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D(),"
                  " keras.layers.Dense(4, activation='softmax')])\n"
                  "model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy')\n"),
}


def python_blocks() -> list[str]:
    return [code for lang, code in BLOCKS if lang == "python"]


def shell_commands() -> list[str]:
    commands = []
    for lang, code in BLOCKS:
        if lang != "bash":
            continue
        for line in code.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            synopsis = "[" in line or re.search(r"\b(RECIPE|SRC|OUT|NAME|DIR)\b", line)
            if line and not synopsis:
                commands.append(line)
    return commands


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """recipes/, sample_data/, examples/, data/ (the sample classes, with data/split.csv),
    data/train/ for the training snippets, features/, feats/train, feats/val and head/:
    what the README's examples use."""
    import mobilenet_like

    root = tmp_path_factory.mktemp("readme")
    for name in ("recipes", "sample_data", "examples"):
        shutil.copytree(REPO / name, root / name)
    run_here(root, "augkit split sample_data -o split.csv")
    model = root / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=0), model)
    run_here(root, f"augkit cache-features sample_data -o features/ --backbone {model} --input-size 64 --quiet "
                   "--split all")
    # The walk-through "from folder to classifier": its caches as the skipped commands make
    # them (on the tiny backbone), and its HEAD.
    for split, extra in (("train", " --recipe recipes/standard.yaml --views 5 --plain-first"), ("val", "")):
        run_here(root, f"augkit cache-features split.csv --split {split} -o feats/{split} "
                       f"--backbone {model} --input-size 64 --quiet{extra}")
    run_here(root, "augkit train-head feats/train --val feats/val -o head/ --quiet")
    return root


def run_here(cwd: Path, command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}
    done = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=600, env=env,
                          input=stdin, executable="/bin/bash")
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr
    return done


def folder_for(code: str, workdir: Path, tmp_path: Path) -> Path:
    """A copy of the work folder where ``data/`` is what this snippet expects."""
    here = tmp_path / "here"
    shutil.copytree(workdir, here, symlinks=True)
    if "split.csv" not in code:  # as before the walk-through splits sample_data (then training on it is refused)
        (here / "split.csv").unlink()
    if "data/train" in code:
        shutil.copytree(workdir / "sample_data", here / "data" / "train", ignore=shutil.ignore_patterns("*.csv"))
    elif "data/" in code:
        shutil.copytree(workdir / "sample_data", here / "data", ignore=shutil.ignore_patterns("*.csv"))
        run_here(here, "augkit split data")
    return here


@pytest.mark.parametrize("code", python_blocks(), ids=lambda c: c.strip().splitlines()[0][:40])
def test_every_python_snippet_of_the_readme_runs(code, workdir, tmp_path):
    if "torch" in code:
        pytest.importorskip("torch")
    if "keras" in code:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        pytest.importorskip("keras")
    here = folder_for(code, workdir, tmp_path)
    prelude = "".join(p for word, p in PRELUDES.items() if word in code)
    (here / "snippet.py").write_text(prelude + code)
    if "sys.stdin" in code:  # a reader of `augkit stream`
        run_here(here, f"augkit stream recipes/light.yaml sample_data --split all --size 32 -b 8 "
                       f"| {sys.executable} snippet.py")
    else:
        run_here(here, f"{sys.executable} snippet.py")


@pytest.mark.parametrize("command", shell_commands(), ids=lambda c: c[:60])
def test_every_shell_command_of_the_readme_runs(command, workdir, tmp_path):
    reason = next((why for part, why in NOT_HERE.items() if part in command), None)
    if reason:
        pytest.skip(reason)
    run_here(folder_for(command, workdir, tmp_path), command.replace("python ", f"{sys.executable} "))
