"""FastAPI dependencies: the container, the authenticated mailbox, the negotiated version.

FastAPI runs a plain ``def`` dependency in the thread pool, one thread hop each. Those that do
no I/O are ``async def`` so they run on the event loop. (Measured: this took the server's CPU
per authenticated request from about 3 ms to 2.6 ms, see bench/.) The mailbox's token is
checked and spent through ``AuthenticationService``'s coroutines, as the hot MESH routes
(``web.hot_routes``) do: on SQLite the check on the loop and the spend a group-commit job, on
PostgreSQL each in a worker thread.
"""

from __future__ import annotations

from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Path, Request

from mailroom.container import Container
from mailroom.services.authentication import MailboxPrincipal
from mailroom.web.wire.media import ApiVersion, negotiate

P = ParamSpec("P")
T = TypeVar("T")


def get_container(request: Request) -> Container:
    value = request.app.state.container
    assert isinstance(value, Container)
    return value


async def container(request: Request) -> Container:
    return get_container(request)


def peer_of(request: Request) -> str | None:
    """The caller's address as uvicorn gives it (from ``X-Forwarded-For`` when the connection
    comes from a trusted proxy), for the log line of a refused login; None when unknown."""
    client = request.scope.get("client")
    return str(client[0]) if client else None


async def mesh_principal(request: Request, mailbox: str) -> MailboxPrincipal:
    """Authenticates the ``NHSMESH`` token for the path mailbox (runs before anything else)."""
    auth = get_container(request).auth
    return await auth.authenticate_async(request.headers.get("authorization"), mailbox, peer_of(request))


def version_of(request: Request) -> ApiVersion:
    return negotiate(request.headers.get("accept"))


async def api_version(request: Request) -> ApiVersion:
    return version_of(request)


Services = Annotated[Container, Depends(container)]
Principal = Annotated[MailboxPrincipal, Depends(mesh_principal)]
Version = Annotated[ApiVersion, Depends(api_version)]
#: A chunk number in a path: 1 or more (validated after authentication, as FastAPI solves
#: dependencies before it reports parameter errors).
ChunkNumber = Annotated[int, Path(ge=1)]
