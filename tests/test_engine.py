"""The engine: any task, any worker count, the same outcomes; failures are outcomes."""

from __future__ import annotations

import os
import time

import pytest

from augkit.engine import MAX_CHUNK, LocalEngine, WorkerSetupError, get_engine
from augkit.errors import UsageError


class Square:
    def __call__(self, item):
        return item * item


class FailOn:
    """Raises on one item, kills its worker process on another."""

    def __init__(self, bad=None, deadly=None):
        self.bad, self.deadly = bad, deadly

    def __call__(self, item):
        if item == self.deadly:
            os._exit(3)
        if item == self.bad:
            raise ValueError(f"cannot take {item}")
        return item


class BrokenSetup:
    def setup(self):
        raise RuntimeError("model file is missing")

    def __call__(self, item):
        return item


class Big:
    """A result large enough that a worker is still sending it when the run is stopped."""

    def __call__(self, item):
        return b"x" * 80_000_000


class Pid:
    def __call__(self, item):
        time.sleep(0.01)
        return os.getpid()


class Busy:
    """Keeps a core busy for ``seconds`` per item."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, item):
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return os.getpid()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_map_gives_every_result_in_order_for_any_worker_count(workers):
    with LocalEngine(workers=workers, chunk_size=3) as engine:
        outcomes = list(engine.map(Square(), range(50)))
    assert [o.index for o in outcomes] == list(range(50))
    assert [o.value for o in outcomes] == [i * i for i in range(50)]
    assert all(o.error is None for o in outcomes)


def test_map_unordered_gives_every_item_once():
    with LocalEngine(workers=2, chunk_size=2) as engine:
        outcomes = list(engine.map_unordered(Square(), range(40)))
    assert sorted(o.index for o in outcomes) == list(range(40))


def test_an_exception_is_an_outcome_and_the_rest_still_run():
    with LocalEngine(workers=2) as engine:
        outcomes = list(engine.map(FailOn(bad=5), range(12)))
    failed = [o for o in outcomes if o.error]
    assert [o.index for o in failed] == [5]
    assert "ValueError: cannot take 5" in failed[0].error and "\n" not in failed[0].error
    assert [o.value for o in outcomes if not o.error] == [i for i in range(12) if i != 5]


def test_a_worker_that_dies_is_pinned_on_its_item_and_the_run_finishes():
    with LocalEngine(workers=2, chunk_size=4) as engine:
        outcomes = list(engine.map(FailOn(deadly=7), range(30)))
    crashed = [o for o in outcomes if o.crashed]
    assert [o.index for o in crashed] == [7]
    assert [o.value for o in outcomes if not o.crashed] == [i for i in range(30) if i != 7]


def test_a_setup_that_fails_stops_the_run_with_its_reason():
    with LocalEngine(workers=2) as engine, pytest.raises(WorkerSetupError, match="model file is missing"):
        list(engine.map(BrokenSetup(), range(5)))


def test_workers_are_reused_between_calls_with_the_same_task():
    task = Pid()
    with LocalEngine(workers=2) as engine:
        first = {o.value for o in engine.map(task, range(20))}
        second = {o.value for o in engine.map(task, range(20))}
    assert first == second and os.getpid() not in first


def test_a_consumer_that_stops_early_leaves_no_worker_behind():
    engine = LocalEngine(workers=2)
    results = engine.map_unordered(Pid(), range(1000))
    pids = {next(results).value for _ in range(10)}
    results.close()  # what a `break` out of a for loop, or Ctrl-C in the loop body, does
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def test_chunks_hold_about_a_tenth_of_a_second_of_work_unless_fixed():
    # Every chunk costs the parent CPU that the workers need; cheap items travel many at once.
    with LocalEngine(workers=2) as engine:
        assert engine._next_chunk_size() == 1  # nothing measured yet: the first results come at once
        list(engine.map_unordered(Busy(0.005), range(100)))
        assert 10 <= engine._next_chunk_size() <= 21  # 0.1 s / 5 ms = 20, less when preempted
        assert engine._next_chunk_size(left=12) == 3  # the last chunks shrink: 12 items, 2 workers
        list(engine.map_unordered(Busy(0.0), range(50)))  # another task: measured afresh
        assert engine._next_chunk_size() == MAX_CHUNK
    with LocalEngine(workers=2, chunk_size=3) as engine:
        list(engine.map_unordered(Busy(0.0), range(50)))
        assert engine._next_chunk_size() == 3


def test_workers_zero_runs_in_this_process():
    with LocalEngine(workers=0) as engine:
        assert {o.value for o in engine.map(Pid(), range(3))} == {os.getpid()}


def test_unknown_engine_name_lists_the_known_ones():
    with pytest.raises(UsageError, match="known: local"):
        get_engine("spark")


def test_stopping_while_a_worker_sends_a_result_does_not_hang_the_process():
    engine = LocalEngine(workers=2, chunk_size=1, prefetch=1)
    results = engine.map_unordered(Big(), range(6))
    next(results)  # the other worker is now in the middle of sending its 80 MB
    manager = engine._executor._executor_manager_thread
    time.sleep(0.05)
    results.close()
    manager.join(10)
    # The interpreter joins this thread at exit: alive here means a process that never exits.
    assert not manager.is_alive()


def test_workers_import_the_augkit_of_their_parent_whatever_the_current_folder(tmp_path):
    # The parent of a clone holds augkit/recipes/ (a folder, no __init__.py): the workers
    # once imported it as a namespace package, and every task failed to unpickle.
    import subprocess
    import sys
    import textwrap

    shadow = tmp_path / "parent_of_clone"
    (shadow / "augkit" / "recipes").mkdir(parents=True)
    (shadow / "augkit" / "recipes" / "standard.yaml").write_text("transforms: []\n")
    script = tmp_path / "scripts" / "run.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent("""
        import functools
        import numpy as np
        from augkit.engine import LocalEngine
        from augkit.recipes import Recipe, load_recipe

        recipe = load_recipe({"transforms": [{"HorizontalFlip": {"p": 1.0}}]})
        images = [np.full((4, 4, 3), i, np.uint8) for i in range(4)]
        with LocalEngine(workers=2) as engine:
            outcomes = list(engine.map(functools.partial(Recipe.__call__, recipe), images))
        print([o.error for o in outcomes if o.error])
        print(sum(o.value is not None for o in outcomes))
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=shadow, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "4"]
