"""Query parameters of the list views, validated as mesh-sandbox validates them (400 on error)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from mailroom.container import Container
from mailroom.errors import ValidationFailed
from mailroom.services.authentication import MailboxPrincipal
from mailroom.web.wire.schemas import iso, rich_item


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            "query", name, "Input should be a valid integer", kind="int_parsing", value=raw
        ) from None
    if value < low:
        raise ValidationFailed(
            "query",
            name,
            f"Input should be greater than or equal to {low}",
            kind="greater_than_equal",
            value=raw,
        )
    if value > high:
        raise ValidationFailed(
            "query", name, f"Input should be less than or equal to {high}", kind="less_than_equal", value=raw
        )
    return value


def text_param(request: Request, name: str, low: int, high: int) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if len(raw) < low:
        raise ValidationFailed(
            "query", name, f"String should have at least {low} characters", kind="string_too_short", value=raw
        )
    if len(raw) > high:
        raise ValidationFailed(
            "query",
            name,
            f"String should have at most {high} characters",
            kind="string_too_long",
            value=raw[:high],
        )
    return raw


def time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
        # one instant, in UTC: links echo it without an offset, and the database compares UTC
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed(
            "query", name, "Input should be a valid datetime", kind="datetime_parsing", value=raw
        ) from None


def link(path: str, params: dict[str, Any]) -> str:
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return f"{path}?{query}" if query else path


def rich_page(
    request: Request, principal: MailboxPrincipal, services: Container, *, outbox: bool
) -> dict[str, Any]:
    if outbox:
        limit = min(int_param(request, "max_results", 100, 10, 5000), 100)
    else:
        limit = int_param(request, "max_results", 100, 1, 2000)
    start = time_param(request, "start_time")
    continue_from = text_param(request, "continue_from", 1, 1000)
    page = services.receiving.recent(
        principal, outbox=outbox, limit=limit, start_time=start, continue_from=continue_from
    )
    path = f"/messageexchange/{principal.mailbox_id}/{'outbox' if outbox else 'inbox'}/rich"
    params = {"start_time": iso(page.since), "max_results": limit}
    links = {"self": link(path, params)}
    if page.next_token:
        links["next"] = link(path, {**params, "continue_from": page.next_token})
    return {
        "valid_at": iso(services.clock.now()),
        "messages": [rich_item(message, outbox=outbox) for message in page.messages],
        "links": links,
    }
