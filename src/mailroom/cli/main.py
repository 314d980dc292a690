"""The ``mailroom`` command: serve, mailbox and workflow administration, database migrations."""

from __future__ import annotations

import logging
import math
import os
import re
import ssl
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click

from mailroom import __version__
from mailroom.cli.admin import admin as admin_commands
from mailroom.cli.client import client as client_commands
from mailroom.cli.common import data_dir_option, settings_from
from mailroom.cli.mailbox import mailbox, workflow
from mailroom.cli.token import receipt_certificate, token
from mailroom.container import build_container, where_things_are
from mailroom.malloc_trim import glibc_function
from mailroom.settings import ENV_PREFIX, MAX_WORKERS, HttpLayer, Settings, SettingsError


@click.group()
@click.version_option(__version__, prog_name="mailroom")
def cli() -> None:
    """Mailroom: a durable, MESH-compatible message exchange server."""


@cli.command()
@click.option("--host", default=None, help="Address to listen on [default: $MAILROOM_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: $MAILROOM_PORT or 8700].")
@data_dir_option
@click.option("--tls-cert", default=None, help="PEM certificate chain: serve HTTPS.")
@click.option("--tls-key", default=None, help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", default=None, help="CA bundle to verify client certificates with.")
@click.option(
    "--require-client-cert",
    is_flag=True,
    default=None,
    help="Refuse connections without a valid client certificate.",
)
@click.option(
    "--sandbox",
    is_flag=True,
    default=None,
    help="Serve mesh-sandbox's unauthenticated /admin test endpoints.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=None,
    help="Server processes sharing the port [default: $MAILROOM_WORKERS or 1].",
)
def serve(**options: Any) -> None:
    """Serve the MESH API (HTTP, or HTTPS with --tls-cert/--tls-key)."""
    import uvicorn

    limit_malloc_arenas()
    from mailroom.web.app import ENTRY_POINT, SUPERVISOR_PID, configure_logging, create_app, served

    settings = settings_from(**options)
    protocol = http_protocol(settings)  # before anything is migrated or made
    configure_logging(settings)
    app: Any = ENTRY_POINT
    try:
        if settings.workers == 1:
            app = served(create_app(settings))
        else:  # migrate and make the shared key once, here; each worker then builds its own app
            build_container(settings).close()
            os.environ.update(as_environment(options, settings))
            os.environ[SUPERVISOR_PID] = str(os.getpid())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    tls: dict[str, Any] = {}
    if settings.tls_cert:
        tls = {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
    if settings.tls_client_ca:
        tls["ssl_ca_certs"] = settings.tls_client_ca
        tls["ssl_cert_reqs"] = ssl.CERT_REQUIRED if settings.require_client_cert else ssl.CERT_OPTIONAL
    scheme = "https" if tls else "http"
    address = f"{scheme}://{settings.host}:{settings.port}"
    click.echo(
        f"mailroom {__version__}: {address}, HTTP layer {settings.http_layer}"
        + (" [sandbox]" if settings.sandbox else "")
    )
    for line in where_things_are(settings):
        click.echo(line)
    if settings.admin_address is not None:
        host, port = settings.admin_address
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"administration API on its own listener: {scheme}://{shown}:{port}/api/")
    run: dict[str, Any] = {
        "factory": settings.workers > 1,
        "workers": settings.workers,
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        # uvicorn formats every request's access line before its logger drops it below info
        "access_log": logs_access(settings.log_level),
        "timeout_graceful_shutdown": 10,
        "http": protocol,
        "ws": "none",  # no WebSockets are served: an upgrade request is refused (web/edge.py)
        "timeout_keep_alive": max(1, math.ceil(settings.http_keep_alive.total_seconds())),
        "h11_max_incomplete_event_size": settings.http_max_head_bytes,  # what plain h11 bounds
        **tls,
    }
    if settings.admin_address is None:
        uvicorn.run(app, **run)
    else:
        _serve_two_listeners(uvicorn.Config(app, **run), settings.admin_address, tls)


def logs_access(level: str) -> bool:
    """Whether uvicorn should log each request: only where its access lines (info) are shown.
    Otherwise it still formats every request's line (the client's address, the quoted path)
    before its logger drops it."""
    from uvicorn.config import LOG_LEVELS

    return LOG_LEVELS.get(level.lower(), logging.INFO) <= logging.INFO


def _serve_two_listeners(config: Any, admin_address: tuple[str, int], tls: dict[str, Any]) -> None:
    """One uvicorn server (or, with --workers, each worker process) accepting on two sockets:
    the main listener and ``admin_listen``. The app (``web.app.ListenerSplit``) tells them apart
    by the port a connection came in on; TLS, when set, is the same on both."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    host, port = admin_address
    admin = uvicorn.Config(config.app, host=host, port=port, log_config=None, **tls)
    sockets = [config.bind_socket(), admin.bind_socket()]
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
    if config.workers == 1 and not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE, as uvicorn.run exits


#: glibc's malloc arenas a server process may use (``MALLOC_ARENA_MAX``), unless set already.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Keep this process, and the worker processes it starts, to ``count`` malloc arenas.

    glibc gives threads that allocate at once arenas of their own, up to 8 per core, and each
    keeps what was freed in it. A server process runs dozens of threads (the request pool,
    uploads, writers). In 2-minute runs of bench.soak, RSS rose 2.6 MiB from 30 s to the end
    with glibc's default and 1.6 MiB with 2 arenas, at the same request rate; the 1 GiB
    transfer's peak was 5-7 MiB lower. A ``MALLOC_ARENA_MAX`` already set is left alone. True if
    the limit was set here (False too where malloc is not glibc's: there is no ``mallopt`` to call).
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(count)  # read by glibc as each worker process starts
    mallopt = glibc_function("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, count))


def http_protocol(settings: Settings) -> Any:
    """What ``serve`` gives uvicorn as its ``http`` protocol, for the ``http_layer`` setting,
    with the limits at the HTTP edge (web/edge.py) from ``settings``.

    ``mailroom`` is web/http_protocol.py, which builds on uvicorn's internals (listed in
    docs/operations.md#the-http-layer), so it is used only under the uvicorn series it was tested
    with (``TESTED_UVICORN``, the one in constraints.txt); under any other ``serve`` refuses to
    start rather than serve on a path nobody tested. ``uvicorn`` is uvicorn's own h11 protocol:
    under the tested uvicorn with the edge's limits (web/h11_protocol.py); under any other as
    uvicorn has it, bounded only through uvicorn's public options (head size, keep-alive), and
    ``serve`` says so."""
    import uvicorn

    from mailroom.web.edge import TESTED_UVICORN, EdgeLimits

    found = tuple(int(part) for part in re.findall(r"\d+", uvicorn.__version__)[:2])
    tested = ".".join(map(str, TESTED_UVICORN))
    limits = EdgeLimits.from_settings(settings)
    if settings.http_layer is HttpLayer.UVICORN:
        if found != TESTED_UVICORN:
            click.echo(
                f"uvicorn {uvicorn.__version__} is not the uvicorn Mailroom was tested with ({tested}.x): "
                "serving on its h11 protocol with only the head size and keep-alive limits; see "
                "docs/operations.md#limits-at-the-http-edge",
                err=True,
            )
            return "h11"
        from mailroom.web.h11_protocol import EdgeH11Protocol

        return partial(EdgeH11Protocol, limits=limits)
    if found != TESTED_UVICORN:
        raise click.ClickException(
            f"uvicorn {uvicorn.__version__} is not the uvicorn Mailroom's HTTP layer was tested with "
            f"({tested}.x). Install the locked versions (pip install -c constraints.txt -e .), or "
            f"set {ENV_PREFIX}HTTP_LAYER=uvicorn to serve on uvicorn's own h11 protocol (slower "
            "large transfers); see docs/operations.md#the-http-layer"
        )
    from mailroom.web.http_protocol import MailroomHttpProtocol

    return partial(MailroomHttpProtocol, limits=limits)


def as_environment(options: dict[str, Any], settings: Settings) -> dict[str, str]:
    """The command line's settings as ``MAILROOM_*`` variables, for worker processes to read."""
    env: dict[str, str] = {}
    for name, value in options.items():
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[ENV_PREFIX + name.upper()] = text
    env[ENV_PREFIX + "DATA_DIR"] = str(settings.data_dir.resolve())
    return env


@cli.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@data_dir_option
def db_upgrade(data_dir: Path | None) -> None:
    """Create or upgrade the database schema to the latest revision."""
    from mailroom.storage.db import create_database
    from mailroom.storage.migrate import current_revision, upgrade

    settings = settings_from(data_dir=data_dir)
    database = create_database(settings.resolved_database_url)
    upgrade(database)
    click.echo(f"database at revision {current_revision(database)}")
    database.dispose()


@db.command("migrate-data")
@click.option(
    "--from-data-dir",
    "source_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Data directory of the installation to copy from (its mailroom.db and payloads/).",
)
@data_dir_option
def db_migrate_data(source_dir: Path, data_dir: Path | None) -> None:
    """Copy an embedded installation (SQLite and payload files) into the configured stores.

    The target is what the settings name: MAILROOM_DATABASE_URL (e.g. PostgreSQL) and
    MAILROOM_PAYLOAD_STORE (e.g. s3 with MAILROOM_S3_BUCKET). Mailboxes, workflows, messages,
    events, chunk records and payloads are copied, every payload checked against its SHA-256.
    Safe to run again: a stopped run resumes, and what is already copied is only verified.
    """
    from mailroom.container import open_database
    from mailroom.storage.db import create_database
    from mailroom.storage.migrate import upgrade
    from mailroom.storage.payloads.factory import create_payload_store
    from mailroom.storage.payloads.filesystem import FilesystemPayloadStore
    from mailroom.storage.transfer import TransferRefused, copy_installation

    settings = settings_from(data_dir=data_dir)
    source_file = source_dir / "mailroom.db"
    if not source_file.is_file():
        raise click.ClickException(f"{source_file} does not exist")
    source = create_database(f"sqlite:///{source_file.resolve()}")
    try:
        target = open_database(settings)
        target_payloads = create_payload_store(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        upgrade(source)  # as starting this version on the old installation would
        upgrade(target)
        report = copy_installation(
            source,
            FilesystemPayloadStore(source_dir / "payloads"),
            target,
            target_payloads,
            progress=click.echo,
        )
    except TransferRefused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        source.dispose()
        target.dispose()
    for key in report.missing:
        click.echo(f"missing in the source: {key}", err=True)
    for key in report.mismatched:
        click.echo(f"checksum differs from its record (not copied): {key}", err=True)
    if (source_dir / "shared.key").exists() and not settings.shared_key:
        click.echo(
            f"note: clients sign with the key in {source_dir / 'shared.key'}; give every server the same "
            "key in MAILROOM_SHARED_KEY",
            err=True,
        )
    if not report.ok:
        raise click.ClickException(
            f"{len(report.missing) + len(report.mismatched)} payloads could not be copied (listed above)"
        )
    click.echo("done: every row and payload is in the target")


cli.add_command(client_commands)
cli.add_command(receipt_certificate)
cli.add_command(admin_commands)
cli.add_command(mailbox)
cli.add_command(workflow)
cli.add_command(token)
