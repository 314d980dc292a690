"""``POST /authorize`` and ``POST /refresh-session`` (MFT Gateway's, seed 004): a token pair for a
mailbox's password or an API key, and a new pair for a refresh token (which is then spent).

The pair is answered under both generations of MFT Gateway's names (``api_token`` and
``apiToken``, ``refresh_token`` and ``refreshToken``) with ``apiTokenExpiryIn`` in seconds.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mailroom import errors
from mailroom.services.api_tokens import TokenPair
from mailroom.web.deps import peer_of
from mailroom.web.messaging.auth import token_service
from mailroom.web.messaging.errors import MftRoute
from mailroom.web.messaging.inputs import json_body, openapi_body

router = APIRouter(route_class=MftRoute, tags=["JSON API: tokens"])

Text = Field(default=None, max_length=4096)


class Authorize(BaseModel):
    """A mailbox id and its password, or an API key's id and secret."""

    model_config = ConfigDict(extra="ignore")
    username: str | None = Text
    password: str | None = Text
    tokenID: str | None = Text
    tokenSecret: str | None = Text


class Refresh(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(max_length=4096)
    refreshToken: str = Field(max_length=4096)


def pair_body(pair: TokenPair) -> dict[str, Any]:
    return {
        "api_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "apiToken": pair.access_token,
        "refreshToken": pair.refresh_token,
        "apiTokenExpiryIn": pair.expires_in,
    }


@router.post("/authorize", openapi_extra=openapi_body(Authorize))
async def authorize(request: Request) -> dict[str, Any]:
    wanted = await json_body(request, Authorize)
    tokens = token_service(request)
    if wanted.tokenID is not None or wanted.tokenSecret is not None:
        if not wanted.tokenID or not wanted.tokenSecret:
            raise errors.ValidationFailed("body", "tokenSecret", "tokenID and tokenSecret go together")
        pair = await run_in_threadpool(
            partial(tokens.authorize_key, wanted.tokenID, wanted.tokenSecret, client=peer_of(request))
        )
        return pair_body(pair)
    if not wanted.username or not wanted.password:
        raise errors.ValidationFailed(
            "body", "username", "username and password (or tokenID and tokenSecret)"
        )
    pair = await run_in_threadpool(
        partial(tokens.authorize_password, wanted.username, wanted.password, client=peer_of(request))
    )
    return pair_body(pair)


@router.post("/refresh-session", openapi_extra=openapi_body(Refresh))
async def refresh_session(request: Request) -> dict[str, Any]:
    wanted = await json_body(request, Refresh)
    pair = await run_in_threadpool(token_service(request).refresh, wanted.username, wanted.refreshToken)
    return pair_body(pair)
