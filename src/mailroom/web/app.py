"""The ASGI application: ``create_app(settings)`` builds everything; nothing happens at import."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from mailroom import __version__
from mailroom.container import Container, build_container
from mailroom.settings import Settings, load_settings
from mailroom.web import errors, health, hot_routes, sandbox, uploads
from mailroom.web.admin import routes as admin_routes
from mailroom.web.wire import handshake, inbox, lookup, openapi, outbox

log = logging.getLogger(__name__)


class MailroomApp(FastAPI):
    """FastAPI, with the hot MESH requests answered ahead of its routing (``web.hot_routes``):
    the same endpoints and error handlers, without the per-request machinery."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = hot_routes.match(scope) if scope["type"] == "http" else None
        if found is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await hot_routes.serve(found, scope, receive, send)


#: What ``mailroom serve --workers N`` gives uvicorn: each worker process calls it to build its
#: own app from the ``MAILROOM_*`` variables the command set (after migrating, once).
ENTRY_POINT = "mailroom.web.app:app_from_environment"
#: Set by ``mailroom serve --workers N`` to its own pid, for its workers (not a setting).
SUPERVISOR_PID = "_MAILROOM_SUPERVISOR_PID"


def app_from_environment() -> FastAPI:
    settings = load_settings(os.environ)
    configure_logging(settings)
    stop_with_supervisor()
    return create_app(settings)


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
        try:
            yield
        finally:
            runner.stop()
            watch = getattr(app.state, "job_watch", None)
            if watch is not None:
                await watch.aclose()
            if container is None:
                services.close()

    app = MailroomApp(title="Mailroom", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.container = services
    app.state.upload_slots = uploads.upload_slots(settings)
    errors.register(app)
    app.include_router(health.router)
    if settings.sandbox:
        app.include_router(sandbox.router)
    if settings.admin_api:
        app.include_router(admin_routes.router)
    app.include_router(lookup.router)
    app.include_router(handshake.router)
    app.include_router(outbox.router)
    app.include_router(inbox.router)
    openapi.install(app)
    return app
