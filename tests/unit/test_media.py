"""API version negotiation (spec §3), and that only short Accept values are remembered."""

from __future__ import annotations

import pytest

from mailroom.web.wire import media
from mailroom.web.wire.media import V2_TYPE, ApiVersion, negotiate


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (None, ApiVersion.V1),
        ("", ApiVersion.V1),
        ("application/json", ApiVersion.V1),
        ("application/vnd.mesh.v1+json", ApiVersion.V1),
        (V2_TYPE, ApiVersion.V2),
        ("APPLICATION/VND.MESH.V3+JSON", ApiVersion.V2),
        ("application/json, application/vnd.mesh.v2+json;q=0.9", ApiVersion.V2),
    ],
)
def test_versions(accept, version):
    assert negotiate(accept) is version
    assert negotiate(accept) is version  # the remembered answer is the same


def test_a_long_accept_is_answered_but_not_remembered():
    media._remembered.cache_clear()
    long_value = "a" * media.CACHED_ACCEPT + ", " + V2_TYPE
    assert negotiate(long_value) is ApiVersion.V2
    assert media._remembered.cache_info().currsize == 0
    negotiate(V2_TYPE)
    assert media._remembered.cache_info().currsize == 1
