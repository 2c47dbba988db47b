"""augkit.core.runs: a run's record and the one "same run?" guard (augment's OUT, the feature CACHE)."""

from __future__ import annotations

import json

import pytest

from augkit.core.errors import UsageError
from augkit.core.runs import UnreadableRecord, describe, differences, read_record, refuse_unless_overwrite, write_record


def test_a_record_written_is_read_back_and_no_record_is_none(tmp_path):
    write_record(tmp_path / "run.json", {"seed": 3, "recipe_fingerprint": "abc"})
    assert read_record(tmp_path / "run.json") == {"seed": 3, "recipe_fingerprint": "abc"}
    assert read_record(tmp_path / "missing.json") is None


def test_an_older_records_recipe_hash_is_read_as_recipe_fingerprint(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"recipe_hash": "abc", "seed": 0}))
    assert read_record(tmp_path / "meta.json") == {"recipe_fingerprint": "abc", "seed": 0}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_record_that_is_not_a_json_object_is_unreadable(tmp_path, text):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(UnreadableRecord):
        read_record(tmp_path / "run.json")


def test_only_the_compared_settings_that_differ_are_named():
    before = {"recipe_fingerprint": "a", "seed": 0, "copies": 1}
    after = {"recipe_fingerprint": "b", "seed": 0, "copies": 5}
    assert differences(before, after, ["recipe_fingerprint", "seed"]) == ["recipe_fingerprint"]


def test_without_a_recipe_the_seed_does_not_make_another_run():
    before = {"recipe_fingerprint": None, "seed": 0, "seeding": None}
    after = {"recipe_fingerprint": None, "seed": 9, "seeding": "one-stream"}
    assert differences(before, after, ["recipe_fingerprint", "seed", "seeding"]) == []
    assert differences({**before, "recipe_fingerprint": "a"}, {**after, "recipe_fingerprint": "a"},
                       ["seed", "seeding"]) == ["seed", "seeding"]


def test_what_differs_reads_as_the_recipe_then_each_setting_with_a_sha256_shortened():
    before = {"recipe_fingerprint": "a", "seed": 0, "weights_sha256": "0" * 64}
    after = {"recipe_fingerprint": "b", "seed": 9, "weights_sha256": "1" * 64}
    text = describe(before, after, ["seed", "recipe_fingerprint", "weights_sha256"], {"weights_sha256": "weights"})
    assert text == "the recipe, seed 0 -> 9, weights '000000000000...' -> '111111111111...'"


def test_a_setting_not_recorded_or_none_reads_as_words_not_as_python_s_none():
    before, after = {"decode": "reduced", "val_cache": "a"}, {"val_cache": None}
    assert describe(before, after, ["decode", "val_cache"], missing={"decode": "whole"}) == \
        "decode 'reduced' -> whole, val_cache 'a' -> none"


def test_another_run_is_refused_naming_what_differs_unless_overwrite(tmp_path):
    with pytest.raises(UsageError, match=r"holds a run made with other settings or sources \(seed 0 -> 9\); "
                                         r"use another OUT or --overwrite to replace it$"):
        refuse_unless_overwrite(tmp_path, "seed 0 -> 9", False, holds="a run", word="OUT")
    assert refuse_unless_overwrite(tmp_path, "seed 0 -> 9", True, holds="a run", word="OUT") is True
    assert refuse_unless_overwrite(tmp_path, "", False, holds="a run", word="OUT") is False
