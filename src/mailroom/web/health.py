"""Liveness endpoints (no authentication); the body must be JSON (mesh-client parses it)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mailroom.web.deps import Services

router = APIRouter()

PATHS = (
    "/health",
    "/_status",
    "/_ping",
    "/healthcheck",
    "/messageexchange/_ping",
    "/messageexchange/deepping",
)


def _status(services: Services) -> JSONResponse:
    settings = services.settings
    return JSONResponse(
        {"env": settings.env_name, "build_label": settings.build_label, "status": "running", "outcome": "Yes"}
    )


for _path in PATHS:
    router.add_api_route(_path, _status, methods=["GET"], include_in_schema=_path == "/health")
