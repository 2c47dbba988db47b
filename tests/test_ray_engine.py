"""`--engine ray`: the same tasks on Ray give byte-identical outputs; resume works the same."""

from __future__ import annotations

import builtins
import sys

import pytest
from click.testing import CliRunner

from augkit.cli import cli
from augkit.engines import get_engine
from augkit.core.errors import UsageError
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
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import tests/


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"NO_ALBUMENTATIONS_UPDATE": "1"}})
    yield
    ray.shutdown()


class CountsSetups:
    """Writes a file per ``setup()`` call, named by its process: how often each process set up."""

    def __init__(self, folder):
        self.folder = folder

    def setup(self):
        import os
        import time

        (self.folder / f"{os.getpid()}-{time.monotonic_ns()}").touch()

    def __call__(self, item):
        import os

        return os.getpid()


class BrokenSetup:
    def setup(self):
        raise RuntimeError("model file is missing")

    def __call__(self, item):
        return item


def test_on_ray_setup_runs_once_in_each_worker_process_not_once_per_chunk(local_ray, tmp_path):
    task = CountsSetups(tmp_path)
    with get_engine("ray", chunk_size=1) as engine:
        ran = {o.value for o in engine.map(task, range(30))} | {o.value for o in engine.map(task, range(30))}
    counts: dict[int, int] = {}
    for entry in tmp_path.iterdir():
        pid = int(entry.name.split("-")[0])
        counts[pid] = counts.get(pid, 0) + 1
    assert set(counts.values()) == {1}  # 60 chunks, one setup per process
    assert ran <= set(counts)


def test_on_ray_a_setup_that_fails_stops_the_run_with_its_reason(local_ray):
    from augkit.engines.contract import WorkerSetupError

    with get_engine("ray") as engine, pytest.raises(WorkerSetupError, match="model file is missing"):
        list(engine.map(BrokenSetup(), range(5)))


def test_on_ray_feed_hands_each_group_s_outcomes_in_order_to_sinks_in_actors(local_ray):
    import test_engine
    from test_engine import GROUPS, FailOn, RecordingSink

    ray.cloudpickle.register_pickle_by_value(test_engine)  # the same tasks and sink as the local engine's test
    counted = []
    with get_engine("ray", workers=2) as engine:
        results = engine.feed(FailOn(bad=5), GROUPS, RecordingSink, counted.append)
    assert [r["cpus"] for r in results] == [1]  # one CPU per actor, one actor per two CPUs
    assert results[0]["ended"] == ["a", "b", "c"]
    assert results[0]["seen"] == [("a", 1, 1, False), ("a", 2, 2, False), ("a", 3, 3, False), ("b", 4, 4, False),
                                  ("c", 5, None, True), ("c", 6, 6, False)]
    assert sum(counted) == 6


def failure_rows(out) -> list[str]:
    """The rows of a run's failures.csv: the same inputs must fail, for the same reasons."""
    return (out / "failures.csv").read_text().splitlines()[1:]


def identities(folder, pattern: str) -> dict[str, tuple[int, int]]:
    """Name -> (inode, mtime) of the files that match: a file written again gets a new inode."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob(pattern)}


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

    assert failure_rows(tmp_path / "ray") == failure_rows(tmp_path / "local") != []

    # An interrupted run leaves complete outputs, no reports, maybe a temporary file.
    out = tmp_path / "ray"
    for path in sorted(out.rglob("*.jpg"))[::3]:
        path.unlink()
    for report in ("manifest.csv", "failures.csv", "summary.json"):
        (out / report).unlink()
    (out / "cat" / ".cat_0_00.jpg.augkit-tmp-1-0").write_bytes(b"half")
    kept = identities(out, "*.jpg")
    augment(recipe, data, out, "-k", 2, "--engine", "ray")
    assert identities(out, "*.jpg").items() >= kept.items()  # the resume wrote only what was missing
    assert tree_bytes(out) == tree_bytes(tmp_path / "local")


def feature_inputs(tmp_path, per_class: int) -> tuple:
    """(data folder, cache-features options): a tiny ONNX backbone, a recipe, two classes of
    ``per_class`` photos and an empty file, in shards of 4 images."""
    import mobilenet_like
    from conftest import make_structured_rgb
    from imagefiles import encoded

    model = tmp_path / "tiny.onnx"
    mobilenet_like.save(mobilenet_like.tiny(seed=1), model)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    files = {f"{c}/{c}_{i}.png": encoded(make_structured_rgb(70 + 7 * i, 90, seed=i + 10 * n), "PNG")
             for n, c in enumerate(("cat", "dog")) for i in range(per_class)}
    data = write_tree(tmp_path / "data", {**files, "dog/empty.png": b""})
    args = ["--backbone", model, "--input-size", 64, "--dtype", "float32", "--quiet", "--recipe", recipe,
            "--views", 2, "--shard-images", 4]
    return data, [str(arg) for arg in args]


def test_cache_features_on_ray_equals_local_and_resumes(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGKIT_CACHE_DIR", str(tmp_path / "augkit-cache"))
    data, args = feature_inputs(tmp_path, per_class=5)

    def cache_features(out, *extra):
        result = CliRunner().invoke(cli, ["cache-features", str(data), "-o", str(out), *map(str, args), *map(str, extra)])
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    cache_features(tmp_path / "local", "-w", 2)
    cache_features(tmp_path / "ray", "--engine", "ray")
    local, on_ray = tree_bytes(tmp_path / "local"), tree_bytes(tmp_path / "ray")
    assert on_ray.keys() == local.keys()
    assert on_ray == local

    assert failure_rows(tmp_path / "ray") == failure_rows(tmp_path / "local") != []

    (tmp_path / "ray" / "features-00001.npy").unlink()  # as if stopped before that shard was done
    (tmp_path / "ray" / "features-00002.json").unlink()
    kept = identities(tmp_path / "ray", "features-00000.*")  # the one shard still complete
    cache_features(tmp_path / "ray", "--engine", "ray")
    assert identities(tmp_path / "ray", "features-00000.*") == kept  # not computed again
    assert tree_bytes(tmp_path / "ray") == local


def test_cache_features_with_one_worker_on_a_ray_of_its_own_completes_and_equals_local(tmp_path, monkeypatch):
    # -w 1 starts a Ray of one CPU; the sink actor once took that CPU, and the tasks that
    # feed it waited forever. The run starts its own Ray only where none is running, so it
    # runs in a process of its own; a hang fails at the (generous) timeout, which ends the
    # run's whole process group, the Ray it started included.
    import os
    import signal
    import subprocess

    monkeypatch.setenv("AUGKIT_CACHE_DIR", str(tmp_path / "augkit-cache"))
    data, args = feature_inputs(tmp_path, per_class=3)
    local = CliRunner().invoke(cli, ["cache-features", str(data), "-o", str(tmp_path / "local"), *args, "-w", "1"])
    assert local.exit_code == 0, (local.output, local.exception)

    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "augkit", "cache-features", str(data), "-o", str(tmp_path / "ray"), *args,
               "--engine", "ray", "-w", "1"]
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        _, stderr = run.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        raise
    assert run.returncode == 0, stderr[-3000:]
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")
