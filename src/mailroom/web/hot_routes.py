"""The four requests every small message makes, routed without FastAPI's routing and dependencies.

Sending, listing, downloading and acknowledging are most of a MESH server's traffic. FastAPI
spends about 0.15 ms of CPU per request finding the route, solving dependencies and running its
exception middleware, as much as the work of a small send itself (bench/: the rate is CPU-bound
on the event loop). ``HotRoutes`` matches those four paths with one regular expression each and
calls the very same endpoint functions (``web.wire.outbox``, ``web.wire.inbox``), translating
errors with the same handlers (``web.errors.respond``). Every other request, and any method or
path shape these do not match exactly, goes on to the FastAPI application, which also still
declares these routes (OpenAPI, and the same behaviour if this layer were taken away).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mailroom.web import errors
from mailroom.web.wire import inbox, outbox

Endpoint = Callable[..., Awaitable[Response]]

_SEGMENT = "[^/]+"
#: (method, path pattern, endpoint); the path parameters are passed in order, as FastAPI would.
ROUTES: list[tuple[str, re.Pattern[str], Endpoint]] = [
    ("POST", re.compile(rf"/messageexchange/({_SEGMENT})/outbox"), outbox.send_message),
    ("GET", re.compile(rf"/messageexchange/({_SEGMENT})/inbox"), inbox.list_inbox),
    # "rich" is the rich inbox's own route, declared before the download in inbox.py
    ("GET", re.compile(rf"/messageexchange/({_SEGMENT})/inbox/(?!rich$)({_SEGMENT})"), inbox.download_first),
    (
        "PUT",
        re.compile(rf"/messageexchange/({_SEGMENT})/inbox/({_SEGMENT})/status/acknowledged"),
        inbox.acknowledge,
    ),
]


class HotRoutes:
    """ASGI middleware answering ``ROUTES`` itself; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = match(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        endpoint, params = found
        request = Request(scope, receive)
        try:
            response = await endpoint(request, *params)
        except Exception as exc:
            response = await errors.respond(request, exc)
        await response(scope, receive, send)


def match(scope: Scope) -> tuple[Endpoint, tuple[str, ...]] | None:
    method, path = scope["method"], scope["path"]
    for wanted, pattern, endpoint in ROUTES:
        if method == wanted:
            found = pattern.fullmatch(path)
            if found:
                return endpoint, found.groups()
    return None
