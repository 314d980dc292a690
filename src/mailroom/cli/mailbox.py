"""``mailroom mailbox ...`` and ``mailroom workflow ...``: mailbox and workflow administration."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click
from rich.cells import cell_len, set_cell_size

from mailroom.cli.common import (
    data_dir_option,
    errors_as_usage,
    open_container,
    password_option,
    password_stdin_option,
    read_password,
)
from mailroom.container import Container
from mailroom.domain.mailboxes import Mailbox, normalise_mailbox_id
from mailroom.errors import Conflict, NotFound
from mailroom.services.mailboxes import MailboxChanges, MailboxSummary, describe_held, parse_jsonl


@click.group()
def mailbox() -> None:
    """Create, change, list, disable, remove and import mailboxes."""


def _mailbox_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    normalised = normalise_mailbox_id(value)
    if normalised is None:
        raise click.BadParameter("letters, digits, '_' and '-' only, at most 100")
    return normalised


mailbox_id_argument = click.argument("mailbox_id", callback=_mailbox_id)


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

    A running server refuses the old password within MAILROOM_MAILBOX_CACHE_TTL. The mailbox's
    JSON API password logins end: their refresh tokens at once, their access tokens within
    MAILROOM_API_REVOCATION_TTL (API keys and their logins stay).
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
    within MAILROOM_MAILBOX_CACHE_TTL. Its JSON API logins and API keys are revoked (access
    tokens stop within MAILROOM_API_REVOCATION_TTL).
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


@click.group()
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
