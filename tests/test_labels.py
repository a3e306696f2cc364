"""Age classes and UTKFace name parsing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agegender_cli.data.utkface import ParsedName, parse_name
from agegender_cli.labels import AGE_RANGES, age_to_class


def test_age_classes_follow_the_report():
    assert [age_to_class(a) for a in (0, 2, 4, 6, 8, 13, 15, 20, 25, 32, 38, 43, 48, 53, 60, 116)] == [
        0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    assert [age_to_class(a) for a in (3, 7, 14, 21, 24, 33, 37, 44, 47, 54, 59)] == [None] * 11


def test_nearest_rule_assigns_gaps_to_the_closer_edge():
    assert age_to_class(3, "nearest") == 1  # tie between 2 and 4 goes to the older range
    assert age_to_class(21, "nearest") == 3 and age_to_class(24, "nearest") == 4
    assert age_to_class(33, "nearest") == 4 and age_to_class(37, "nearest") == 5
    assert age_to_class(56, "nearest") == 6 and age_to_class(57, "nearest") == 7


@given(st.integers(0, 130))
def test_nearest_keeps_every_age_and_agrees_with_drop(age):
    nearest = age_to_class(age, "nearest")
    assert nearest is not None
    dropped = age_to_class(age, "drop")
    assert dropped is None or dropped == nearest
    low, high = AGE_RANGES[nearest]
    if dropped is None:
        assert not low <= age <= high


def test_parse_name_reads_the_fields():
    assert parse_name("25_1_3_20170116174525125.jpg.chip.jpg") == ParsedName(25, 1, 3)
    assert parse_name("61_1_20170109142408075.jpg.chip.jpg") == ParsedName(61, 1, None)  # race missing


def test_parse_name_explains_malformed_names():
    assert "gender 3" in parse_name("61_3_20170109150557335.jpg.chip.jpg")
    assert parse_name("hello.jpg").startswith("malformed")
    assert parse_name("25_1_9_20170116174525125.jpg").startswith("race 9")
    assert parse_name("_1_0_20170116174525125.jpg").startswith("malformed")


@given(st.integers(0, 116), st.integers(0, 1), st.integers(0, 4), st.integers(10**16, 10**17 - 1))
def test_parse_name_round_trips(age, gender, race, stamp):
    assert parse_name(f"{age}_{gender}_{race}_{stamp}.jpg.chip.jpg") == ParsedName(age, gender, race)


@given(st.text(max_size=40))
def test_parse_name_never_raises(name):
    result = parse_name(name)
    assert isinstance(result, ParsedName | str)
