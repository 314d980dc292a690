"""``mailroom token ...``: API keys of the JSON messaging API (``tokenID`` and ``tokenSecret``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailroom.cli.common import data_dir_option, errors_as_usage, open_container
from mailroom.cli.mailbox import mailbox_id_argument
from mailroom.services.api_tokens import ApiKeyInfo


@click.group()
def token() -> None:
    """Create, list and revoke API keys of the JSON messaging API."""


@token.command("create")
@mailbox_id_argument
@click.option("--read-only", is_flag=True, help="Logins with this key may read, not send or change.")
@click.option("--label", default="", help="What the key is for (shown by `token list`).")
@data_dir_option
def token_create(mailbox_id: str, read_only: bool, label: str, data_dir: Path | None) -> None:
    """Create an API key for mailbox MAILBOX_ID and print its id and secret.

    A client logs in with them (`POST /authorize` with `tokenID` and `tokenSecret`). The secret is
    shown this once: only its SHA-256 digest is stored. A mailbox has at most 10 live keys.
    """
    with errors_as_usage():
        created = open_container(data_dir).api_tokens.create_key(mailbox_id, read_only=read_only, label=label)
    click.echo(f"key id:  {created.info.key_id}")
    click.echo(f"secret:  {created.secret}")
    click.echo("The secret is not stored and cannot be shown again: keep it now.", err=True)


@token.command("list")
@click.argument("mailbox_id", required=False)
@data_dir_option
def token_list(mailbox_id: str | None, data_dir: Path | None) -> None:
    """List API keys (revoked ones too), of every mailbox or of MAILBOX_ID. Secrets are never shown."""
    keys = open_container(data_dir).api_tokens.list_keys(mailbox_id)
    if not keys:
        click.echo("no API keys: create one with `mailroom token create MAILBOX`")
        return
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a file: whole lines, nothing cut to 80 columns
        console = Console(highlight=False, width=1000)
    console.print(key_table(keys))


def key_table(keys: list[ApiKeyInfo]) -> Table:
    """A row per key; ids are never cut (they are what `token revoke` takes). Labels are shown as
    text, never read as rich markup."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("key id", no_wrap=True, min_width=max(len(key.key_id) for key in keys))
    table.add_column("mailbox", no_wrap=True, min_width=max(len(key.mailbox_id) for key in keys))
    table.add_column("access", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("label", overflow="fold", min_width=8)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("last used (UTC)", no_wrap=True)
    for key in keys:
        state = Text("revoked", "red") if key.revoked_at is not None else Text("live", "green")
        table.add_row(
            key.key_id,
            key.mailbox_id,
            "read-only" if key.read_only else "read-write",
            state,
            Text(key.label or "-"),
            _when(key.created_at),
            _when(key.last_used_at),
        )
    return table


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


@token.command("revoke")
@click.argument("key_id")
@data_dir_option
def token_revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke API key KEY_ID and end every login made with it.

    Its access tokens stop working on a running server within MAILROOM_API_REVOCATION_TTL.
    """
    with errors_as_usage():
        open_container(data_dir).api_tokens.revoke_key(key_id)
    click.echo(f"revoked API key {key_id}")


@click.command("receipt-certificate")
@data_dir_option
def receipt_certificate(data_dir: Path | None) -> None:
    """Print the certificate that signs delivery receipts (PEM), for senders to verify them
    with (`openssl smime -verify -in receipt.eml -CAfile cert.pem`). Made now if there is none."""
    from cryptography.hazmat.primitives.serialization import Encoding

    with errors_as_usage():
        certificate = open_container(data_dir).messaging.receipt_certificate()
    click.echo(certificate.public_bytes(Encoding.PEM).decode(), nl=False)
