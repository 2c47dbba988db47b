"""augkit.core.failures: a sample that cannot be used is a row with a reason, never a crash."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from augkit.core.errors import AugkitError, SampleError, UsageError
from augkit.core.failures import FailureLog, failure_row
from augkit.input.decode_error import DecodeError


def test_a_decode_error_keeps_its_reason_and_its_one_line_message():
    row = failure_row("cat/1.jpg", DecodeError("/data/cat/1.jpg", "truncated", "file is\ntruncated"))
    assert row == {"source": "cat/1.jpg", "reason": "truncated", "message": "/data/cat/1.jpg: file is truncated"}


def test_any_sample_error_keeps_its_reason_whatever_raised_it():
    class Unreadable(SampleError):
        reason = "unreadable"

    assert failure_row("a.png", Unreadable("a.png: no")) == {"source": "a.png", "reason": "unreadable",
                                                            "message": "a.png: no"}


def test_any_other_exception_is_the_recipe_s_and_says_its_type():
    row = failure_row("a.png", ValueError("bad\nvalue"))
    assert row == {"source": "a.png", "reason": "transform_error", "message": "a.png: ValueError: bad value"}


@pytest.mark.parametrize("error", [UsageError("AUGKIT_MAX_IMAGE_PIXELS='x' is not a pixel limit"), AugkitError("no")])
def test_bad_usage_is_no_sample_s_fault_and_is_raised_again(error):
    with pytest.raises(type(error)):
        failure_row("a.png", error)


def test_a_decode_error_crosses_processes_whole():
    error = pickle.loads(pickle.dumps(DecodeError("a.png", "corrupt", "bad CRC")))
    assert isinstance(error, SampleError) and (error.path, error.reason, error.detail) == ("a.png", "corrupt", "bad CRC")


def test_rows_from_every_copy_of_a_log_are_read_back_once_each():
    log = FailureLog()
    copy = pickle.loads(pickle.dumps(log))
    log.add({"source": "a", "reason": "corrupt"})
    copy.add({"source": "a", "reason": "corrupt"})
    copy.add({"source": "b", "reason": "truncated"})
    assert log.rows() == [{"source": "a", "reason": "corrupt"}, {"source": "b", "reason": "truncated"}]


def test_a_log_left_by_a_killed_process_is_swept_when_a_new_log_is_made(tmp_path, monkeypatch):
    import os
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its pid names no process now
    old = 1_000_000_000  # 2001: long untouched
    dead = tmp_path / f"augkit-failures-{ended.pid}-abc_123.jsonl"
    recent = tmp_path / f"augkit-failures-{ended.pid}-def_456.jsonl"  # touched just now: kept a minute more
    live = tmp_path / f"augkit-failures-{os.getpid()}-ghi_789.jsonl"
    unnamed = tmp_path / "augkit-failures-jkl_012.jsonl"  # an older augkit's name, without a pid
    for path in (dead, recent, live, unnamed):
        path.write_text('{"source": "a"}\n')
    for path in (dead, live, unnamed):
        os.utime(path, (old, old))

    log = FailureLog()

    assert not dead.exists()
    assert recent.exists() and live.exists() and unnamed.exists()
    assert os.path.dirname(log.path) == str(tmp_path)
    assert os.path.basename(log.path).startswith(f"augkit-failures-{os.getpid()}-")


def test_the_failure_rows_do_not_import_the_decoder():
    code = "import sys, augkit.core.failures; print('augkit.input.decoding' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
