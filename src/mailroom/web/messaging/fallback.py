"""A path under a JSON face's prefix that no route serves: ``404`` in that face's shape.

Without this, Starlette's own ``{"detail": "Not Found"}`` answers, which no MFT Gateway or
D4Science client reads; it happens for ids whose URL-encoding holds a ``/`` (``%2F`` is decoded
before routing, so ``/message/inbox/a%2Fb`` has one segment too many) and for mistyped paths.
Included after every real route, so it only answers what they do not (a wrong method on a real
path included: ``404`` here, not ``405``).
"""

from __future__ import annotations

from typing import NoReturn

from fastapi import APIRouter

from mailroom import errors
from mailroom.web.messaging.errors import D4ScienceRoute, MftRoute

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

mft = APIRouter(route_class=MftRoute, include_in_schema=False)
d4science = APIRouter(route_class=D4ScienceRoute, include_in_schema=False)


def _nothing_here() -> NoReturn:
    raise errors.NotFound("No such route")


@mft.api_route("/message/{rest:path}", methods=METHODS)
@mft.api_route("/files/{rest:path}", methods=METHODS)
async def mft_unrouted(rest: str) -> None:
    _nothing_here()


@d4science.api_route("/2/{rest:path}", methods=METHODS)
async def d4science_unrouted(rest: str) -> None:
    _nothing_here()
