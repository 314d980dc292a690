"""web/direct_body.py: the hand-over between the event loop that fills a body's pieces and the
thread that stores them (the protocol's side is in test_http_protocol.py, over real sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from mailroom.web.direct_body import AHEAD, PIECE, DirectBody, Pieces, new_pieces


class Reading:
    """Stands for the socket: records pauses and resumes of reading."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


def _body(remaining: int, reading: Reading, pieces: Pieces | None = None, held: Any = ()) -> DirectBody:
    return DirectBody(
        list(held),
        remaining,
        scratch=memoryview(bytearray(1024)),
        pause=reading.pause,
        resume=reading.resume,
        pieces=pieces or new_pieces(),
    )


def _fill(body: DirectBody, byte: int) -> None:
    """One whole piece arrives, in two reads."""
    space = body.space()
    half = len(space) // 2
    space[:half] = bytes([byte]) * half
    body.filled(half)
    space = body.space()
    space[:] = bytes([byte]) * len(space)
    body.filled(len(space))


def test_reading_pauses_with_ahead_pieces_waiting_and_resumes_once_the_thread_takes_one() -> None:
    async def main() -> tuple[list[str], list[str], bytes]:
        reading = Reading()
        body = _body(PIECE * (AHEAD + 1), reading)
        for n in range(AHEAD):
            _fill(body, n)
        paused = list(reading.calls)
        first = await asyncio.to_thread(lambda: bytes(next(body)))  # resumes through the loop
        await asyncio.sleep(0)
        return paused, reading.calls, first

    paused, calls, first = asyncio.run(main())
    assert paused == ["pause"]
    assert calls == ["pause", "resume"]
    assert first == bytes([0]) * PIECE


def test_pieces_go_back_once_the_thread_asks_for_the_next_and_are_used_again() -> None:
    async def main() -> None:
        pieces = new_pieces(keep=1)
        body = _body(2 * PIECE, Reading(), pieces)
        _fill(body, 1)
        first = next(body)
        assert bytes(first[:1]) == b"\x01"
        _fill(body, 2)
        second = next(body)  # the first piece is back in the pool now
        reused = pieces.take()
        assert reused.startswith(b"\x01")  # it is the very piece the first view was of
        assert bytes(second[:1]) == b"\x02"
        with pytest.raises(StopIteration):
            next(body)
        pieces.give_back(bytearray(PIECE))  # keep=1: one is kept, the next dropped
        pieces.give_back(bytearray(PIECE))
        assert pieces.take() is not pieces.take()

    asyncio.run(main())


def test_held_pieces_come_first_and_the_last_piece_stops_at_the_body_end() -> None:
    async def main() -> list[bytes]:
        body = _body(PIECE + 10, Reading(), held=[b"parsed "])
        _fill(body, 7)
        space = body.space()
        assert len(space) == 10  # never past the declared length: the next request stays unread
        space[:] = b"0123456789"
        body.filled(10)
        assert not body.reading
        return [bytes(next(body)) for _ in range(3)]

    first, second, third = asyncio.run(main())
    assert first == b"parsed "
    assert second == bytes([7]) * PIECE
    assert third == b"0123456789"


def test_a_lost_connection_reaches_the_thread_after_what_arrived_and_again_on_asking() -> None:
    async def main() -> None:
        body = _body(3 * PIECE, Reading())
        _fill(body, 3)
        body.lost()
        assert bytes(next(body)) == bytes([3]) * PIECE
        for _ in range(2):
            with pytest.raises(ClientDisconnect):
                next(body)

    asyncio.run(main())


def test_closing_before_the_end_drops_the_rest_into_scratch_and_resumes_reading() -> None:
    async def main() -> None:
        reading = Reading()
        body = _body(PIECE + 2000, reading)
        body.close()
        assert reading.calls == ["resume"]
        dropped = 0
        while body.reading:
            space = body.space()
            assert len(space) <= 1024  # the scratch buffer, not a piece
            body.filled(len(space))
            dropped += len(space)
        assert dropped == PIECE + 2000
        with pytest.raises(ClientDisconnect):  # a thread still asking hears the body is gone
            next(body)

    asyncio.run(main())
