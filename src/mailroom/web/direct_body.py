"""A request body read from the socket straight into large pieces, for a thread to store.

The usual way a body reaches a storing thread is long: uvloop reads the socket, httptools parses
the body out of each read and copies it, uvicorn hands it to the app piece by piece (at most
64 KiB waiting), a task on the event loop queues the pieces and the thread takes them through
the loop (``web.streaming``). For a 1 GiB upload that was thousands of wake-ups of one thread by
another and a copy of every byte on the event loop, which was then the slowest part of the
pipeline (bench/, docs/performance.md).

Once an endpoint has checked a request and decided to store its body, it may ask the protocol
(``web.http_protocol``) to hand over the rest of it here instead. The protocol then reads the
socket straight into this object's pieces (``PIECE`` bytes each, never past the declared
Content-Length, so a pipelined next request stays in the socket) and puts each full piece on a
thread-safe queue, and the storing thread iterates over them. The event loop does one system
call and a few lines of Python per read; the thread wakes once per piece; the loop is woken by
the thread only when ``AHEAD`` pieces were waiting and reading had to pause.

Pieces are used again (``mailroom.spares``): each piece handed to the thread is a view that
stays valid until the thread asks for the next one (the payload stores copy what they keep:
``PayloadStore.put``), and the piece then goes back to its event loop's spares for the next read.

A thread iterating here always comes to an end: the body's last byte, the connection's loss
(``ClientDisconnect``, as Starlette raises it) or the endpoint's ``close`` (an endpoint that
stopped early: the rest of the body is then read and dropped, so the connection stays usable).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn

from starlette.requests import ClientDisconnect

from mailroom.spares import Spares

#: The ASGI scope extension through which an endpoint asks for a request's body as a
#: ``DirectBody`` (set by ``web.http_protocol``; absent under any other server).
DIRECT_BODY = "mailroom.direct_body"
#: Bytes in each piece handed to the storing thread (measured, 1 GiB in 75 MiB chunks: 1 MiB
#: and 2 MiB pieces uploaded alike, 950-1,030 MB/s; 1 MiB holds less memory).
PIECE = 1024 * 1024
#: Full pieces waiting for the thread before reading pauses. An upload so holds at most
#: ``AHEAD + 2`` pieces here: the waiting ones, the one filling and the one the thread has.
AHEAD = 2


Pieces = Spares[bytearray]


def new_pieces(keep: int = AHEAD + 2) -> Pieces:
    """Spare pieces for the bodies read on one event loop: taken on the loop, given back by the
    storing threads."""
    return Spares(lambda: bytearray(PIECE), keep=keep)


_pieces = threading.local()


def loop_pieces() -> Pieces:
    """This thread's (so this event loop's) pieces."""
    pieces: Pieces | None = getattr(_pieces, "pieces", None)
    if pieces is None:
        pieces = _pieces.pieces = new_pieces()
    return pieces


class BodyEnd:
    """The end of a body in a queue, with the error that ended it, if any. A body iterator leaves
    it in place, so that asking again gives the same answer (``stop``)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error

    def stop(self) -> NoReturn:
        """End the iteration: with the error, or as a finished body."""
        if self.error is not None:
            raise self.error
        raise StopIteration


class DirectBody(Iterator[bytes]):
    """The rest of one request's body: filled on the event loop, iterated over in a thread.

    ``held`` is what the parser had already taken of the body; ``remaining`` the bytes still
    to come from the socket. ``pause`` and ``resume`` stop and restart reading the socket.
    """

    def __init__(
        self,
        held: list[bytes],
        remaining: int,
        *,
        scratch: memoryview,
        pause: Callable[[], None],
        resume: Callable[[], None],
        pieces: Pieces | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready: queue.SimpleQueue[tuple[bytes | memoryview, bytearray | None] | BodyEnd] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._waiting = 0  # pieces queued and not yet taken
        self._paused = False
        self._remaining = remaining
        self._pieces = loop_pieces() if pieces is None else pieces
        self._piece: bytearray | None = None
        self._fill = 0
        self._size = 0  # bytes of the body the current piece is for
        self._lent: bytearray | None = None  # the piece the thread has
        self._scratch = scratch  # where a dropped rest is read
        self._dropping = False
        self._ended = False
        self._pause = pause
        self._resume = resume
        for piece in held:
            self._hand_over(piece, None)
        if not remaining:
            self._finish()

    @property
    def remaining(self) -> int:
        """Bytes of this body still to come from the socket."""
        return self._remaining

    @property
    def reading(self) -> bool:
        """Whether bytes of this body are still to come from the socket."""
        return self._remaining > 0

    # On the event loop ---------------------------------------------------------------------

    def space(self) -> memoryview:
        """Where the next socket read goes: the rest of the current piece (never past the body)."""
        if self._dropping:
            return self._scratch[: min(len(self._scratch), self._remaining)]
        if self._piece is None:
            self._piece = self._pieces.take()
            self._fill = 0
            self._size = min(PIECE, self._remaining)
        return memoryview(self._piece)[self._fill : self._size]

    def filled(self, count: int) -> None:
        """``count`` bytes were read into the last ``space``."""
        self._remaining -= count
        if not self._dropping:
            self._fill += count
            if self._piece is not None and self._fill == self._size:
                piece, self._piece = self._piece, None
                self._hand_over(memoryview(piece)[: self._size], piece)
        if not self._remaining:
            self._finish()

    def lost(self) -> None:
        """The connection is gone: the thread hears of it once it has taken what had arrived."""
        self._remaining = 0
        self._finish(ClientDisconnect())

    def close(self) -> None:
        """The endpoint is done with the body: any rest is read and dropped."""
        if self._remaining and not self._dropping:
            self._dropping = True
            self._piece = None
            self._finish(ClientDisconnect())
            self._resume()

    def _hand_over(self, view: bytes | memoryview, piece: bytearray | None) -> None:
        self._ready.put((view, piece))
        with self._lock:
            self._waiting += 1
            pause = self._waiting >= AHEAD and not self._paused
            self._paused = self._paused or pause
        if pause:
            self._pause()

    def _finish(self, error: BaseException | None = None) -> None:
        """The end of the body goes on the queue (once): last, after every piece before it."""
        if not self._ended:
            self._ended = True
            self._ready.put(BodyEnd(error))

    def _resume_if_paused(self) -> None:
        if self.reading and not self._dropping:
            self._resume()

    # In the storing thread -----------------------------------------------------------------

    def __iter__(self) -> DirectBody:
        return self

    def __next__(self) -> bytes:
        if self._lent is not None:  # the thread is done with it
            self._pieces.give_back(self._lent)
            self._lent = None
        taken = self._ready.get()
        if isinstance(taken, BodyEnd):
            self._ready.put(taken)  # asking again gives the same answer
            taken.stop()
        view, self._lent = taken
        with self._lock:
            self._waiting -= 1
            resume = self._paused and self._waiting < AHEAD
            self._paused = self._paused and not resume
        if resume:
            self._loop.call_soon_threadsafe(self._resume_if_paused)
        return view  # type: ignore[return-value]  # a memoryview, which every store takes as bytes
