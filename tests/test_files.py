"""augkit.core.files: whole-or-nothing writes, the temporaries a killed run leaves, and CSV text
that round-trips any file name."""

from __future__ import annotations

import csv
import io
import os

import pytest

from augkit.core.files import (TEXT_ERRORS, csv_text, file_stamp, remove_temporaries, temporary_name, write_json_atomic,
                               write_text_atomic)

NAMES = ["plain.jpg", "comma, quote \" and space.jpg", "carriage\rreturn.jpg", "line\nfeed.jpg",
         "caf\u00e9 \u732b.jpg", os.fsdecode(b"not_utf8_\xff\xfe.jpg"), "=1+2.jpg"]


def test_csv_text_round_trips_every_file_name_through_a_file(tmp_path):
    path = tmp_path / "names.csv"
    write_text_atomic(path, csv_text(["path", "n"], [[name, i] for i, name in enumerate(NAMES)]))

    with open(path, newline="", encoding="utf-8", errors=TEXT_ERRORS) as f:
        rows = list(csv.reader(f))

    assert rows == [["path", "n"]] + [[name, str(i)] for i, name in enumerate(NAMES)]


def test_a_name_that_is_not_utf8_is_written_as_its_own_bytes(tmp_path):
    path = tmp_path / "names.csv"
    write_text_atomic(path, csv_text(["path"], [[os.fsdecode(b"x\xff.jpg")]]))
    assert path.read_bytes() == b"path\nx\xff.jpg\n"


def test_rows_without_special_characters_stay_unquoted():
    assert csv_text(["a", "b"], [["x", 1], ["y z", 2]]) == "a,b\nx,1\ny z,2\n"


def test_a_killed_runs_temporary_is_swept_only_for_a_file_the_run_owns(tmp_path):
    ours = tmp_path / temporary_name("out.jpg")
    other_target = tmp_path / temporary_name("mine.jpg")
    lookalike = tmp_path / ".notes.tmp-draft"
    for p in (ours, other_target, lookalike):
        p.write_bytes(b"x")

    remove_temporaries(tmp_path, lambda name: name == "out.jpg")

    assert not ours.exists() and other_target.exists() and lookalike.exists()


def test_a_json_file_written_again_sweeps_what_a_killed_write_of_it_left_and_nothing_else(tmp_path):
    left = tmp_path / ".stats.json.augkit-tmp-999-0"  # a killed `augkit stats -o stats.json`
    other = tmp_path / temporary_name("notes.json")
    for p in (left, other):
        p.write_bytes(b"{")

    write_json_atomic(tmp_path / "stats.json", {"images": 3})

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["stats.json", other.name])
    assert (tmp_path / "stats.json").read_text() == '{\n  "images": 3\n}\n'


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path, monkeypatch):
    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError):
        write_text_atomic(tmp_path / "report.csv", "a,b\n")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_file_stamp_changes_when_the_file_is_rewritten(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"one")
    first = file_stamp(path)
    path.write_bytes(b"other")
    assert first != file_stamp(path) and file_stamp(tmp_path / "missing.jpg") is None


# --- a single output file a command writes --------------------------------------------------


def _check(path, **kw):
    from augkit.core.files import check_output_file

    options = {"option": "-o", "what": "a report augkit wrote", "ours": lambda p: p.read_bytes() == b"ours"}
    check_output_file(path, **{**options, **kw})


def test_an_output_file_replaces_only_what_augkit_wrote_for_the_command_unless_overwrite(tmp_path):
    from augkit.core.errors import UsageError

    ours, mine, photo = tmp_path / "ours.json", tmp_path / "mine.json", tmp_path / "photo.jpg"
    ours.write_bytes(b"ours")
    mine.write_bytes(b'{"my": "notes"}')
    photo.write_bytes(b"\xff\xd8\xff\xe0 a photo")
    _check(tmp_path / "new.json")
    _check(ours)
    _check(mine, overwrite=True)
    with pytest.raises(UsageError) as refused:
        _check(mine, overwrite=False)
    assert str(refused.value) == f"-o {mine}: exists and is not a report augkit wrote; choose another path, or " \
                                 f"--overwrite to replace it"
    with pytest.raises(UsageError) as refused:
        _check(photo)  # a command without --overwrite
    assert str(refused.value) == f"-o {photo}: exists and is a JPEG image, not a report augkit wrote; choose " \
                                 f"another path"
    with pytest.raises(UsageError, match="is a folder; give a file name"):
        _check(tmp_path)


def test_an_input_image_is_refused_even_with_overwrite_and_even_when_it_looks_like_augkits(tmp_path):
    from augkit.core.errors import UsageError

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"ours")
    with pytest.raises(UsageError) as refused:
        _check(photo, overwrite=True, inside_source=lambda p: True, source="data")
    assert str(refused.value) == f"-o {photo}: is one of the input images (data); augkit never writes over its " \
                                 f"inputs: choose another path"
    with pytest.raises(UsageError) as refused:
        _check(tmp_path / "new.png", overwrite=True, inside_source=lambda p: True, source="data")
    assert str(refused.value) == f"-o {tmp_path / 'new.png'}: is inside data, where it would be read as one of its " \
                                 f"images; choose a path outside it"
    assert photo.read_bytes() == b"ours"
