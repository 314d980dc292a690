"""``mailroom client``: a MESH client on the command line (a thin shell over ``mailroom.client``).

Exit status: 0 done, 1 an error (the server refused, could not be reached, ...), 2 a usage
error (including missing or invalid connection settings), 3 ``lookup`` found no mailbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from mailroom.cli.client_output import (
    Transfers,
    inbox_table,
    line,
    report_panel,
    tracking_table,
    transfers,
)
from mailroom.client import (
    ConfigError,
    MeshClient,
    MeshError,
    Message,
    Report,
    SendResult,
    default_config_path,
    load_config,
)

F = TypeVar("F", bound=Callable[..., Any])

NOTHING_FOUND = 3
"""Exit status of ``lookup`` when no mailbox matched (1 is an error, 2 a usage error)."""
SETTING_OPTIONS = {
    "url": "--url",
    "mailbox": "--mailbox",
    "password": "--password",
    "shared_key": "--shared-key",
}
"""The group's option for each required connection setting."""


@dataclass
class Connection:
    """The group's connection options; the client is made on first use."""

    options: dict[str, Any]
    context: click.Context
    stdout: Console = field(default_factory=Console)
    stderr: Console = field(default_factory=lambda: Console(stderr=True))
    _client: MeshClient | None = None

    def client(self) -> MeshClient:
        if self._client is None:
            options = dict(self.options)
            profile, config_file = options.pop("profile"), options.pop("config_file")
            self._client = MeshClient.from_config(load_config(profile, config_file=config_file, **options))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


@contextmanager
def mesh_errors(conn: Connection) -> Iterator[None]:
    """A client error becomes a one-line message and exit status 1, not a traceback; missing
    or invalid connection settings are a usage error (status 2)."""
    try:
        yield
    except ConfigError as exc:
        raise click.UsageError(config_message(conn, exc), conn.context) from None
    except MeshError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def config_message(conn: Connection, exc: ConfigError) -> str:
    """Which options (or variables) to give, rather than the library's setting names."""
    if not exc.missing:
        return str(exc)
    wanted = ", ".join(f"{SETTING_OPTIONS[name]} or $MESH_{name.upper()}" for name in exc.missing)
    path = conn.options.get("config_file") or default_config_path()
    return (
        f"missing connection settings: {wanted}. Give them as options before the sub-command "
        f"(mailroom client --url URL ... inbox), as environment variables, or in a profile "
        f"in {path} (see docs/client.md)."
    )


@click.group("client")
@click.option(
    "--profile", default=None, help="Profile in the config file [default: $MESH_PROFILE or default]."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML profile file [default: $MESH_CONFIG or ~/.config/mailroom/client.toml].",
)
@click.option("--url", default=None, help="Server base URL, e.g. http://127.0.0.1:8700 [$MESH_URL].")
@click.option("--mailbox", default=None, help="Your mailbox id [$MESH_MAILBOX].")
@click.option("--password", default=None, help="Mailbox password [$MESH_PASSWORD].")
@click.option("--shared-key", default=None, help="Environment shared key [$MESH_SHARED_KEY].")
@click.option("--cert", default=None, help="Client certificate (PEM) for mutual TLS [$MESH_CERT].")
@click.option("--key", default=None, help="Private key of --cert [$MESH_KEY].")
@click.option("--ca", default=None, help="CA bundle to verify the server [$MESH_CA].")
@click.pass_context
def client(ctx: click.Context, /, **options: Any) -> None:
    """Talk to a MESH server (Mailroom, NHS MESH or mesh-sandbox) as one mailbox.

    Connection settings come from these options, then MESH_* environment variables, then the
    profile in the config file. See docs/client.md.

    Exit status: 0 done, 1 error, 2 usage error (such as missing settings), 3 lookup found
    nothing.
    """
    connection = Connection(options, ctx)
    ctx.obj = connection
    ctx.call_on_close(connection.close)


pass_connection = click.make_pass_decorator(Connection)


@client.command()
@json_option
@pass_connection
def handshake(conn: Connection, as_json: bool) -> None:
    """Check that the server accepts this mailbox's credentials."""
    with mesh_errors(conn):
        mesh = conn.client()
        ok = mesh.check_authentication()
    if as_json:
        emit_json({"mailbox": mesh.mailbox, "url": mesh.config.url, "authenticated": ok})
    elif ok:
        click.echo(f"{mesh.mailbox}: authenticated at {mesh.config.url}")
    if not ok:
        raise click.ClickException(f"{mesh.mailbox}: the server refused these credentials")


@client.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--to", "recipient", required=True, help="Recipient mailbox id.")
@click.option("--workflow", "workflow_id", required=True, help="MESH workflow id.")
@click.option("--subject", default=None, help="Subject.")
@click.option("--local-id", default=None, help="Your reference (one file only; default: generated).")
@click.option("--content-type", default=None, help="Content type of the file.")
@click.option("--encrypted", is_flag=True, help="Flag the content as encrypted.")
@click.option("--compressed", is_flag=True, help="Flag the content as compressed by you.")
@click.option("--gzip", is_flag=True, help="Gzip each chunk on the way (Content-Encoding).")
@click.option("--chunk-size", type=int, default=None, help="Bytes per chunk [default: 75 MiB].")
@json_option
@pass_connection
def send(conn: Connection, /, files: Sequence[Path], as_json: bool, **options: Any) -> None:
    """Send one or more files; large ones are chunked, interrupted ones resume.

    Prints one line per file with its message id (a progress bar shows meanwhile on a terminal).
    """
    if options["local_id"] and len(files) > 1:
        raise click.UsageError("--local-id needs exactly one file")
    results = []
    with mesh_errors(conn), transfers(conn.stdout, conn.stderr, quiet=as_json) as shown:
        mesh = conn.client()
        for path in files:
            result = send_one(mesh, shown, path, **options)
            results.append({"file": str(path), **result.to_json()})
            if not as_json:
                note = " (resumed)" if result.resumed else ""
                shown.print(
                    line(f"sent {path} → {options['recipient']}: ", (result.message_id, "bold"), note)
                )
    if as_json:
        emit_json(results)


def send_one(
    mesh: MeshClient, shown: Transfers, path: Path, recipient: str, workflow_id: str, **options: Any
) -> SendResult:
    bar = shown.start(path.name, total=path.stat().st_size)
    result = mesh.send_file(recipient, path, workflow_id, progress=bar.advance, **options)
    bar.finish()
    return result


@client.command()
@click.option("--workflow-filter", default=None, help="Only these workflows (MESH filter syntax).")
@click.option("--ids", "ids_only", is_flag=True, help="Only the message ids, one a line (one request).")
@json_option
@pass_connection
def inbox(conn: Connection, workflow_filter: str | None, ids_only: bool, as_json: bool) -> None:
    """List the messages waiting in the inbox: id, sender, subject or file name, size, time.

    The details take one HEAD request per message; --ids lists the ids alone.
    """
    with mesh_errors(conn):
        mesh = conn.client()
        if ids_only:
            ids = mesh.check_inbox(workflow_filter)
        else:
            items = mesh.inbox_details(workflow_filter)
            ids = [item.message_id for item in items]
    if as_json:
        emit_json(ids if ids_only else [item.to_json() for item in items])
        return
    if ids_only:
        click.echo("".join(f"{message_id}\n" for message_id in ids), nl=False)
    elif items:
        conn.stdout.print(inbox_table(items))
    conn.stderr.print(f"{len(ids)} message(s) waiting")


@client.command()
@click.argument("message_ids", nargs=-1)
@click.option("--all", "download_all", is_flag=True, help="Every message in the inbox.")
@click.option(
    "--folder",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Where to save.",
)
@click.option("--ack", is_flag=True, help="Acknowledge each message once it is safely on disk.")
@json_option
@pass_connection
def download(
    conn: Connection, message_ids: Sequence[str], download_all: bool, folder: Path, ack: bool, as_json: bool
) -> None:
    """Download messages into a folder as ID.dat plus ID.json metadata."""
    if bool(message_ids) == download_all:
        raise click.UsageError("give message ids or --all (not both)")
    with mesh_errors(conn), transfers(conn.stdout, conn.stderr, quiet=as_json) as shown:
        mesh = conn.client()
        if download_all and ack:
            items = mesh.check_and_download(folder, progress=shown.download)
            shown.done_downloading()
            for item in [] if as_json else items:
                shown.print(saved_line(item))
        else:
            items = [
                download_one(mesh, shown, message_id, folder, ack=ack, quiet=as_json)
                for message_id in message_ids or mesh.check_inbox()
            ]
    reports = [item for item in items if isinstance(item, Report)]
    for report in reports:
        conn.stderr.print(report_panel(report))
    if as_json:
        emit_json([item.to_json() for item in items])
        return
    done = "downloaded and acknowledged" if ack else "downloaded (not acknowledged)"
    conn.stderr.print(f"{len(items)} message(s) {done}; {len(reports)} non-delivery report(s)")


def download_one(
    mesh: MeshClient, shown: Transfers, message_id: str, folder: Path, *, ack: bool, quiet: bool
) -> Message | Report:
    item = mesh.download_message(message_id, folder, progress=shown.download)
    shown.done_downloading()
    if ack:
        mesh.ack_download_message(message_id)
    if not quiet:
        shown.print(saved_line(item))
    return item


def saved_line(item: Message | Report) -> str:
    if isinstance(item, Report):
        return f"{item.message_id}  non-delivery report (shown below)  → {item.path}"
    return f"{item.message_id}  {item.size} bytes  from {item.sender}  → {item.path}"


@client.command()
@click.argument("message_ids", nargs=-1, required=True)
@json_option
@pass_connection
def ack(conn: Connection, message_ids: Sequence[str], as_json: bool) -> None:
    """Acknowledge messages (they leave the inbox)."""
    with mesh_errors(conn):
        mesh = conn.client()
        for message_id in message_ids:
            mesh.ack_download_message(message_id)
    if as_json:
        emit_json({"acknowledged": list(message_ids)})
    else:
        for message_id in message_ids:
            click.echo(f"acknowledged {message_id}")


@client.command()
@click.argument("message_id")
@click.option("--local-id", "by_local_id", is_flag=True, help="MESSAGE_ID is your local id.")
@json_option
@pass_connection
def track(conn: Connection, message_id: str, by_local_id: bool, as_json: bool) -> None:
    """Show the status of a message you sent, and the times the server gives."""
    with mesh_errors(conn):
        mesh = conn.client()
        found = mesh.track_by_local_id(message_id) if by_local_id else mesh.track(message_id)
    if as_json:
        emit_json(found.to_json())
        return
    conn.stdout.print(tracking_table(found))
    if found.status in ("undeliverable", "error"):
        conn.stderr.print(
            line((f"message {found.message_id} was NOT delivered ({found.status})", "bold red"))
        )


@client.command()
@click.argument("ods_code")
@click.argument("workflow_id")
@json_option
@pass_connection
def lookup(conn: Connection, ods_code: str, workflow_id: str, as_json: bool) -> None:
    """Find the mailboxes of an organisation (ODS code) that receive a workflow.

    Exits with status 3 when no mailbox matched.
    """
    with mesh_errors(conn):
        found = conn.client().lookup(ods_code, workflow_id)
    if as_json:
        emit_json([endpoint.to_json() for endpoint in found])
    else:
        for endpoint in found:
            click.echo(f"{endpoint.mailbox_id}  {endpoint.mailbox_name or ''}".rstrip())
    if not found:
        conn.stderr.print(
            line(
                f"nothing matched: no mailbox of organisation {ods_code} receives workflow {workflow_id}. "
                "Check both; the server may have no workflows registered (Mailroom: "
                "mailroom workflow import)."
            )
        )
        conn.context.exit(NOTHING_FOUND)
