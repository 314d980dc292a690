"""MESH API version negotiation (spec §3)."""

from __future__ import annotations

import functools
import re
from enum import IntEnum

V1_TYPE = "application/json"
V2_TYPE = "application/vnd.mesh.v2+json"
_MESH_TYPE = re.compile(r"application/vnd\.mesh\.v(\d+)\+json", re.IGNORECASE)


class ApiVersion(IntEnum):
    V1 = 1
    V2 = 2


#: Accept values up to this long are remembered (a client sends the same one every time, and a
#: request asks several times); longer ones, which only a client testing limits sends, are not.
CACHED_ACCEPT = 200


def negotiate(accept: str | None) -> ApiVersion:
    """Lenient: any ``vnd.mesh.vN+json`` entry with N ≥ 2 selects v2; everything else is v1."""
    if accept is not None and len(accept) <= CACHED_ACCEPT:
        return _remembered(accept)
    return _negotiate(accept)


def _negotiate(accept: str | None) -> ApiVersion:
    if not accept:
        return ApiVersion.V1
    versions = [int(match.group(1)) for match in _MESH_TYPE.finditer(accept)]
    return ApiVersion.V2 if versions and max(versions) >= 2 else ApiVersion.V1


_remembered = functools.lru_cache(maxsize=64)(_negotiate)


def accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in {"gzip", "*"}:
            quality = params.strip().lower()
            if quality.startswith("q="):
                try:
                    return float(quality[2:]) > 0
                except ValueError:
                    return False
            return True
    return False
