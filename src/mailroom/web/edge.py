"""Limits at the HTTP edge, shared by both HTTP layers (``web.http_protocol``, ``web.h11_protocol``).

Everything here happens before any authentication, so it bounds what any client can make a
server process hold or wait for (docs/operations.md#limits-at-the-http-edge):

- a request head (request line and headers) larger than ``head_bytes``, a URL longer than
  ``url_bytes`` or more than ``headers`` header fields are refused (431, 414, 431) as soon as
  the excess arrives, before it is buffered;
- a head not complete within ``head_timeout`` of the connection opening or of the previous
  response ending is answered 408 (or, if nothing of it arrived, the connection just closes);
- a body that stops arriving for ``body_timeout`` while the server is reading it ends the
  connection (the application sees the client gone);
- a connection idle for ``keep_alive`` after a response closes;
- a request asking to switch protocols (``Upgrade``, ``CONNECT``) is refused with 400, and none
  of what follows its head is read as a request.

A refusal says ``Connection: close``, and the connection then stops reading requests: what the
client still sends is read and dropped for up to ``LINGER`` seconds after the refusal is
written, so that the client reads the refusal instead of a reset, then the connection closes.
A refusal found after a complete request (pipelined garbage) waits for that request's answer.

The per-request work of these checks is kept to counters and comparisons: timers exist only
where uvicorn already had one (the keep-alive timer after each response, which here also times
the next head), one per connection when it opens, and one per body that outlasts a read.
"""

from __future__ import annotations

import asyncio
import http
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailroom.settings import Settings

#: The newest uvicorn (major, minor) the protocol classes here were tested with: they build on
#: uvicorn's internals, so ``serve`` uses them only under this series (``cli.main.http_protocol``).
TESTED_UVICORN = (0, 54)
#: Seconds a refused connection goes on reading (and dropping) what the client sends before it
#: closes, so the client's own sending does not make it miss the refusal (a close with unread
#: data resets the connection).
LINGER = 2.0

logger = logging.getLogger("mailroom.edge")

HEAD_TOO_LARGE = (431, "Request head too large.")
TOO_MANY_HEADERS = (431, "Too many request headers.")
URL_TOO_LONG = (414, "Request URL too long.")
UPGRADE_REFUSED = (400, "Protocol upgrades are not served.")
HEAD_TIMEOUT = (408, "Request head not received in time.")
INVALID = (400, "Invalid HTTP request received.")


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What one connection may send before its request is accepted; times in seconds."""

    head_bytes: int = 64 * 1024
    url_bytes: int = 8 * 1024
    headers: int = 100
    head_timeout: float = 20.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(
            head_bytes=settings.http_max_head_bytes,
            url_bytes=settings.http_max_url_bytes,
            headers=settings.http_max_headers,
            head_timeout=settings.http_head_timeout.total_seconds(),
            body_timeout=settings.http_body_timeout.total_seconds(),
            keep_alive=settings.http_keep_alive.total_seconds(),
        )

    @property
    def first_idle_check(self) -> float:
        """Seconds after a response when the connection is first looked at: idle (nothing of a
        next request arrived) it closes at ``keep_alive``; a head begun must end by ``head_timeout``."""
        return min(self.keep_alive, self.head_timeout)


def refusal(status: int, reason: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole response: ``status`` with ``reason`` as its plain-text body, closing the connection."""
    body = reason.encode("ascii")
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode("ascii"))]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in default_headers]
    lines += [
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
        body,
    ]
    return b"".join(lines)


class EdgeTimers:
    """Mixed into each layer's uvicorn protocol class: the connection's timers, and the refusal.

    uvicorn's keep-alive timer, armed after every response, is kept; here its handler also
    times the next head (``first_idle_check``), and a read no longer stops it, so a client
    sending a byte at a time gains nothing. A connection just opened gets the same timer for
    its first head. A body gets a timer only when a read ends with some of it still to come.

    The layer says what it knows: ``head_received`` (some of a next head has arrived),
    ``in_body`` (a request body is still to come), ``body_progress`` (anything that changes as
    the body arrives), ``held_back`` (reading paused by the server's own flow control, or a
    100-continue not yet sent: not the client's stall) and ``refuse``.
    """

    limits: EdgeLimits = EdgeLimits()
    refused = False  # a refusal is written or waiting: nothing more is read as a request
    _refusal_written = False
    _body_task: asyncio.TimerHandle | None = None
    _body_mark: object = None

    # uvicorn's, on both protocol classes
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    timeout_keep_alive_task: asyncio.TimerHandle | None

    def head_received(self) -> bool:
        raise NotImplementedError

    def in_body(self) -> bool:
        raise NotImplementedError

    def body_progress(self) -> object:
        raise NotImplementedError

    def held_back(self) -> bool:
        raise NotImplementedError

    def refuse(self, status: int, reason: str) -> None:
        raise NotImplementedError

    # The head ------------------------------------------------------------------------------

    def arm_head_timer(self) -> None:
        """A connection just opened: its first head must be in within ``head_timeout``."""
        self.timeout_keep_alive_task = self.loop.call_later(self.limits.head_timeout, self.head_expired)

    def timeout_keep_alive_handler(self) -> None:
        """uvicorn's keep-alive timer, ``first_idle_check`` seconds after a response: close an
        idle connection, refuse a head begun but late, or give either the rest of its time."""
        self.timeout_keep_alive_task = None
        if self.in_body() or self.transport.is_closing():  # answered before its body's end
            return
        limits = self.limits
        until = limits.head_timeout if self.head_received() else limits.keep_alive
        left = until - limits.first_idle_check
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self.head_expired)
        else:
            self.head_expired()

    def head_expired(self) -> None:
        """The head's time is up: 408 if some of it came, else just close."""
        self.timeout_keep_alive_task = None
        if self.in_body() or self.transport.is_closing():
            return
        if self.head_received():
            self.refuse(*HEAD_TIMEOUT)
        else:
            self.transport.close()

    # The body ------------------------------------------------------------------------------

    def watch_body(self) -> None:
        """A read ended with some of a body still to come: from now on it must keep arriving."""
        if self._body_task is None:
            self._body_mark = self.body_progress()
            self._body_task = self.loop.call_later(self.limits.body_timeout, self._body_checked)

    def _body_checked(self) -> None:
        self._body_task = None
        if not self.in_body() or self.transport.is_closing():
            return
        if self.body_progress() == self._body_mark and not self.held_back():
            logger.info("closing a connection whose request body stalled for %gs", self.limits.body_timeout)
            self.transport.close()  # the application sees the client gone
            return
        self.watch_body()

    # Ending --------------------------------------------------------------------------------

    def write_refusal(self, status: int, reason: str, default_headers: list[tuple[bytes, bytes]]) -> None:
        """Write the refusal, end the sending side, close within ``LINGER`` seconds."""
        transport = self.transport
        if self._refusal_written or transport.is_closing():  # once: nothing is written after it
            return
        self._refusal_written = True
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        logger.info("refused a request: %d %s", status, reason)
        transport.write(refusal(status, reason, default_headers))
        linger_and_close(transport, self.loop)

    def stop_timers(self) -> None:
        """The connection is gone."""
        for task in (self._body_task, self.timeout_keep_alive_task):
            if task is not None:
                task.cancel()
        self._body_task = self.timeout_keep_alive_task = None


def linger_and_close(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
    """After a refusal was written: end the sending side, close within ``LINGER`` seconds."""
    if transport.can_write_eof():
        transport.write_eof()
        loop.call_later(LINGER, transport.close)
    else:
        transport.close()
