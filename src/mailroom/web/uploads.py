"""Storing a request body in a thread of its own while it arrives, in one of the upload slots.

A server process stores ``max_concurrent_uploads`` bodies at once, each in a worker thread of its
own while its bytes arrive: slow uploads must never take the shared pool that every request
authenticates in. The slots are shared fairly between the sending mailboxes
(``mailroom.fair_slots``): one mailbox holds at most ``uploads_per_mailbox`` of them, and the
waiting uploads are served in the order they came. Before, a mailbox whose uploads stalled
could hold every slot, and no other mailbox's upload was answered.

An upload waiting for its slot has (almost) none of its body read: the server stops reading a
socket once 64 KiB are waiting. While it waits, it listens for its client going away, so a
client that hangs up leaves the queue at once rather than when its turn comes. Listening means
asking for the body, so what arrives meanwhile is kept, up to ``LISTEN_BYTES``, and goes first
to the storing thread; beyond that the waiter stops listening (the server would stop reading
anyway) and its client's going away is noticed when its turn comes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from mailroom.fair_slots import FairSlots
from mailroom.settings import Settings
from mailroom.web.streaming import direct_body, read_ahead

T = TypeVar("T")

#: Body bytes kept from an upload while it waits for its slot (about what the server holds for
#: it unread anyway, uvicorn's 64 KiB mark).
LISTEN_BYTES = 64 * 1024


def upload_slots(settings: Settings) -> FairSlots:
    """The process's upload slots: ``max_concurrent_uploads``, ``uploads_per_mailbox`` each."""
    return FairSlots(settings.max_concurrent_uploads, settings.uploads_per_mailbox)


class Waited:
    """What an upload's client sent while the upload waited for its slot; ``receive`` gives it
    again, then the rest of the request's messages."""

    def __init__(self, receive: Callable[[], Any], *, complete: bool = False) -> None:
        self._receive = receive
        self.messages: list[Message] = []
        self.size = 0
        self.complete = complete  # the whole body has come (before or while waiting)
        self.pending: asyncio.Future[Message] | None = None  # a receive still under way

    @property
    def listening(self) -> bool:
        return self.complete or self.size < LISTEN_BYTES

    def listen(self) -> asyncio.Future[Message]:
        if self.pending is None:
            self.pending = asyncio.ensure_future(self._receive())
        return self.pending

    def heard(self) -> None:
        """The pending receive is done: keep its body, or raise if the client went away."""
        assert self.pending is not None
        message, self.pending = self.pending.result(), None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        self.messages.append(message)
        self.size += len(message.get("body", b""))
        self.complete = not message.get("more_body", False)

    def pieces(self) -> list[bytes]:
        return [body for message in self.messages if (body := message.get("body", b""))]

    def stop_listening(self) -> None:
        """Drop a receive under way. Only where that is safe: once the body is complete (it
        waits for the client's going away only), or on the protocol that reads bodies past the
        parser (uvicorn's receive waits on an event). One that has just finished is heard."""
        if self.pending is not None and self.pending.done() and not self.pending.cancelled():
            self.heard()
        elif self.pending is not None:
            self.pending.cancel()
            self.pending = None

    async def receive(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        if self.pending is not None:
            pending, self.pending = self.pending, None
            return await pending
        message: Message = await self._receive()
        return message


@asynccontextmanager
async def upload_slot(
    request: Request, mailbox_id: str, *, body_read: bool = False
) -> AsyncIterator[Waited | None]:
    """Hold one of the upload slots for ``mailbox_id`` (waiting for it in turn, and leaving the
    queue with ``ClientDisconnect`` if the client goes away meanwhile). Yields what the client
    sent while the upload waited, or None if a slot was free at once. ``body_read``: the
    endpoint has read the whole body already."""
    slots: FairSlots = request.app.state.upload_slots
    waited = None
    if not slots.try_acquire(mailbox_id):
        waited = Waited(request.receive, complete=body_read)
        await _wait_listening(waited, slots, mailbox_id)
    try:
        if waited is not None and waited.complete:
            waited.stop_listening()  # nothing more to hear but the client going away
        yield waited
    finally:
        slots.release(mailbox_id)


async def _wait_listening(waited: Waited, slots: FairSlots, mailbox_id: str) -> None:
    acquiring = asyncio.ensure_future(slots.acquire(mailbox_id))
    try:
        while not acquiring.done():
            waiting_on: set[asyncio.Future[Any]] = {acquiring}
            if waited.listening:
                waiting_on.add(waited.listen())
            await asyncio.wait(waiting_on, return_when=asyncio.FIRST_COMPLETED)
            if waited.pending is not None and waited.pending.done():
                waited.heard()
    except BaseException:
        if not acquiring.done():
            acquiring.cancel()  # leaves the queue, or hands on a slot given meanwhile
        elif not acquiring.cancelled() and acquiring.exception() is None:
            slots.release(mailbox_id)
        with suppress(ClientDisconnect):
            waited.stop_listening()
        raise
    acquiring.result()


async def in_upload_thread(request: Request, mailbox_id: str, func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in an upload thread, for a body already in memory."""
    async with upload_slot(request, mailbox_id, body_read=True):
        return await _in_own_thread(func, *args)


async def store_streamed(request: Request, mailbox_id: str, func: Callable[..., T], *args: Any) -> T:
    """``func(*args, body)`` in an upload thread, the body coming straight from the socket where
    the server allows (``web.direct_body``), else read ahead on the loop meanwhile."""
    async with upload_slot(request, mailbox_id) as waited:
        direct = direct_body(request)
        if direct is not None:
            early: Iterator[bytes] = iter(())
            if waited is not None:
                waited.stop_listening()
                early = iter(waited.pieces())
            try:
                return await _in_own_thread(func, *args, itertools.chain(early, direct))
            finally:
                direct.close()
        if waited is not None:
            request = Request(request.scope, waited.receive)
        async with read_ahead(request.stream()) as body:
            return await _in_own_thread(func, *args, body)


async def _in_own_thread(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a worker thread not counted against anyio's shared pool (the caller holds
    an upload slot, which is the bound)."""
    return await anyio.to_thread.run_sync(func, *args, limiter=anyio.CapacityLimiter(1))
