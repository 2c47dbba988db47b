"""augkit.core._albu: albumentations without its network check, and without torch in augkit's own
processes, while ``A.ToTensorV2`` and ``A.pytorch`` keep working for code that uses them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from augkit.engines.local import LocalEngine
from imagefiles import class_folders

# With no torch installed there is nothing to defer. (Not importorskip: that would import
# torch here, and in the engine's workers, which import this module for its task.)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_deferred_bridge_imports_albumentations_without_torch_and_keeps_its_names():
    done = run_python("""
        import sys
        from augkit.core._albu import albumentations, defer_torch_bridge
        defer_torch_bridge()
        A = albumentations()
        assert "torch" not in sys.modules
        A.Compose([A.HorizontalFlip()], strict=True)
        assert "torch" not in sys.modules
        from albumentations import ToTensorV2            # the first use imports it
        assert "torch" in sys.modules and A.ToTensorV2 is ToTensorV2
        from albumentations.pytorch import ToTensorV2 as again
        assert again is ToTensorV2 and A.pytorch.ToTensorV2 is ToTensorV2
        try:
            A.NoSuchTransform
        except AttributeError as e:
            assert "NoSuchTransform" in str(e)
        else:
            raise AssertionError("no error")
        print("ok")
    """)
    assert done.stdout.strip() == "ok", done.stderr


def test_without_deferring_albumentations_is_imported_as_usual():
    done = run_python("""
        import sys
        from augkit.core._albu import albumentations
        A = albumentations()
        print("torch" in sys.modules, "ToTensorV2" in vars(A))
    """)
    assert done.stdout.split() == ["True", "True"], done.stderr


class TorchLoaded:
    def __call__(self, item):
        from augkit.recipes import load_recipe

        load_recipe({"transforms": ["HorizontalFlip"]})(__import__("numpy").zeros((4, 4, 3), "uint8"), seed=item)
        return "torch" in sys.modules


def test_engine_workers_do_not_import_torch():
    with LocalEngine(workers=1) as engine:
        assert [o.value for o in engine.map(TorchLoaded(), range(2))] == [False, False]


def test_the_augkit_command_does_not_import_torch(tmp_path):
    data = class_folders(tmp_path / "data", per_class=1)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "augkit", "augment", str(recipe), str(data),
                           str(tmp_path / "out"), "-w", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "albumentations" in imported and "torch" not in imported
