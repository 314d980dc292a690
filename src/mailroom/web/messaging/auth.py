"""The JSON faces' access token: taken from ``Authorization``, bare (MFT Gateway sends it with no
scheme) or as ``Bearer <token>`` (D4Science), on either face; verified by the token service.

Verifying is cheap and local (a signature and an expiry, no database query), so the dependency
runs on the event loop with no thread hop. The header is read through an ``APIKeyHeader``
security scheme (never refusing by itself: ``token_of`` does), so the OpenAPI document says
which routes want it, Swagger UI's "Authorize" sends it, and schema-based fuzzing generates it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from mailroom import errors
from mailroom.services.api_tokens import ApiPrincipal, ApiTokenService
from mailroom.services.messaging import MessagingService
from mailroom.web.deps import get_container

#: Longest token looked at (a signed token is a few hundred characters).
MAX_TOKEN = 4096


def token_service(request: Request) -> ApiTokenService:
    return get_container(request).api_tokens


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


#: ``Authorization``: the access token of ``POST /authorize``, bare or as ``Bearer <token>``.
AUTHORIZATION = APIKeyHeader(
    name="Authorization",
    scheme_name="apiToken",
    description="The apiToken of POST /authorize or /refresh-session, bare or as `Bearer <token>`.",
    auto_error=False,
)


async def api_principal(
    request: Request, authorization: Annotated[str | None, Security(AUTHORIZATION)]
) -> ApiPrincipal:
    token = token_of(authorization)
    return await token_service(request).verify_async(token)


Principal = Annotated[ApiPrincipal, Depends(api_principal)]
Messaging = Annotated[MessagingService, Depends(_messaging)]
