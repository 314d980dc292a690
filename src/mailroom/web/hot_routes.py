"""The four requests every small message makes, routed without FastAPI's routing and dependencies.

Sending, listing, downloading and acknowledging are most of a MESH server's traffic. FastAPI
spends about 0.15 ms of CPU per request on its telemetry check, exception middleware, route
search and dependency solving: as much as the work of a small send itself, on an event loop that
is the limit (bench/). The application (``web.app.MailroomApp``) asks ``match`` first, which
knows those four paths by one regular expression each; ``serve`` calls the very same endpoint
functions (``web.wire.outbox``, ``web.wire.inbox``) and answers errors with the same handlers
(``web.errors.respond``). Every other request, and any method or path these do not match
exactly, goes on to FastAPI, which still declares these routes too (OpenAPI).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

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


async def serve(found: tuple[Endpoint, tuple[str, ...]], scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a request ``match`` found, as FastAPI would have."""
    endpoint, params = found
    request = Request(scope, receive)
    try:
        response = await endpoint(request, *params)
    except Exception as exc:
        response = await errors.respond(request, exc)
    await response(scope, receive, send)


def match(scope: Scope) -> tuple[Endpoint, tuple[str, ...]] | None:
    """The endpoint and path parameters of a hot request (None for any other)."""
    method, path = scope["method"], scope["path"]
    for wanted, pattern, endpoint in ROUTES:
        if method == wanted:
            found = pattern.fullmatch(path)
            if found:
                return endpoint, found.groups()
    return None
