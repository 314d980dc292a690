"""Liveness endpoints (spec §5.1) and unknown routes (spec §7.1)."""

from __future__ import annotations

import gc
import threading

import pytest
from starlette.testclient import TestClient

from mailroom.malloc_trim import glibc_function
from mailroom.web.app import create_app, served

PATHS = [
    "/health",
    "/_status",
    "/_ping",
    "/healthcheck",
    "/messageexchange/_ping",
    "/messageexchange/deepping",
]


def test_health_paths_answer_json_without_auth(client):
    for path in PATHS:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "env": "local",
            "build_label": "mailroom",
            "status": "running",
            "outcome": "Yes",
        }


def test_health_reports_the_configured_environment(make_client):
    custom = make_client(env_name="int", build_label="build-42")
    assert custom.get("/messageexchange/_ping").json() == {
        "env": "int",
        "build_label": "build-42",
        "status": "running",
        "outcome": "Yes",
    }


@pytest.mark.parametrize("path", ["/nothing/here", "/messageexchange/ALICE/inbox/x/y/z", "/admin"])
def test_unknown_route_is_404_not_found(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_the_app_hands_freed_memory_back_while_it_runs(settings, container):
    """The lifespan starts the malloc_trim thread (mailroom/malloc_trim.py) and stops it."""
    if glibc_function("malloc_trim") is None:
        pytest.skip("malloc is not glibc's")

    def trimming() -> bool:
        return "mailroom-malloc-trim" in {t.name for t in threading.enumerate()}

    with TestClient(create_app(settings, container)):
        assert trimming()
    assert not trimming()


def test_the_served_app_is_kept_out_of_the_collectors_walks(settings, container):
    """What ``serve`` runs is frozen (``gc.freeze``): the collector skips the app's objects."""
    gc.unfreeze()
    try:
        served(create_app(settings, container))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
