"""A request body read ahead on the event loop while a worker thread stores it.

Under ``mailroom serve`` an upload with a Content-Length is taken past the parser instead
(``direct_body``, ``web.direct_body``); this is the way for every other body: one sent in chunks,
or any body under another ASGI server.

A large upload is stored by a worker thread (hashing and writing block), while its bytes arrive
on the event loop. If the thread asked the loop for each piece in turn, the two would take
turns: uvicorn stops reading the socket once it holds 64 KiB that nobody has asked for, so no
byte would arrive while the thread hashed or wrote, and the thread would sit idle while the loop
read. Here a task on the loop keeps reading into a short queue (``READ_AHEAD`` pieces, each at
most about 320 KiB: uvicorn's 64 KiB mark plus one 256 KiB socket read), and the thread takes
everything queued in one hop. One upload so holds at most ``2 * READ_AHEAD + 1`` pieces here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.from_thread
import anyio.to_thread
from starlette.requests import Request

from mailroom.web.direct_body import DIRECT_BODY, BodyEnd, DirectBody

#: Pieces queued ahead of the storing thread.
READ_AHEAD = 4


class BodyPump(Iterator[bytes]):
    """Iterate in a worker thread over a body that a task on the loop reads ahead.

    Use only through :func:`read_ahead`, which starts the reading task and stops it when the
    thread is done (or gave up: a body over its limit is not read to the end).
    """

    def __init__(self, stream: AsyncIterator[bytes], ahead: int = READ_AHEAD) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[bytes | BodyEnd] = asyncio.Queue(ahead)
        self._taken: deque[bytes | BodyEnd] = deque()

    async def pump(self) -> None:
        try:
            async for piece in self._stream:
                if piece:
                    await self._queue.put(piece)
        except Exception as exc:  # a client that went away: the thread hears of it at its next piece
            await self._queue.put(BodyEnd(exc))
            return
        await self._queue.put(BodyEnd())

    async def _take(self) -> list[bytes | BodyEnd]:
        taken = [await self._queue.get()]
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    def __iter__(self) -> BodyPump:
        return self

    def __next__(self) -> bytes:
        if not self._taken:
            self._taken.extend(anyio.from_thread.run(self._take))
        piece = self._taken[0]
        if isinstance(piece, BodyEnd):  # left in place: asking again gives the same answer
            piece.stop()
        self._taken.popleft()
        return piece


@contextlib.asynccontextmanager
async def read_ahead(stream: AsyncIterator[bytes]) -> AsyncIterator[BodyPump]:
    """A :class:`BodyPump` over ``stream``, its reading task stopped on the way out."""
    body = BodyPump(stream)
    task = asyncio.get_running_loop().create_task(body.pump())
    try:
        yield body
    finally:
        task.cancel()
        await asyncio.wait([task])  # the task's own cancellation is not raised here


def direct_body(request: Request) -> DirectBody | None:
    """The rest of ``request``'s body straight from the socket (``web.direct_body``), where the
    server offers it and the body has a declared length; None otherwise. Close it when done."""
    divert = request.scope.get("extensions", {}).get(DIRECT_BODY)
    return divert() if divert is not None else None


async def read_in_turn(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking iterator's pieces (a stored payload being downloaded), each read in a worker
    thread while the one before it is sent: the disk and the socket work at the same time, and no
    thread is held between pieces (a slow client holds none at all). The iterator is closed on
    the way out, once no read of it is running."""
    pending = asyncio.ensure_future(anyio.to_thread.run_sync(next, pieces, None))
    try:
        while (piece := await pending) is not None:
            pending = asyncio.ensure_future(anyio.to_thread.run_sync(next, pieces, None))
            yield piece
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await pending  # a generator may not be closed while a thread runs it
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
