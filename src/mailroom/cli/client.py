"""``mailroom client``: a MESH client on the command line (a thin shell over ``mailroom.client``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn
from rich.table import Table

from mailroom.client import MeshClient, MeshError, Message, Report, load_config

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Connection:
    """The group's connection options; the client is made on first use."""

    options: dict[str, Any]
    stdout: Console = field(default_factory=Console)
    stderr: Console = field(default_factory=lambda: Console(stderr=True))
    _client: MeshClient | None = None

    def client(self, **overrides: Any) -> MeshClient:
        if self._client is None:
            profile, config_file = self.options.pop("profile"), self.options.pop("config_file")
            config = load_config(profile, config_file=config_file, **{**self.options, **overrides})
            self._client = MeshClient.from_config(config)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


@contextmanager
def mesh_errors() -> Iterator[None]:
    """A client error becomes a one-line message and exit status 1, not a traceback."""
    try:
        yield
    except MeshError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def show_report(console: Console, report: Report) -> None:
    """Reports mean a message you sent did not arrive: never let one scroll past unnoticed."""
    lines = [
        f"Message [bold]{report.linked_message_id or 'unknown'}[/bold] was NOT delivered.",
        f"Code {report.code or '?'}: {report.description or 'no description'}",
        f"Workflow {report.workflow_id or '-'}  local id {report.local_id or '-'}",
        f"Report id {report.message_id}",
    ]
    title = "NON-DELIVERY REPORT"
    console.print(Panel("\n".join(lines), title=title, border_style="bold red", style="red"))


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
@click.option("--url", default=None, help="Server base URL [$MESH_URL].")
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
    """
    connection = Connection(options)
    ctx.obj = connection
    ctx.call_on_close(connection.close)


pass_connection = click.make_pass_decorator(Connection)


@client.command()
@json_option
@pass_connection
def handshake(conn: Connection, as_json: bool) -> None:
    """Check that the server accepts this mailbox's credentials."""
    with mesh_errors():
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
    """Send one or more files; large ones are chunked, interrupted ones resume."""
    if options["local_id"] and len(files) > 1:
        raise click.UsageError("--local-id needs exactly one file")
    recipient, workflow_id = options.pop("recipient"), options.pop("workflow_id")
    results = []
    with mesh_errors(), _progress(conn.stderr, quiet=as_json) as progress:
        mesh = conn.client()
        for path in files:
            advance = _advancer(progress, progress.add_task(path.name, total=path.stat().st_size))
            result = mesh.send_file(recipient, path, workflow_id, progress=advance, **options)
            results.append({"file": str(path), **result.to_json()})
            if not as_json:
                note = " (resumed)" if result.resumed else ""
                conn.stdout.print(f"sent {path} → {recipient}: [bold]{result.message_id}[/bold]{note}")
    if as_json:
        emit_json(results)


def _advancer(progress: Progress, task: TaskID) -> Callable[[int], None]:
    def advance(sent: int) -> None:
        progress.advance(task, sent)

    return advance


def _progress(console: Console, *, quiet: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    return Progress(*columns, console=console, transient=True, disable=quiet or not console.is_terminal)


@client.command()
@click.option("--workflow-filter", default=None, help="Only these workflows (MESH filter syntax).")
@json_option
@pass_connection
def inbox(conn: Connection, workflow_filter: str | None, as_json: bool) -> None:
    """List the ids of the messages waiting in the inbox."""
    with mesh_errors():
        ids = conn.client().check_inbox(workflow_filter)
    if as_json:
        emit_json(ids)
        return
    for message_id in ids:
        click.echo(message_id)
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
    items: list[Message | Report] = []
    with mesh_errors():
        mesh = conn.client()
        if download_all and ack:
            items = mesh.check_and_download(folder)
        else:
            for message_id in message_ids or mesh.check_inbox():
                items.append(mesh.download_message(message_id, folder))
                if ack:
                    mesh.ack_download_message(message_id)
    reports = [item for item in items if isinstance(item, Report)]
    for report in reports:
        show_report(conn.stderr, report)
    if as_json:
        emit_json([item.to_json() for item in items])
        return
    for item in items:
        if isinstance(item, Message):
            click.echo(f"{item.message_id}  {item.size} bytes  from {item.sender}  → {item.path}")
    done = "downloaded and acknowledged" if ack else "downloaded (not acknowledged)"
    conn.stderr.print(f"{len(items)} message(s) {done}; {len(reports)} non-delivery report(s)")


@client.command()
@click.argument("message_ids", nargs=-1, required=True)
@json_option
@pass_connection
def ack(conn: Connection, message_ids: Sequence[str], as_json: bool) -> None:
    """Acknowledge messages (they leave the inbox)."""
    with mesh_errors():
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
    """Show the status of a message you sent."""
    with mesh_errors():
        mesh = conn.client()
        found = mesh.track_by_local_id(message_id) if by_local_id else mesh.track(message_id)
    if as_json:
        emit_json(found.to_json())
        return
    table = Table(show_header=False, box=None)
    for name, value in found.to_json().items():
        table.add_row(name, "" if value is None else str(value))
    conn.stdout.print(table)
    if found.status in ("undeliverable", "error"):
        conn.stderr.print(
            f"[bold red]message {found.message_id} was NOT delivered ({found.status})[/bold red]"
        )


@client.command()
@click.argument("ods_code")
@click.argument("workflow_id")
@json_option
@pass_connection
def lookup(conn: Connection, ods_code: str, workflow_id: str, as_json: bool) -> None:
    """Find the mailboxes of an organisation (ODS code) that receive a workflow."""
    with mesh_errors():
        found = conn.client().lookup(ods_code, workflow_id)
    if as_json:
        emit_json([endpoint.to_json() for endpoint in found])
        return
    for endpoint in found:
        click.echo(f"{endpoint.mailbox_id}  {endpoint.mailbox_name or ''}".rstrip())
    if not found:
        print("no mailbox found", file=sys.stderr)
