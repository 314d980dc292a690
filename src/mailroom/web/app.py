"""The ASGI application: ``create_app(settings)`` builds everything; nothing happens at import."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from mailroom import __version__
from mailroom.container import Container, build_container
from mailroom.malloc_trim import Trimmer
from mailroom.settings import Settings, load_settings
from mailroom.web import errors, health, hot_routes, messaging, sandbox, uploads
from mailroom.web.admin import routes as admin_routes
from mailroom.web.messaging import hot as messaging_hot
from mailroom.web.wire import handshake, inbox, lookup, openapi, outbox

log = logging.getLogger(__name__)


class MailroomApp(FastAPI):
    """FastAPI, with the hot MESH requests answered ahead of its routing (``web.hot_routes``):
    the same endpoints and error handlers, without the per-request machinery; the JSON faces'
    paths handed to their own app, their hot requests likewise (``web.messaging.hot``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = hot_routes.match(scope) if scope["type"] == "http" else None
        if found is None:
            if scope["type"] == "http" and scope["path"].startswith(messaging.PREFIXES):
                json_app = getattr(self.state, "json_app", None)
                if json_app is not None:
                    await self._json(json_app, scope, receive, send)
                    return
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await hot_routes.serve(found, scope, receive, send)

    async def _json(self, json_app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """A JSON face's request: its hot ones answered here (``web.messaging.hot``), the rest
        by the faces' own app."""
        found = messaging_hot.match(scope)
        if found is None:
            await json_app(scope, receive, send)
            return
        scope["app"] = self
        await messaging_hot.serve(found, scope, receive, send)


#: What ``mailroom serve --workers N`` gives uvicorn: each worker process calls it to build its
#: own app from the ``MAILROOM_*`` variables the command set (after migrating, once).
ENTRY_POINT = "mailroom.web.app:app_from_environment"
#: Set by ``mailroom serve --workers N`` to its own pid, for its workers (not a setting).
SUPERVISOR_PID = "_MAILROOM_SUPERVISOR_PID"


def app_from_environment() -> ASGIApp:
    settings = load_settings(os.environ)
    configure_logging(settings)
    stop_with_supervisor()
    return served(create_app(settings))


class ListenerSplit:
    """What ``serve`` runs when the administration API has a listener of its own
    (``admin_listen``): requests that came in on that listener's port go to the admin app, every
    other request (and the lifespan) to the main app. The port is the local end of the
    connection, which the client cannot choose, unlike a ``Host`` header."""

    def __init__(self, main: FastAPI, admin: FastAPI, admin_port: int) -> None:
        self.main = main
        self.admin = admin
        self.admin_port = admin_port

    @property
    def state(self) -> object:
        return self.main.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] == "http" else None
        if server is not None and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.main(scope, receive, send)


def served(app: FastAPI) -> ASGIApp:
    """``app`` as ``serve`` runs it: split between two listeners when the administration API
    has one of its own, else as it is.

    Everything made so far (modules, routes, settings: most of a server's objects, and they
    live as long as it does) is moved out of the garbage collector's sight (``gc.freeze``), so
    its full collections no longer walk them while requests are served."""
    gc.freeze()
    admin: FastAPI | None = getattr(app.state, "admin_app", None)
    address = app.state.container.settings.admin_address
    if admin is None or address is None:
        return app
    return ListenerSplit(app, admin, address[1])


def admin_app(services: Container) -> FastAPI:
    """The administration API alone (and the health routes, for probes): what the
    ``admin_listen`` listener serves. Its job watch is closed by the main app's lifespan."""
    app = FastAPI(title="Mailroom administration", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.container = services
    app.include_router(health.router)
    app.include_router(admin_routes.router)
    return app


def stop_with_supervisor(every: float = 1.0) -> None:
    """In a worker process: stop (SIGTERM, a graceful shutdown) once the supervisor that started
    it is gone. A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its workers,
    and they would serve on as orphans holding the port a restart needs."""
    # From the command, not getppid(): a supervisor killed while this worker was still starting
    # has already left it to another parent.
    supervisor = int(os.environ.get(SUPERVISOR_PID) or os.getppid())

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(every)
        log.warning("the supervisor (pid %d) is gone: stopping this worker", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mailroom-supervisor-watch", daemon=True).start()


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def create_app(settings: Settings, container: Container | None = None) -> FastAPI:
    services = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = services.job_runner()
        runner.start()
        trimmer = Trimmer()
        trimmer.start()
        try:
            yield
        finally:
            trimmer.stop()
            runner.stop()
            for state in (app.state, getattr(app.state, "admin_app", app).state):
                watch = getattr(state, "job_watch", None)
                if watch is not None:
                    await watch.aclose()
                    state.job_watch = None
            if container is None:
                services.close()

    app = MailroomApp(title="Mailroom", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.container = services
    app.state.upload_slots = uploads.upload_slots(settings)
    errors.register(app)
    app.include_router(health.router)
    if settings.sandbox:
        app.include_router(sandbox.router)
    if settings.admin_api and settings.admin_address is None:
        app.include_router(admin_routes.router)
    elif settings.admin_api:
        app.state.admin_app = admin_app(services)
    app.include_router(lookup.router)
    app.include_router(handshake.router)
    app.include_router(outbox.router)
    app.include_router(inbox.router)
    messaging.install(app, settings)  # the JSON faces (with json_api) and /docs
    openapi.install(app)
    return app
