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
from mailroom.web import errors as app_errors
from mailroom.web.messaging import d4science, docs, fallback, files, mft, tokens

#: The paths the JSON faces serve: ``MailroomApp`` hands these straight to ``json_app``.
PREFIXES = ("/message/", "/2/", "/files/", "/authorize", "/refresh-session")


def install(app: FastAPI, settings: Settings) -> None:
    """The routes on ``app`` (its OpenAPI document and ``/docs`` describe them), and the same
    routes alone on ``app.state.json_app``, which serves them: matching a path against these few
    routes instead of every MESH route too saves about half a millisecond of CPU a request."""
    docs.install(app)
    if not settings.json_api:
        return
    served = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    served.state.container = app.state.container
    served.state.upload_slots = app.state.upload_slots
    app_errors.register(served)  # the same handlers as the app's (the faces' own come first)
    for router in (tokens.router, mft.router, files.router, d4science.router):
        app.include_router(router)
        served.include_router(router)
    for router in (fallback.mft, fallback.d4science):  # after every real route: the rest of the prefixes
        served.include_router(router)  # (only where the faces are served: never a MESH path's)
    app.state.json_app = served
