"""GzipCheck: whole gzip members, however the body is cut into pieces; anything else refused."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest

from mailroom.domain.compression import STEP, GzipCheck, NotGzip, gzip_checked

DATA = random.Random(1).randbytes(300_000) + b"z" * 2_000_000  # some of it compresses well


def check(body: bytes, piece: int) -> None:
    checker = GzipCheck()
    for start in range(0, len(body), piece):
        checker.feed(body[start : start + piece])
    checker.finish()


@pytest.mark.parametrize("piece", [1, 7, 4096, 65_537, 10**9])
def test_a_gzip_body_passes_however_it_is_cut(piece: int) -> None:
    body = gzip.compress(DATA if piece > 1 else DATA[:20_000])
    check(body, piece)


def test_several_members_one_after_another_pass() -> None:
    body = gzip.compress(b"first") + gzip.compress(DATA) + gzip.compress(b"")
    check(body, 1000)
    assert list(gzip_checked([body[:10], body[10:]])) == [body[:10], body[10:]]  # passed on as is


def test_output_held_back_by_the_step_is_drained_before_the_end() -> None:
    """An input taken in whole whose output is over one step: the trailer still counts."""
    body = gzip.compress(b"\0" * (STEP * 8))
    checker = GzipCheck()
    checker.feed(body)
    checker.finish()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"abcde", "not gzip at all"),
        (gzip.compress(DATA)[:-4], "cut short (no length in the trailer)"),
        (gzip.compress(DATA)[: len(gzip.compress(DATA)) // 2], "cut in the middle"),
        (gzip.compress(DATA) + b"garbage", "trailing garbage"),
        (gzip.compress(DATA) + b"\0", "a trailing zero byte"),
        (zlib.compress(DATA), "zlib, not gzip"),
        (gzip.compress(DATA)[:-8] + b"\0\0\0\0" + gzip.compress(DATA)[-4:], "a wrong CRC"),
    ],
)
def test_anything_but_whole_gzip_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(NotGzip):
        check(body, 8192)


def test_an_empty_body_is_left_to_the_empty_body_rules() -> None:
    GzipCheck().finish()
    assert list(gzip_checked([])) == []


def test_a_refused_body_stops_at_the_first_bad_piece() -> None:
    pieces = gzip_checked([b"not gzip", b"never reached"])
    with pytest.raises(NotGzip):
        next(pieces)  # the bad first piece is never passed on
