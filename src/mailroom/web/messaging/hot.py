"""The JSON faces' requests of every small message, routed without FastAPI's machinery.

Writing a message (D4Science's ``write-message``), listing the inbox, reading a message and
deleting it (MFT Gateway's) are most of this API's traffic. Through FastAPI each costs its
middleware stack, a route search and the dependency solving (the token, the service): in a
profile of the benchmark's JSON phase about a third of the event loop's CPU, as much as the
work. As ``web.hot_routes`` does for MESH, ``match`` knows those paths by one regular
expression each, and ``serve`` calls the very same endpoint functions (``mft``,
``d4science``) with the token checked as ``auth.api_principal`` checks it, rendering the error
tree in the face's shape as its route class does (``errors``). Only the plain forms are taken:
a read with a query other than ``markAsRead=true|false`` goes to FastAPI, which still declares
every route (OpenAPI, validation of everything else).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from mailroom import errors
from mailroom.services.api_tokens import ApiPrincipal
from mailroom.services.messaging import MessagingService
from mailroom.web import errors as app_errors
from mailroom.web.messaging import d4science, mft
from mailroom.web.messaging.auth import messaging, token_of, token_service
from mailroom.web.messaging.errors import d4science_response, mft_response

Handler = Callable[..., Awaitable[dict[str, Any]]]
Render = Callable[[errors.MailroomError], Response]


async def _received(
    request: Request, principal: ApiPrincipal, service: MessagingService, message: str
) -> dict[str, Any]:
    mark = request.scope["query_string"] != b"markAsRead=false"
    return await mft.received(message, principal, service, markAsRead=mark)


async def _delete_received(
    request: Request, principal: ApiPrincipal, service: MessagingService, message: str
) -> dict[str, Any]:
    return await mft.delete_received(message, principal, service)


_SEGMENT = "[^/]+"
#: What a plain read's query may be; any other goes to FastAPI (which parses and refuses).
_READ_QUERY = (b"", b"markAsRead=true", b"markAsRead=false")
#: (method, path pattern, handler (the endpoint itself where its parameters are (request, principal,
#: service)), the face's error rendering, only with an empty query or a
#: plain read's); the path parameters are passed in order.
ROUTES: list[tuple[str, re.Pattern[str], Handler, Render, bool]] = [
    ("POST", re.compile("/2/messages/write-message"), d4science.write_message, d4science_response, False),
    ("GET", re.compile("/message/inbox"), mft.inbox, mft_response, False),
    ("GET", re.compile(rf"/message/inbox/({_SEGMENT})"), _received, mft_response, True),
    ("DELETE", re.compile(rf"/message/inbox/({_SEGMENT})"), _delete_received, mft_response, False),
]

Found = tuple[Handler, Render, tuple[str, ...]]


def match(scope: Scope) -> Found | None:
    """The handler, error rendering and path parameters of a hot request (None for any other)."""
    method, path = scope["method"], scope["path"]
    for wanted, pattern, handler, render, plain_read in ROUTES:
        if method == wanted:
            found = pattern.fullmatch(path)
            if found:
                if plain_read and scope["query_string"] not in _READ_QUERY:
                    return None
                return handler, render, found.groups()
    return None


async def serve(found: Found, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a request ``match`` found, as the face's FastAPI route would have."""
    handler, render, params = found
    request = Request(scope, receive)
    response: Response
    try:
        principal = await token_service(request).verify_async(token_of(request.headers.get("authorization")))
        response = JSONResponse(await handler(request, principal, messaging(request), *params))
    except errors.MailroomError as exc:
        response = render(exc)
    except Exception as exc:
        response = await app_errors.respond(request, exc)
    await response(scope, receive, send)
