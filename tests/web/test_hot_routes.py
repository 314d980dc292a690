"""web.hot_routes answers exactly the requests FastAPI would send to the same endpoints."""

from __future__ import annotations

import pytest
from starlette.routing import Match

from mailroom.web import hot_routes
from mailroom.web.app import create_app

REQUESTS = [
    ("POST", "/messageexchange/ALICE/outbox"),
    ("GET", "/messageexchange/ALICE/inbox"),
    ("GET", "/messageexchange/ALICE/inbox/20260301103000000000_ABCDEF"),
    ("GET", "/messageexchange/ALICE/inbox/rich"),
    ("GET", "/messageexchange/ALICE/inbox/richer"),
    ("GET", "/messageexchange/ALICE/inbox/20260301103000000000_ABCDEF/2"),
    ("HEAD", "/messageexchange/ALICE/inbox/20260301103000000000_ABCDEF"),
    ("PUT", "/messageexchange/ALICE/inbox/20260301103000000000_ABCDEF/status/acknowledged"),
    ("POST", "/messageexchange/ALICE/inbox/20260301103000000000_ABCDEF/status/acknowledged"),
    ("GET", "/messageexchange/ALICE/outbox"),
    ("POST", "/messageexchange/ALICE/outbox/20260301103000000000_ABCDEF/2"),
    ("POST", "/messageexchange/ALICE/outbox/"),
    ("GET", "/messageexchange/ALICE/count"),
    ("GET", "/messageexchange/ALICE/inbox/"),
    ("GET", "/messageexchange/_ping"),
]


def scope(method: str, path: str) -> dict[str, object]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }


def flat_routes(routes):
    """Routes in FastAPI's order, routers included without a prefix opened up."""
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included-router wrapper
        if included is not None:
            yield from flat_routes(included.routes)
        else:
            yield route


def fastapi_endpoint(app, method: str, path: str):
    """The endpoint FastAPI's own routing picks (first full match), or None."""
    for route in flat_routes(app.router.routes):
        found, _ = route.matches(scope(method, path))
        if found is Match.FULL:
            return getattr(route, "endpoint", None)
    return None


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_hot_routes_agree_with_fastapi(settings, method, path):
    app = create_app(settings)
    hot = hot_routes.match(scope(method, path))
    if hot is None:
        assert fastapi_endpoint(app, method, path) not in {e for _, _, e in hot_routes.ROUTES}
    else:
        assert fastapi_endpoint(app, method, path) is hot[0]


def test_every_hot_route_is_still_declared_to_fastapi(settings):
    app = create_app(settings)
    declared = {getattr(route, "endpoint", None) for route in flat_routes(app.router.routes)}
    assert {endpoint for _, _, endpoint in hot_routes.ROUTES} <= declared
