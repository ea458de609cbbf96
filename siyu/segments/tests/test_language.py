"""The parser: what it accepts, and where it points when it does not."""

from datetime import date
from decimal import Decimal

import pytest

from siyu.segments.errors import SegmentSyntaxError
from siyu.segments.language import (
    AddedBefore,
    AddedWithin,
    And,
    AttrCompare,
    EventCount,
    Not,
    Or,
    StaffIs,
    StageIs,
    TagIs,
    parse,
)


def test_the_issue_example_parses_into_a_conjunction() -> None:
    node = parse('tag:"高意向" and tag:"上海" and not tag:"已购" and added_within:90d')

    assert node == And(
        (
            TagIs("高意向", 0),
            TagIs("上海", 14),
            Not(TagIs("已购", 31)),
            AddedWithin(90, 44),
        )
    )


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    assert parse("stage:paid or stage:agent and staff:alice") == Or(
        (StageIs("paid", 0), And((StageIs("agent", 14), StaffIs("alice", 30))))
    )
    assert parse("(stage:paid or stage:agent) and staff:alice") == And(
        (Or((StageIs("paid", 1), StageIs("agent", 15))), StaffIs("alice", 32))
    )


def test_attributes_counts_dates_and_escapes() -> None:
    node = parse(
        'attr.level >= 3 AND count(event:"customer.added", 7d) >= 2 '
        'and added_before:2026-01-01 and tag:"a\\"b"'
    )

    assert node == And(
        (
            AttrCompare("level", ">=", Decimal(3), 0, 14),
            EventCount("customer.added", 7, ">=", 2, 20),
            AddedBefore(date(2026, 1, 1), 63),
            TagIs('a"b', 91),
        )
    )


@pytest.mark.parametrize(
    ("expression", "position", "message"),
    [
        ('tag:"高意向" and', 13, "expected a condition"),
        ("tag:高意向", 4, "unexpected character '高'"),
        ('tag:"x" or (stage:a', 19, "expected ')'"),
        ("attr.level >> 3", 12, "expected a value"),
        ("added_within:0d", 13, "days must be between 1 and 3650"),
        ("added_before:2026-02-30", 13, "is not a valid date"),
        ("colour:red", 0, "unknown condition 'colour'"),
        ('tag:"open', 4, "unterminated string"),
        ("stage:paid stage:agent", 11, "expected 'and', 'or' or the end"),
        ('count(event:"x", 7d) >= 1.5', 24, "whole number"),
        ("", 0, "the expression is empty"),
    ],
)
def test_bad_syntax_names_the_position(expression: str, position: int, message: str) -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse(expression)

    assert caught.value.position == position
    assert message in caught.value.message
    assert caught.value.details["position"] == position


def test_the_caret_lines_up_under_wide_characters() -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse('tag:"高意向" or or')

    # '高意向' is three double-width characters: the caret sits under the second "or".
    assert caught.value.caret == 'tag:"高意向" or or\n' + " " * 16 + "^"


def test_runaway_nesting_is_refused() -> None:
    with pytest.raises(SegmentSyntaxError, match="nests deeper"):
        parse("not " * 60 + "stage:paid")
