"""`--engine ray`: the same tasks on Ray give byte-identical outputs; resume works the same."""

from __future__ import annotations

import builtins
import sys

import pytest
from click.testing import CliRunner

from augkit.cli import cli
from augkit.engine import get_engine
from augkit.errors import UsageError
from imagefiles import bad_images, class_folders, tree_bytes, write_tree

RECIPE = "transforms:\n  - HorizontalFlip: {p: 0.5}\n  - RandomResizedCrop: {size: [32, 32]}\n  - RGBShift: {p: 0.5}\n"


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UsageError, match=r'pip install "augkit\[ray\]"'):
        get_engine("ray")


def test_ray_address_without_ray_engine_is_bad_usage(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    data = class_folders(tmp_path / "d", per_class=1)
    result = CliRunner().invoke(cli, ["augment", str(tmp_path / "r.yaml"), str(data), str(tmp_path / "o"), "--ray-address", "x:1"])
    assert result.exit_code == 2 and "--ray-address needs --engine ray" in result.output


ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"NO_ALBUMENTATIONS_UPDATE": "1"}})
    yield
    ray.shutdown()


def augment(*args):
    result = CliRunner().invoke(cli, ["augment", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_augment_on_ray_is_byte_identical_to_local_and_resumes(local_ray, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    data = class_folders(tmp_path / "data", per_class=6)
    write_tree(data, {f"cat/{name}": content for name, (content, _) in bad_images().items()})
    augment(recipe, data, tmp_path / "local", "-k", 2, "-w", 2)
    augment(recipe, data, tmp_path / "ray", "-k", 2, "--engine", "ray")
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")

    # An interrupted run leaves complete outputs, no reports, maybe a temporary file.
    out = tmp_path / "ray"
    for path in sorted(out.rglob("*.jpg"))[::3]:
        path.unlink()
    for report in ("manifest.csv", "failures.csv", "summary.json"):
        (out / report).unlink()
    (out / "cat" / ".cat_0_00.jpg.tmp-1-0").write_bytes(b"half")
    result = augment(recipe, data, out, "-k", 2, "--engine", "ray")
    assert "already there" in result.output
    assert tree_bytes(out) == tree_bytes(tmp_path / "local")
