"""``/docs`` works with no Internet access: the page and every asset it names come from the app,
and neither the page nor its stylesheet names any other host."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import\s+["']?https?:"""
)


def test_docs_and_its_assets_are_served_by_the_app(client: TestClient, stack: str) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "SwaggerUIBundle" in html
    assert not EXTERNAL.search(html), html
    assert "cdn." not in html
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert len(referenced) >= 3  # the script, the stylesheet, the icon
    openapi = re.search(r"""url:\s*['"]([^'"]+)['"]""", html)
    assert openapi is not None
    for path in [*referenced, openapi.group(1)]:
        assert path.startswith("/"), path
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert asset.content
        if path.endswith(".css"):
            assert not EXTERNAL.search(asset.text)
    paths = client.get("/openapi.json").json()["paths"]
    assert "/message/submit" in paths
    assert "/2/messages/write-message" in paths
