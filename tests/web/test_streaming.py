"""web.streaming: a request body read ahead on the event loop while a worker thread stores it, and a
download's pieces read in worker threads in turn."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import anyio.to_thread
import pytest

from mailroom.web.streaming import READ_AHEAD, read_ahead, read_in_turn


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


# read_in_turn: a download's stored pieces, each read while the one before is sent ------------


class Stored:
    """A blocking iterator of ``count`` pieces, like a payload being read; records its calls."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.asked = 0
        self.asked_for: dict[int, threading.Event] = {n: threading.Event() for n in range(1, count + 2)}
        self.reading = threading.Lock()
        self.closed_while_reading = False
        self.closed = False

    def __iter__(self) -> Stored:
        return self

    def __next__(self) -> bytes:
        with self.reading:
            self.asked += 1
            self.asked_for[self.asked].set()
            time.sleep(0.01)  # the disk
            if self.asked == self.fail_at:
                raise OSError("disk gone")
            if self.asked > self.count:
                raise StopIteration
            return b"piece %d" % self.asked

    def close(self) -> None:
        self.closed_while_reading = self.reading.locked()
        self.closed = True


def test_each_piece_is_read_while_the_one_before_it_is_sent_and_the_source_closed_at_the_end() -> None:
    stored = Stored(3)

    async def main() -> list[bytes]:
        sent = []
        async for piece in read_in_turn(stored):
            # the next read has begun before this piece is "sent": waiting for it cannot hang
            number = int(piece.split()[1])
            assert await anyio.to_thread.run_sync(stored.asked_for[number + 1].wait, 5)
            sent.append(piece)
        return sent

    assert asyncio.run(main()) == [b"piece 1", b"piece 2", b"piece 3"]
    assert stored.closed


def test_a_download_given_up_mid_read_closes_the_source_only_once_the_read_is_done() -> None:
    stored = Stored(10)

    async def main() -> None:
        pieces = read_in_turn(stored)
        assert await pieces.__anext__() == b"piece 1"  # the read of piece 2 is now running
        await pieces.aclose()

    asyncio.run(main())
    assert stored.closed
    assert not stored.closed_while_reading
    assert stored.asked == 2


def test_a_failed_read_reaches_the_sender() -> None:
    stored = Stored(5, fail_at=2)

    async def main() -> list[bytes]:
        sent = []
        async for piece in read_in_turn(stored):
            sent.append(piece)
        return sent

    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(main())
    assert stored.closed
