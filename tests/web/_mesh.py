"""Expected MESH bodies and small helpers shared by the wire-API tests (spec §7)."""

from __future__ import annotations

import gzip
from typing import Any

import httpx

V1_ACCEPT = "application/vnd.mesh.v1+json"
V2_TYPE = "application/vnd.mesh.v2+json"
JSON = "application/json"


def gz(data: bytes) -> bytes:
    """A complete gzip stream with a fixed mtime, so equal inputs give equal bytes."""
    return gzip.compress(data, mtime=0)


def error_body(v2: bool, event: str, code: str, msg: str, message_id: str | None = None) -> dict[str, Any]:
    """v1 ``{messageID?, errorEvent, errorCode, errorDescription}`` or v2 ``{message_id?, detail}``."""
    if v2:
        body: dict[str, Any] = {"message_id": message_id} if message_id else {}
        body["detail"] = [{"event": event, "code": code, "msg": msg}]
        return body
    body = {"messageID": message_id} if message_id else {}
    body.update(errorEvent=event, errorCode=code, errorDescription=msg)
    return body


def assert_error(
    response: httpx.Response,
    status: int,
    v2: bool,
    event: str,
    code: str,
    msg: str,
    message_id: str | None = None,
) -> None:
    """Status, exact MESH error body and its content type."""
    assert response.status_code == status, response.text
    assert response.json() == error_body(v2, event, code, msg, message_id)
    assert response.headers["content-type"] == (V2_TYPE if v2 else JSON)


def assert_validation(response: httpx.Response, item: dict[str, Any]) -> None:
    """400 with FastAPI's validation shape ``{"detail": [{"type", "loc", "msg", ...}]}``."""
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": [item]}
    assert response.headers["content-type"] == JSON


GENERIC = {"message": "An internal error occurred.\n\nPlease contact support."}
