"""The wire API's OpenAPI document: what FastAPI generates, plus what the handlers read by hand.

The MESH handlers take their ``Mex-*`` headers, query values and raw bodies from the request
themselves (the protocol's validation order and error bodies are not FastAPI's), so the
generated document would show only path parameters. This adds the rest: the ``NHSMESH``
``Authorization`` header and ``Accept`` on every mailbox route, each route's query values and
``Mex-*`` headers, and ``application/octet-stream`` bodies for uploads. Served at
``/openapi.json``; schema-based fuzzing (``tests/web/test_openapi_fuzz.py``) runs against it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

STRING: dict[str, Any] = {"type": "string"}
AUTH = {
    "name": "authorization",
    "in": "header",
    "required": True,
    "description": "NHSMESH mailbox:nonce:nonce_count:yyyyMMddHHmm:hmac_sha256 (single use)",
    "schema": STRING,
}
ACCEPT = {
    "name": "accept",
    "in": "header",
    "required": False,
    "description": "application/vnd.mesh.v2+json for v2 bodies, anything else for v1",
    "schema": {"type": "string", "enum": ["application/vnd.mesh.v2+json", "application/json", "*/*"]},
}
SEND_HEADERS = (
    "mex-to",
    "mex-workflowid",
    "mex-from",
    "mex-chunk-range",
    "mex-subject",
    "mex-localid",
    "mex-partnerid",
    "mex-filename",
    "mex-content-checksum",
    "mex-content-type",
    "mex-content-encrypted",
    "mex-content-compressed",
    "content-encoding",
)
HANDSHAKE_HEADERS = ("mex-clientversion", "mex-osname", "mex-osversion")
PAGE_QUERY: dict[str, dict[str, Any]] = {
    "max_results": {"type": "integer"},
    "continue_from": STRING,
}
#: Extra parameters per (method, path): query values and headers the handler reads itself.
EXTRA: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/messageexchange/{mailbox}"): {"headers": HANDSHAKE_HEADERS},
    ("post", "/messageexchange/{mailbox}"): {"headers": HANDSHAKE_HEADERS},
    ("post", "/messageexchange/{mailbox}/outbox"): {"headers": SEND_HEADERS, "body": True},
    ("post", "/messageexchange/{mailbox}/outbox/{message_id}/{chunk_no}"): {
        "headers": ("mex-chunk-range", "content-encoding"),
        "body": True,
    },
    ("get", "/messageexchange/{mailbox}/inbox"): {"query": {**PAGE_QUERY, "workflow_filter": STRING}},
    ("get", "/messageexchange/{mailbox}/inbox/rich"): {"query": {**PAGE_QUERY, "start_time": STRING}},
    ("get", "/messageexchange/{mailbox}/outbox/rich"): {"query": {**PAGE_QUERY, "start_time": STRING}},
    ("get", "/messageexchange/{mailbox}/outbox/tracking"): {"query": {"messageID": STRING}},
    ("get", "/messageexchange/{mailbox}/inbox/{message_id}"): {"headers": ("accept-encoding",)},
    ("get", "/messageexchange/{mailbox}/inbox/{message_id}/{chunk_no}"): {"headers": ("accept-encoding",)},
}


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": STRING}


def describe(document: dict[str, Any]) -> dict[str, Any]:
    """Add auth, Accept, query values, ``Mex-*`` headers and bodies to a generated document."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            params: list[dict[str, Any]] = operation.setdefault("parameters", [])
            if "{mailbox}" in path:
                params += [AUTH, ACCEPT]
            extra = EXTRA.get((method, path), {})
            params += [_header(name) for name in extra.get("headers", ())]
            params += [
                {"name": name, "in": "query", "required": False, "schema": schema}
                for name, schema in extra.get("query", {}).items()
            ]
            if extra.get("body"):
                operation["requestBody"] = {
                    "required": False,
                    "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                    },
                }
    return document


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) serve the described document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(
                get_openapi(title=app.title, version=app.version, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
