"""Pure domain rules: chunk ranges, workflow filters, flags, ids, report wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailroom.domain.messages import ChunkRange, WorkflowFilter, parse_chunk_range, parse_flag
from mailroom.domain.reports import _describe
from mailroom.ids import is_generated_id, new_message_id, normalise_message_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1:1", ChunkRange(1, 1)),
        ("1:5", ChunkRange(1, 5)),
        (" 3:5 ", ChunkRange(3, 5)),
        ("5:5", ChunkRange(5, 5)),
    ],
)
def test_valid_chunk_ranges(raw, expected):
    assert parse_chunk_range(raw, max_chunks=100) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "1", "1:", ":1", "0:1", "2:1", "a:b", "1:-1", "-1:2", "1:101", "1:1:1", "1.0:2", "１:２"],  # noqa: RUF001,
)
def test_invalid_chunk_ranges(raw):
    assert parse_chunk_range(raw, max_chunks=100) is None


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("ABC", ["ABC"], ["ABCD", "XABC", "abc"]),
        ("!ABC", ["ABCD", "XYZ"], ["ABC"]),
        ("ABC*", ["ABC", "ABCD"], ["XABC"]),
        ("!ABC*", ["XABC"], ["ABC", "ABCD"]),
        ("*BC*", ["ABCD", "BC"], ["ACB"]),
        ("!*BC*", ["ACB"], ["ABCD"]),
    ],
)
def test_workflow_filter_grammar(pattern, matching, not_matching):
    parsed = WorkflowFilter.parse(pattern)
    assert all(parsed.matches(value) for value in matching)
    assert not any(parsed.matches(value) for value in not_matching)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Y", True),
        ("yes", True),
        ("TRUE", True),
        ("on", True),
        ("1", True),
        ("N", False),
        ("0", False),
        ("N/A", False),
        (".#!,", False),
        (None, False),
    ],
)
def test_lenient_flags(raw, expected):
    assert parse_flag(raw) is expected


def test_generated_ids_have_the_real_mesh_shape():
    message_id = new_message_id(datetime(2020, 6, 1, 12, 21, 52, 994285, tzinfo=UTC))
    assert message_id.startswith("20200601122152994285_")
    assert len(message_id) == 27
    assert is_generated_id(message_id)
    assert normalise_message_id(message_id.lower()) == message_id


@pytest.mark.parametrize("raw", ["../etc", "a/b", "", "x" * 101, "A\x00B", "A B"])
def test_unsafe_ids_are_refused(raw):
    assert normalise_message_id(raw) is None
    assert not is_generated_id(raw)


@pytest.mark.parametrize(
    ("period", "text"),
    [
        (timedelta(days=5), "5 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=2), "2 hours"),
        (timedelta(seconds=90), "90 seconds"),
    ],
)
def test_report_period_wording(period, text):
    assert _describe(period) == text


def test_ids_made_at_one_moment_never_repeat():
    """Six hex digits are 24 random bits: 20,000 ids at one microsecond (a fixed clock, a batch
    of reports) would repeat about a dozen times by chance."""
    now = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    made = [new_message_id(now) for _ in range(20_000)]
    assert len(set(made)) == len(made)


def test_ids_of_a_moment_stay_unique_while_other_moments_come_and_go():
    now = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
    made = []
    for n in range(20_000):
        made.append(new_message_id(now))
        new_message_id(now + timedelta(microseconds=n + 1))  # a new timestamp every time
    assert len(set(made)) == len(made)
