"""A request body read ahead on the event loop while a worker thread stores it (web.streaming)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio.to_thread

from mailroom.web.streaming import READ_AHEAD, read_ahead


class Hangup(Exception):
    pass


class Source:
    """An async body of ``count`` numbered pieces (endless if None), counting what was pulled."""

    def __init__(self, count: int | None, fail_after: int | None = None) -> None:
        self.count, self.fail_after = count, fail_after
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.count is None or self.pulled < self.count:
            if self.pulled == self.fail_after:
                raise Hangup
            self.pulled += 1
            await asyncio.sleep(0)
            yield b"%d," % self.pulled


def run(source: Source, consume) -> object:
    async def main() -> object:
        async with read_ahead(source.__aiter__()) as body:
            result = await anyio.to_thread.run_sync(consume, body)
        await asyncio.sleep(0.01)
        left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert left == []  # the reading task is gone once the block is left
        return result

    return asyncio.run(main())


def test_the_thread_gets_every_piece_in_order():
    source = Source(500)
    assert run(source, lambda body: b"".join(body)) == b"".join(b"%d," % n for n in range(1, 501))


def test_the_end_is_the_end_every_time_it_is_asked_for():
    def twice(body):
        first = list(body)
        return first, list(body)

    assert run(Source(3), twice) == ([b"1,", b"2,", b"3,"], [])


def test_an_error_reading_the_body_reaches_the_thread():
    def consume(body):
        got = []
        try:
            for piece in body:
                got.append(piece)
        except Hangup:
            return got, "hangup"
        return got, "end"

    assert run(Source(None, fail_after=5), consume) == ([b"1,", b"2,", b"3,", b"4,", b"5,"], "hangup")


def test_reading_ahead_is_bounded_and_stops_when_the_thread_gives_up():
    """A thread that stops early (a body over its size limit) leaves the rest unread: at most
    2 x READ_AHEAD pieces (queued, and taken by the thread in one hop) and the one being queued
    were ever pulled from the client beyond what it used."""
    source = Source(None)

    def take_three(body):
        pieces = [next(body) for _ in range(3)]
        time.sleep(0.05)  # the reader runs ahead as far as it may meanwhile
        return pieces

    assert run(source, take_three) == [b"1,", b"2,", b"3,"]
    assert 3 <= source.pulled <= 3 + 2 * READ_AHEAD + 1
