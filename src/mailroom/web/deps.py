"""FastAPI dependencies: the container, the authenticated mailbox, the negotiated version."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import anyio.from_thread
from fastapi import Depends, Path, Request

from mailroom.container import Container
from mailroom.services.authentication import MailboxPrincipal
from mailroom.web.wire.media import ApiVersion, negotiate


def container(request: Request) -> Container:
    value = request.app.state.container
    assert isinstance(value, Container)
    return value


def mesh_principal(request: Request, mailbox: str) -> MailboxPrincipal:
    """Authenticates the ``NHSMESH`` token for the path mailbox (runs before anything else)."""
    services = container(request)
    return services.auth.authenticate(request.headers.get("authorization"), mailbox)


def api_version(request: Request) -> ApiVersion:
    return negotiate(request.headers.get("accept"))


Services = Annotated[Container, Depends(container)]
Principal = Annotated[MailboxPrincipal, Depends(mesh_principal)]
Version = Annotated[ApiVersion, Depends(api_version)]
#: A chunk number in a path: 1 or more (validated after authentication, as FastAPI solves
#: dependencies before it reports parameter errors).
ChunkNumber = Annotated[int, Path(ge=1)]


class BodyBridge(Iterator[bytes]):
    """Lets a worker thread pull an async request body piece by piece (constant memory)."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> BodyBridge:
        return self

    def __next__(self) -> bytes:
        while True:
            try:
                piece = anyio.from_thread.run(self._next)
            except StopAsyncIteration:
                raise StopIteration from None
            if piece:
                return piece

    async def _next(self) -> bytes:
        return await self._stream.__anext__()
