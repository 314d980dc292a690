"""Endpoint lookup and workflow search (no authentication, as in MESH)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mailroom.errors import BadRequest
from mailroom.web.deps import Services, Version
from mailroom.web.wire.media import V2_TYPE, ApiVersion

router = APIRouter()


@router.get("/messageexchange/endpointlookup/{ods_code}/{workflow_id}")
def endpoint_lookup(ods_code: str, workflow_id: str, services: Services, version: Version) -> JSONResponse:
    if not ods_code.strip():
        raise BadRequest("ods code missing")
    _check_workflow_id(workflow_id)
    found = services.mailboxes.lookup(ods_code, workflow_id)
    if version is ApiVersion.V2:
        results = [{"mailbox_id": m.mailbox_id, "mailbox_name": m.mailbox_name} for m in found]
        return JSONResponse({"results": results}, media_type=V2_TYPE)
    v1 = [{"address": m.mailbox_id, "description": m.mailbox_name, "endpoint_type": "MESH"} for m in found]
    return JSONResponse({"query_id": f"{ods_code}:{workflow_id}", "results": v1})


@router.get("/messageexchange/workflowsearch/{workflow_id}")
def workflow_search(workflow_id: str, services: Services) -> JSONResponse:
    _check_workflow_id(workflow_id)
    found = services.mailboxes.workflow_receivers(workflow_id)
    results = [{"mailbox_id": m.mailbox_id, "mailbox_name": m.mailbox_name} for m in found]
    return JSONResponse({"results": results}, media_type=V2_TYPE)


def _check_workflow_id(workflow_id: str) -> None:
    """mesh-sandbox answers a blank id with a free-text MESH error (empty event and code)."""
    if not workflow_id.strip():
        raise BadRequest("workflow id missing")
