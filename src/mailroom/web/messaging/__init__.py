"""The JSON messaging API's faces: MFT Gateway's (``tokens``, ``mft``, ``files``) and
D4Science's (``d4science``), over ``services.messaging``; and ``/docs`` (``docs``), offline.

``install(app, settings)`` adds them to the app (the JSON routes only with ``json_api``). Each
face renders the one error tree in its own shape through its routers' route class
(``errors``), leaving the MESH face's handlers as they are; a path under a face's prefix that
no route serves is that face's 404 (``fallback``).
"""

from __future__ import annotations

from fastapi import FastAPI

from mailroom.settings import Settings
from mailroom.web.messaging import d4science, docs, fallback, files, mft, tokens


def install(app: FastAPI, settings: Settings) -> None:
    docs.install(app)
    if not settings.json_api:
        return
    for router in (tokens.router, mft.router, files.router, d4science.router):
        app.include_router(router)
    app.include_router(fallback.mft)  # after every real route: the rest under the faces' prefixes
    app.include_router(fallback.d4science)
