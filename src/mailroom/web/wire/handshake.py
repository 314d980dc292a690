"""Handshake ("validate mailbox") and mesh-sandbox's no-op update."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mailroom.web.deps import Principal, Services, Version
from mailroom.web.wire import headers as mex
from mailroom.web.wire.media import ApiVersion

router = APIRouter()

REQUIRED = ("mex-clientversion", "mex-osname", "mex-osversion")


@router.get("/messageexchange/{mailbox}", operation_id="handshake_get")
@router.post("/messageexchange/{mailbox}", operation_id="handshake_post")
def handshake(
    request: Request, mailbox: str, principal: Principal, services: Services, version: Version
) -> Response:
    mex.check_headers(request.headers, services.settings)
    for name in REQUIRED:
        mex.required(request.headers, name)
    services.mailboxes.record_handshake(principal.mailbox_id)
    if version is ApiVersion.V2:
        return Response(status_code=200)
    return JSONResponse({"mailboxId": principal.mailbox_id})


@router.post("/messageexchange/{mailbox}/update")
def update(mailbox: str, principal: Principal) -> Response:
    return Response(status_code=200)
