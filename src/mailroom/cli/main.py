"""The ``mailroom`` command: serve, mailbox and workflow administration, database migrations."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.cells import cell_len, set_cell_size

from mailroom import __version__
from mailroom.cli.admin import admin as admin_commands
from mailroom.cli.client import client as client_commands
from mailroom.container import Container, build_container
from mailroom.domain.mailboxes import Mailbox, normalise_mailbox_id
from mailroom.errors import Conflict, MailroomError, NotFound, ValidationFailed
from mailroom.services.mailboxes import MailboxChanges, MailboxSummary, describe_held, parse_jsonl
from mailroom.settings import ENV_PREFIX, MAX_WORKERS, HttpLayer, Settings, SettingsError, load_settings

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: $MAILROOM_DATA_DIR or ./mailroom-data).",
)


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(os.environ, **overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def errors_as_usage(prefix: str = "") -> Iterator[None]:
    """A domain error becomes a one-line message and exit status 1, not a traceback."""
    try:
        yield
    except ValidationFailed as exc:
        raise click.ClickException(f"{prefix}{exc.name}: {exc.description}") from None
    except MailroomError as exc:
        raise click.ClickException(f"{prefix}{exc.description}") from None


def open_container(data_dir: Path | None) -> Container:
    settings = settings_from(data_dir=data_dir)
    try:
        return build_container(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


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
    protocol = http_protocol(settings.http_layer)  # before anything is migrated or made
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
    click.echo(
        f"mailroom {__version__}: {scheme}://{settings.host}:{settings.port} "
        f"data in {settings.data_dir.resolve()}, HTTP layer {settings.http_layer}"
        + (" [sandbox]" if settings.sandbox else "")
    )
    if settings.admin_address is not None:
        host, port = settings.admin_address
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"administration API on its own listener: {scheme}://{shown}:{port}/api/")
    key_source = (
        "MAILROOM_SHARED_KEY" if settings.shared_key else str(settings.data_dir.resolve() / "shared.key")
    )
    click.echo(f"shared key (the NHSMESH HMAC key clients need) from {key_source}")
    run: dict[str, Any] = {
        "factory": settings.workers > 1,
        "workers": settings.workers,
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "timeout_graceful_shutdown": 10,
        "http": protocol,
        "ws": "none",  # no WebSockets are served: an upgrade request is answered as plain HTTP
        **tls,
    }
    if settings.admin_address is None:
        uvicorn.run(app, **run)
    else:
        _serve_two_listeners(uvicorn.Config(app, **run), settings.admin_address, tls)


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
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, count))


def http_protocol(layer: HttpLayer) -> Any:
    """What ``serve`` gives uvicorn as its ``http`` protocol, for the ``http_layer`` setting.

    ``mailroom`` is web/http_protocol.py, which builds on uvicorn's internals (listed in
    docs/operations.md#the-http-layer), so it is used only under the uvicorn series it was tested
    with (``TESTED_UVICORN``, the one in constraints.txt); under any other ``serve`` refuses to
    start rather than serve on a path nobody tested. ``uvicorn`` is uvicorn's own h11 protocol,
    which Mailroom reaches only through uvicorn's public options."""
    import uvicorn

    if layer is HttpLayer.UVICORN:
        return "h11"
    from mailroom.web.http_protocol import TESTED_UVICORN, MailroomHttpProtocol

    found = tuple(int(part) for part in re.findall(r"\d+", uvicorn.__version__)[:2])
    if found != TESTED_UVICORN:
        tested = ".".join(map(str, TESTED_UVICORN))
        raise click.ClickException(
            f"uvicorn {uvicorn.__version__} is not the uvicorn Mailroom's HTTP layer was tested with "
            f"({tested}.x). Install the locked versions (pip install -c constraints.txt -e .), or "
            f"set {ENV_PREFIX}HTTP_LAYER=uvicorn to serve on uvicorn's own h11 protocol (slower "
            "large transfers); see docs/operations.md#the-http-layer"
        )
    return MailroomHttpProtocol


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
def mailbox() -> None:
    """Create, change, list, disable, remove and import mailboxes."""


def _mailbox_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    normalised = normalise_mailbox_id(value)
    if normalised is None:
        raise click.BadParameter("letters, digits, '_' and '-' only, at most 100")
    return normalised


mailbox_id_argument = click.argument("mailbox_id", callback=_mailbox_id)
password_option = click.option(
    "--password",
    default=None,
    help="The password (part of the NHSMESH HMAC). Asked for twice, unechoed, when neither this nor "
    "--password-stdin is given: given here, it is kept in the shell history and shown in the "
    "process list.",
)
password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of standard input."
)


def read_password(password: str | None, from_stdin: bool) -> str:
    if password is not None and from_stdin:
        raise click.UsageError("give --password or --password-stdin, not both")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: standard input has no password")
        return password
    if password is None:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return password


@mailbox.command("add")
@mailbox_id_argument
@password_option
@password_stdin_option
@click.option("--name", default="", help="Mailbox name.")
@click.option("--ods-code", default="", help="ODS code (used by endpoint lookup).")
@click.option("--org-code", default="", help="Organisation code.")
@click.option("--org-name", default="", help="Organisation name.")
@click.option("--billing-entity", default="", help="Billing entity.")
@click.option(
    "--replace",
    is_flag=True,
    help="Replace a mailbox that exists: every field from these options, blank ones too.",
)
@data_dir_option
def mailbox_add(mailbox_id: str, password: str | None, password_stdin: bool, **options: Any) -> None:
    """Create mailbox MAILBOX_ID (upper-cased).

    A mailbox that exists is refused unless --replace: change some of its fields with `mailbox
    update`, its password with `mailbox password`.
    """
    container = open_container(options.pop("data_dir"))
    replace = options.pop("replace")
    exists = f"mailbox {mailbox_id} already exists: change it with `mailroom mailbox update` or "
    exists += "`mailroom mailbox password`, or give --replace to replace all of its fields"
    if not replace and _exists(container, mailbox_id):
        raise click.ClickException(exists)  # before asking for a password
    box = Mailbox(
        mailbox_id,
        options["name"],
        read_password(password, password_stdin),
        options["ods_code"],
        options["org_code"],
        options["org_name"],
        options["billing_entity"],
    )
    with errors_as_usage():
        try:
            new = container.mailboxes.add(box, replace=replace)
        except Conflict:  # added meanwhile
            raise click.ClickException(exists) from None
    click.echo(f"{'added' if new else 'replaced'} mailbox {mailbox_id}")


def _exists(container: Container, mailbox_id: str) -> bool:
    try:
        container.mailboxes.get(mailbox_id)
    except NotFound:
        return False
    return True


@mailbox.command("update")
@mailbox_id_argument
@click.option("--name", default=None, help="Mailbox name.")
@click.option("--ods-code", default=None, help="ODS code (used by endpoint lookup).")
@click.option("--org-code", default=None, help="Organisation code.")
@click.option("--org-name", default=None, help="Organisation name.")
@click.option("--billing-entity", default=None, help="Billing entity.")
@click.option("--enable/--disable", "active", default=None, help="Let it authenticate and receive, or not.")
@data_dir_option
def mailbox_update(mailbox_id: str, name: str | None, data_dir: Path | None, **options: Any) -> None:
    """Change only the given fields of mailbox MAILBOX_ID (an empty value clears a field).

    The password is changed with `mailbox password`.
    """
    changes = MailboxChanges(mailbox_name=name, **options)
    if not changes.values():
        raise click.UsageError(
            "nothing to change: give --name, --ods-code, --org-code, --org-name, --billing-entity, "
            "--enable or --disable"
        )
    with errors_as_usage():
        open_container(data_dir).mailboxes.update(mailbox_id, changes)
    click.echo(f"updated mailbox {mailbox_id}: {', '.join(changes.values())}")


@mailbox.command("password")
@mailbox_id_argument
@password_option
@password_stdin_option
@data_dir_option
def mailbox_password(
    mailbox_id: str, password: str | None, password_stdin: bool, data_dir: Path | None
) -> None:
    """Change only the password of mailbox MAILBOX_ID.

    A running server refuses the old password within MAILROOM_MAILBOX_CACHE_TTL.
    """
    container = open_container(data_dir)
    with errors_as_usage():
        container.mailboxes.held(mailbox_id)  # an unknown mailbox is refused before the prompt
        container.mailboxes.set_password(mailbox_id, read_password(password, password_stdin))
    click.echo(f"changed the password of mailbox {mailbox_id}")


@mailbox.command("remove")
@mailbox_id_argument
@click.option(
    "--purge",
    is_flag=True,
    help="Also delete the messages waiting in its inbox and the uploads in progress from or to "
    "it, with their payloads.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
def mailbox_remove(mailbox_id: str, purge: bool, yes: bool, data_dir: Path | None) -> None:
    """Remove mailbox MAILBOX_ID and its workflow registrations.

    Refused while messages wait in its inbox (not yet acknowledged) or uploads from or to it are
    in progress, unless --purge. Messages it sent that wait in other inboxes stay deliverable, and
    finished messages stay as tracking history. A running server stops accepting the mailbox
    within MAILROOM_MAILBOX_CACHE_TTL.
    """
    container = open_container(data_dir)
    with errors_as_usage():
        held = container.mailboxes.held(mailbox_id)
    if held.blocking and not purge:
        raise click.ClickException(
            f"mailbox {mailbox_id} {describe_held(held)}: not removed. "
            "Give --purge to delete them and their payloads with it"
        )
    question = f"Remove mailbox {mailbox_id}"
    if held.blocking:
        question += f" and delete the {describe_held(held).removeprefix('has ')}, with their payloads"
    if not yes:
        click.confirm(f"{question}?", abort=True)
    with errors_as_usage():
        removal = container.mailboxes.remove(mailbox_id, purge=purge)
    click.echo(
        f"removed mailbox {mailbox_id}: {len(removal.deleted)} messages deleted, "
        f"{removal.registrations} workflow registrations removed"
    )
    if removal.sent_waiting:
        click.echo(f"{removal.sent_waiting} messages it sent still wait in other inboxes (kept)")
    if removal.payloads_left:
        click.echo(
            f"{removal.payloads_left} messages' payloads could not be deleted now; the sweep of a "
            "running server removes them as orphans",
            err=True,
        )


@mailbox.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per mailbox, one a line.")
@data_dir_option
def mailbox_list(as_json: bool, data_dir: Path | None) -> None:
    """List mailboxes: messages waiting in each inbox (not yet acknowledged) and the last
    handshake. Passwords are never shown."""
    summaries = open_container(data_dir).mailboxes.summaries()
    if as_json:
        for summary in summaries:
            click.echo(json.dumps(summary_json(summary)))
    elif not summaries:
        click.echo("no mailboxes: add one with `mailroom mailbox add`")
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        click.echo("\n".join(mailbox_lines(summaries, width)))


def summary_json(summary: MailboxSummary) -> dict[str, Any]:
    box = summary.mailbox
    handshake = box.last_handshake_at
    return {
        "mailbox_id": box.mailbox_id,
        "mailbox_name": box.mailbox_name,
        "ods_code": box.ods_code,
        "org_code": box.org_code,
        "org_name": box.org_name,
        "billing_entity": box.billing_entity,
        "active": box.active,
        "waiting": summary.waiting,
        "last_handshake_at": handshake.isoformat() if handshake else None,
    }


LIST_HEADER = ("Mailbox", "Name", "ODS code", "State", "Waiting", "Last handshake (UTC)")
NAME, WAITING = 1, 4  # the column cut to fit the screen, and the one aligned right


def mailbox_lines(summaries: list[MailboxSummary], width: int | None) -> list[str]:
    """A header and a line per mailbox in aligned columns; with a ``width``, names are cut
    (ending in "…") so that lines fit it. Other columns are never cut."""
    rows = [LIST_HEADER, *(_list_row(summary) for summary in summaries)]
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(LIST_HEADER))]
    if width is not None:
        others = sum(widths) - widths[NAME] + 2 * (len(widths) - 1)
        widths[NAME] = max(len(LIST_HEADER[NAME]), min(widths[NAME], width - others))
    lines = []
    for row in rows:
        cells = [_cell(text, widths[i], right=i == WAITING) for i, text in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _list_row(summary: MailboxSummary) -> tuple[str, ...]:
    box, handshake = summary.mailbox, summary.mailbox.last_handshake_at
    return (
        box.mailbox_id,
        box.mailbox_name,
        box.ods_code,
        "active" if box.active else "disabled",
        str(summary.waiting),
        handshake.strftime("%Y-%m-%d %H:%M") if handshake else "never",
    )


def _cell(text: str, width: int, *, right: bool) -> str:
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    padding = " " * (width - cell_len(text))
    return padding + text if right else text + padding


@mailbox.command("disable")
@mailbox_id_argument
@data_dir_option
def mailbox_disable(mailbox_id: str, data_dir: Path | None) -> None:
    """Disable a mailbox: it can no longer authenticate or receive."""
    _set_active(mailbox_id, False, data_dir)


@mailbox.command("enable")
@mailbox_id_argument
@data_dir_option
def mailbox_enable(mailbox_id: str, data_dir: Path | None) -> None:
    """Enable a disabled mailbox again."""
    _set_active(mailbox_id, True, data_dir)


def _set_active(mailbox_id: str, active: bool, data_dir: Path | None) -> None:
    with errors_as_usage():
        open_container(data_dir).mailboxes.set_active(mailbox_id, active)
    click.echo(f"{'enabled' if active else 'disabled'} mailbox {mailbox_id}")


@mailbox.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@data_dir_option
def mailbox_import(file: Any, data_dir: Path | None) -> None:
    """Import mailboxes from a mesh-sandbox style mailboxes.jsonl.

    The file describes each mailbox whole: one that exists is replaced by its record, and fields
    the record leaves out are blanked (`active` defaults to true).
    """
    with errors_as_usage():
        result = open_container(data_dir).mailboxes.import_mailboxes(parse_jsonl(file))
    click.echo(f"imported mailboxes: {result.added} added, {result.updated} updated")


@cli.group()
def workflow() -> None:
    """Import workflow registrations (who may send and receive a workflow)."""


@workflow.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@data_dir_option
def workflow_import(file: Any, data_dir: Path | None) -> None:
    """Import workflows from a mesh-sandbox style workflows.jsonl."""
    with errors_as_usage():
        count = open_container(data_dir).mailboxes.import_workflows(parse_jsonl(file))
    click.echo(f"imported {count} workflows")


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
cli.add_command(admin_commands)
