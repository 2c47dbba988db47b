"""decode_bytes on mutated real files: a whole RGB image or a DecodeError, never anything else.

A short, derandomized pass of tools/fuzz_decoder.py's mutations, drawn by hypothesis, so
that a failure shrinks to the fewest, simplest mutations that show it. Each input is
decoded in a sandbox process with a capped address space and a time limit per input, so
a decoder that allocates without bound, crashes or never returns fails the test (with
the input) instead of taking the test run down. A long run: python tools/fuzz_decoder.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fuzz_decoder.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("fuzz_decoder", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


fuzz = load_tool()
SEEDS = fuzz.seed_files()

inputs = st.tuples(
    st.sampled_from(sorted(SEEDS)),
    st.lists(st.tuples(st.sampled_from(sorted(fuzz.MUTATIONS)), st.integers(0, 2**32 - 1)), min_size=1, max_size=4),
)


@pytest.fixture(scope="module")
def sandbox():
    with fuzz.Sandbox(timeout_s=20) as box:  # generous: CI machines stall
        yield box


@settings(max_examples=400, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(job=inputs)
def test_a_mutated_file_decodes_whole_or_is_a_decode_error_with_a_known_reason(sandbox, job):
    seed_name, mutations = job
    problem = sandbox.check({"seed": seed_name, "mutations": mutations})
    assert problem is None, f"{seed_name} after {mutations}: {problem}"


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_file_decodes(sandbox, name):
    # A seed that does not decode would leave its format's decoder unexercised.
    assert sandbox.outcome({"seed": name, "mutations": []}) == (None, "decoded")


def test_the_sandbox_reports_a_decoder_that_never_returns(tmp_path):
    with fuzz.Sandbox(timeout_s=1, startup_s=0) as box:
        box.args[1:2] = [str(tmp_path / "stalls.py")]  # a sandbox that reads the job and never answers
        (tmp_path / "stalls.py").write_text("import sys, threading\nsys.stdin.readline()\nthreading.Event().wait()\n")
        assert box.outcome({"data": ""}) == ("hang: no answer in 1 s", "hang")


def test_the_sandbox_reports_a_decoder_that_crashes(tmp_path):
    with fuzz.Sandbox() as box:
        box.args[1:2] = [str(tmp_path / "crashes.py")]
        (tmp_path / "crashes.py").write_text("import os, signal, sys\nsys.stdin.readline()\nos.kill(os.getpid(), signal.SIGSEGV)\n")
        assert box.outcome({"data": ""}) == ("crash: the decoding process ended (signal SIGSEGV)", "crash")


def test_the_sandbox_caps_memory(tmp_path):
    # What the cap is for: a decoder that believes a header and allocates for it.
    with fuzz.Sandbox(memory_mb=64) as box:
        box.args[1:2] = [str(tmp_path / "allocates.py"), str(TOOL)]
        (tmp_path / "allocates.py").write_text(
            "import sys, runpy\n"
            "tool = runpy.run_path(sys.argv[1])\n"
            "import augkit.input.decoding as decoding\n"
            "decoding.decode_bytes = lambda data, **kw: bytearray(1 << 30)\n"  # 1 GiB, as for a bomb
            "sys.argv[1:2] = []\n"
            "tool['main'](sys.argv[1:])\n"
        )
        problem, outcome = box.outcome({"data": "00"})
    assert outcome == "exception" and problem.startswith("MemoryError")
