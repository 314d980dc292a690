"""The JSON faces' access token: taken from ``Authorization``, bare (MFT Gateway sends it with no
scheme) or as ``Bearer <token>`` (D4Science), on either face; verified by the token service.

Verifying is cheap and local (a signature and an expiry, no database query), so the dependency
runs on the event loop with no thread hop.
"""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import Depends, Request

from mailroom import errors
from mailroom.services.api_tokens import ApiPrincipal, TokenPair
from mailroom.services.messaging import MessagingService
from mailroom.web.deps import get_container

#: Longest token looked at (a signed token is a few hundred characters).
MAX_TOKEN = 4096


class TokenService(Protocol):
    """What the faces use of ``Container.api_tokens`` (``services.api_tokens``)."""

    def authorize_password(self, mailbox_id: str, password: str, client: str | None = None) -> TokenPair: ...

    def authorize_key(self, key_id: str, secret: str, client: str | None = None) -> TokenPair: ...

    def refresh(self, username: str, refresh_token: str) -> TokenPair: ...

    def verify(self, access_token: str) -> ApiPrincipal: ...


def token_service(request: Request) -> TokenService:
    """The container's token service (named here once, so the faces depend on its shape only)."""
    found = getattr(get_container(request), "api_tokens", None)
    if found is None:
        raise errors.AuthenticationFailed(reason="no token service in this build")
    return cast(TokenService, found)


def messaging(request: Request) -> MessagingService:
    return get_container(request).messaging


async def _messaging(request: Request) -> MessagingService:
    return messaging(request)


def token_of(header: str | None) -> str:
    """The token in an ``Authorization`` value: ``Bearer <token>`` or the bare token."""
    if not header:
        raise errors.AuthenticationFailed(reason="no Authorization header")
    value = header.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    if not value or len(value) > MAX_TOKEN or " " in value:
        raise errors.AuthenticationFailed(reason="Authorization is not a token")
    return value


async def api_principal(request: Request) -> ApiPrincipal:
    token = token_of(request.headers.get("authorization"))
    return token_service(request).verify(token)


Principal = Annotated[ApiPrincipal, Depends(api_principal)]
Messaging = Annotated[MessagingService, Depends(_messaging)]
