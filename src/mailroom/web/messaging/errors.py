"""The one error tree (``mailroom.errors``) in each JSON face's own shape.

Each face's router is built with its route class (``MftRoute``, ``D4ScienceRoute``), whose
handler catches the domain errors and FastAPI's request validation errors of that face's routes
alone: the MESH face's handlers (``web.errors``) stay as they are, and an error on a JSON route
never comes out in a MESH body. Anything else (a bug) still goes to the app's generic 500.

- MFT Gateway: ``{"message": "..."}``, with ``"errors": [{"field", "location", "message"}]``
  for a request value that breaks a rule (the vendor's ``{"message", "errors"}``).
- D4Science: ``{"success": false, "message": "...", "result": null}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from mailroom import errors

# Checked in order: the first class the error is an instance of gives the status.
STATUS: list[tuple[type[errors.MailroomError], int]] = [
    (errors.AuthenticationFailed, 401),
    (errors.CredentialsRefused, 401),
    (errors.TooManyAttempts, 429),
    (errors.Forbidden, 403),  # PermissionDenied and LinkRefused too
    (errors.NotFound, 404),
    (errors.ValidationFailed, 400),
    (errors.BadRequest, 400),
    (errors.PayloadTooLarge, 413),
    (errors.Conflict, 409),
    (errors.RangeNotSatisfiable, 416),
    (errors.Gone, 410),
    (errors.UnsupportedEncoding, 415),
]
#: Any other domain error is about the request (the server raised it on purpose): a 400.
OTHER = 400


class FieldErrors(errors.ValidationFailed):
    """Several request values refused at once (a JSON body checked whole): ``items`` are the
    face's ``errors`` entries, the first also this error's own location and message."""

    def __init__(self, items: Sequence[tuple[str, str, str]]) -> None:
        location, name, msg = items[0]
        super().__init__(location, name, msg)
        self.items = list(items)


def status_of(exc: errors.MailroomError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), OTHER)


def headers_of(exc: errors.MailroomError) -> dict[str, str]:
    if isinstance(exc, errors.RangeNotSatisfiable):
        return {"content-range": f"bytes */{exc.size}"}
    if isinstance(exc, errors.TooManyAttempts):
        return {"retry-after": str(exc.retry_after)}
    if isinstance(exc, errors.AuthenticationFailed):
        return {"www-authenticate": 'Bearer realm="mailroom"'}
    return {}


def field_items(exc: errors.ValidationFailed) -> list[tuple[str, str, str]]:
    if isinstance(exc, FieldErrors):
        return exc.items
    return [(exc.location, exc.name, exc.description)]


def from_validation(exc: RequestValidationError) -> FieldErrors:
    """FastAPI's request validation error as the tree's (query, path, header values)."""
    items = []
    for item in exc.errors():
        loc = [str(part) for part in item.get("loc", ())]
        location, name = (loc[0], ".".join(loc[1:])) if loc else ("request", "")
        items.append((location, name, str(item.get("msg", "invalid value"))))
    return FieldErrors(items or [("request", "", "invalid request")])


def mft_body(exc: errors.MailroomError) -> dict[str, Any]:
    if isinstance(exc, errors.ValidationFailed):
        entries = [{"field": n, "location": loc, "message": m} for loc, n, m in field_items(exc)]
        return {"message": entries[0]["message"], "errors": entries}
    return {"message": exc.description}


def d4science_body(exc: errors.MailroomError) -> dict[str, Any]:
    message = exc.description
    if isinstance(exc, errors.ValidationFailed):
        message = "; ".join(f"{n or loc}: {m}" for loc, n, m in field_items(exc))
    return {"success": False, "message": message, "result": None}


def mft_response(exc: errors.MailroomError) -> JSONResponse:
    return JSONResponse(mft_body(exc), status_code=status_of(exc), headers=headers_of(exc))


def d4science_response(exc: errors.MailroomError) -> JSONResponse:
    return JSONResponse(d4science_body(exc), status_code=status_of(exc), headers=headers_of(exc))


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _catching(handler: Handler, render: Callable[[errors.MailroomError], Response]) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except errors.MailroomError as exc:
            return render(exc)
        except RequestValidationError as exc:
            return render(from_validation(exc))

    return run


class MftRoute(APIRoute):
    """A route of the MFT Gateway face: its errors in MFT Gateway's shape."""

    def get_route_handler(self) -> Handler:
        return _catching(super().get_route_handler(), mft_response)


class D4ScienceRoute(APIRoute):
    """A route of the D4Science face: its errors in the ``{success, message, result}`` envelope."""

    def get_route_handler(self) -> Handler:
        return _catching(super().get_route_handler(), d4science_response)
