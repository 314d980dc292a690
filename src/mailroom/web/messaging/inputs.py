"""Reading the JSON faces' small request bodies and query values: bounded, checked, and refused
as the tree's ``ValidationFailed`` (so each face says what was wrong in its own shape).

Small bodies (a login, a message with its text, a list of ids) are read whole, but never past a
limit: FastAPI's own body parameters read any length. Their models are pydantic's, so the
OpenAPI document describes them (``openapi_body``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from mailroom import errors
from mailroom.domain.envelopes import ListQuery
from mailroom.web.messaging.errors import FieldErrors

M = TypeVar("M", bound=BaseModel)

#: Largest small body besides a message's text (a login, a list of ids, a form).
SMALL_BODY = 256 * 1024
#: Longest filter value or id looked at.
MAX_VALUE = 300
MAX_OFFSET = 1_000_000_000


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"The request body is larger than {limit} bytes")
    held = bytearray()
    async for piece in request.stream():
        held += piece
        if len(held) > limit:
            raise errors.PayloadTooLarge(f"The request body is larger than {limit} bytes")
    return bytes(held)


def _items(exc: ValidationError) -> list[tuple[str, str, str]]:
    return [
        ("body", ".".join(str(part) for part in item["loc"]) or "body", item["msg"]) for item in exc.errors()
    ]


async def json_body(request: Request, model: type[M], limit: int = SMALL_BODY) -> M:
    raw = await read_limited(request, limit)
    if not raw.strip():
        raise errors.ValidationFailed("body", "body", "A JSON body is needed")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise FieldErrors(_items(exc)) from None


async def form_fields(request: Request, limit: int = SMALL_BODY) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body's fields (or the query's, for a client that
    sends them there), the first value of each."""
    fields = dict(parse_qsl(request.url.query, keep_blank_values=True))
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    raw = await read_limited(request, limit)
    if raw and media in ("", "application/x-www-form-urlencoded", "*/*"):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.ValidationFailed("body", "body", "The form is not UTF-8") from None
        for name, value in reversed(parse_qsl(text, keep_blank_values=True)):
            fields[name] = value
    elif raw and media != "application/json":
        raise errors.ValidationFailed("header", "Content-Type", "Send the fields as a form")
    elif raw:
        fields.update(_json_fields(raw))
    return fields


def _json_fields(raw: bytes) -> dict[str, str]:
    import json

    try:
        found = json.loads(raw)
    except ValueError:
        raise errors.ValidationFailed("body", "body", "The body is not JSON") from None
    if not isinstance(found, dict):
        raise errors.ValidationFailed("body", "body", "The body must be a JSON object")
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in found.items()}


def openapi_body(model: type[BaseModel], media: str = "application/json") -> dict[str, Any]:
    """``openapi_extra`` describing a body a handler reads itself.

    pydantic puts nested models in ``$defs`` with ``#/$defs/...`` references, which would point
    into the OpenAPI document's root, where there is no ``$defs``: they are inlined (the
    models are small and not recursive), so clients, Swagger UI and fuzzers can resolve them."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {"requestBody": {"required": True, "content": {media: {"schema": _inlined(schema, defs)}}}}


def _inlined(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inlined(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, defs) for item in node]
    return node


# -- query values ---------------------------------------------------------------------------------


def boolean(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise errors.ValidationFailed("query", name, "must be true or false", value=raw[:MAX_VALUE])


def integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 12:
        raise errors.ValidationFailed("query", name, "must be a whole number", value=raw[:MAX_VALUE])
    value = int(text)
    if not low <= value <= high:
        raise errors.ValidationFailed("query", name, f"must be {low} to {high}", value=text)
    return value


def text(params: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` (a filter's old and new name) given with a value."""
    for name in names:
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        if len(raw) > MAX_VALUE or not raw.isprintable():
            raise errors.ValidationFailed("query", name, f"must be 1 to {MAX_VALUE} printable characters")
        return raw
    return None


def message_id(raw: str) -> str:
    """An id from a path or body: angle brackets (MFT Gateway's ``<...@host>`` form) dropped."""
    value = raw.strip().strip("<>").strip()
    if not value or len(value) > MAX_VALUE or not value.isprintable():
        raise errors.NotFound("No such message", message_id=value[:100] or None)
    return value


def list_query(params: Mapping[str, str], *, inbox: bool) -> ListQuery:
    """MFT Gateway's list parameters.

    General (always): ``sortDir`` (asc|desc, default desc), ``pageLength`` (1-100, default 10),
    ``pageOffset`` (0 or more), ``fetchAll`` (inbox only; default false hides what this API
    marked read). Filters: the primary ``stationAS2Id`` (``stationIdentifier``) beats the
    secondary ones, of which only the first given counts, in the order ``partnerAS2Id``
    (``partnerIdentifier``), ``as2MessageId`` (``identifier``), ``subject``.
    """
    sort = (params.get("sortDir") or "desc").strip().lower()
    if sort not in ("asc", "desc"):
        raise errors.ValidationFailed("query", "sortDir", "must be asc or desc", value=sort[:MAX_VALUE])
    station = text(params, "stationAS2Id", "stationIdentifier")
    secondary: dict[str, str | None] = {"partner": None, "message_id": None, "subject": None}
    partner = text(params, "partnerAS2Id", "partnerIdentifier")
    wanted_id = text(params, "as2MessageId", "identifier")
    subject = text(params, "subject")
    if station is None:
        if partner is not None:
            secondary["partner"] = partner
        elif wanted_id is not None:
            secondary["message_id"] = wanted_id.strip().strip("<>")
        elif subject is not None:
            secondary["subject"] = subject
    return ListQuery(
        descending=sort == "desc",
        limit=integer(params, "pageLength", 10, 1, 100),
        offset=integer(params, "pageOffset", 0, 0, MAX_OFFSET),
        fetch_all=boolean(params, "fetchAll", False) if inbox else True,
        station=station,
        **secondary,
    )
