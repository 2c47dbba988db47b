"""augkit.core.words: how augkit reads names and numbers a person typed, and the words it prints."""

from __future__ import annotations

import pytest

from augkit.core.words import close_matches, numbers, plural


def test_plural_says_one_image_and_two_images():
    assert plural(1, "image") == "1 image"
    assert plural(2, "image") == "2 images"
    assert plural(3, "class", "classes") == "3 classes"


def test_close_matches_ignores_case_when_comparing_and_keeps_it_when_answering():
    assert close_matches("MobileNet_V2", ["mobilenet_v2", "resnet50"]) == ["mobilenet_v2"]
    assert close_matches("horizntalflip", ["HorizontalFlip", "VerticalFlip"])[0] == "HorizontalFlip"


def test_a_name_that_differs_only_in_case_is_the_one_answer():
    assert close_matches("resnet50", ["ResNet50", "resnet18", "resnet34"]) == ["ResNet50"]


def test_names_that_differ_from_each_other_only_in_case_are_all_offered():
    assert sorted(close_matches("pool", ["Pool", "pool_1", "POOL"])) == ["POOL", "Pool"]


def test_close_matches_accepts_any_iterable_of_names_and_offers_at_most_n():
    assert len(close_matches("layer", {f"layer{i}" for i in range(10)}, n=3)) == 3
    assert close_matches("layer", {"conv": 1}.keys()) == []


@pytest.mark.parametrize("text", ["0.5,0.25,1", "0.5 0.25 1", " 0.5, 0.25 ,1 ", [0.5, 0.25, 1], (0.5, "0.25", 1)])
def test_numbers_reads_commas_spaces_or_a_list(text):
    assert numbers(text, 3) == [0.5, 0.25, 1.0]


@pytest.mark.parametrize("bad", ["1,2", "1,2,3,4", "1,x,3", "", None, 5, [1, [2], 3]])
def test_numbers_refuses_anything_but_exactly_that_many_numbers(bad):
    with pytest.raises(ValueError, match="expected 3 numbers"):
        numbers(bad, 3)
