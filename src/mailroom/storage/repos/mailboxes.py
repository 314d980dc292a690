"""Mailbox and workflow rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from mailroom.domain.mailboxes import Mailbox, WorkflowRegistration, WorkflowRole
from mailroom.domain.messages import MessageStatus
from mailroom.storage.hot import NamedRow, Prepared, Tx
from mailroom.storage.tables import check_text, mailboxes, messages, storable, text_limits, workflows

_MAILBOX_TEXT = text_limits(mailboxes)
_WORKFLOW_TEXT = text_limits(workflows)
_COLUMNS = [column.name for column in mailboxes.columns]
_BY_ID = Prepared(lambda _: select(mailboxes).where(mailboxes.c.mailbox_id == bindparam("id")))


def _to_mailbox(row: Any) -> Mailbox:
    return Mailbox(
        mailbox_id=row.mailbox_id,
        mailbox_name=row.mailbox_name,
        password=row.password,
        ods_code=row.ods_code,
        org_code=row.org_code,
        org_name=row.org_name,
        billing_entity=row.billing_entity,
        active=row.active,
        last_handshake_at=row.last_handshake_at,
    )


def get(conn: Connection | Tx, mailbox_id: str) -> Mailbox | None:
    if not storable(mailbox_id):
        return None
    row = Tx.of(conn).first(_BY_ID, {"id": mailbox_id})
    return _to_mailbox(NamedRow(_COLUMNS, row)) if row else None


def list_all(conn: Connection) -> list[Mailbox]:
    return [_to_mailbox(row) for row in conn.execute(select(mailboxes).order_by(mailboxes.c.mailbox_id))]


def list_with_waiting(conn: Connection) -> list[tuple[Mailbox, int]]:
    """Every mailbox with the number of messages waiting in its inbox (accepted, not yet
    acknowledged), in one query: a count per mailbox on the inbox index."""
    waiting = (
        select(func.count())
        .select_from(messages)
        .where(
            messages.c.recipient_id == mailboxes.c.mailbox_id,
            messages.c.status == MessageStatus.ACCEPTED.value,
        )
        .scalar_subquery()
    )
    stmt = select(mailboxes, waiting.label("waiting")).order_by(mailboxes.c.mailbox_id)
    return [(_to_mailbox(row), int(row.waiting)) for row in conn.execute(stmt)]


def upsert(conn: Connection, mailbox: Mailbox, now: datetime) -> bool:
    """Insert or replace a mailbox's details; True when it was new."""
    values = {
        "mailbox_name": mailbox.mailbox_name,
        "password": mailbox.password,
        "ods_code": mailbox.ods_code,
        "org_code": mailbox.org_code,
        "org_name": mailbox.org_name,
        "billing_entity": mailbox.billing_entity,
        "active": mailbox.active,
    }
    check_text(_MAILBOX_TEXT, {"mailbox_id": mailbox.mailbox_id, **values})
    changed = conn.execute(
        update(mailboxes).where(mailboxes.c.mailbox_id == mailbox.mailbox_id).values(**values)
    ).rowcount
    if changed:
        return False
    conn.execute(insert(mailboxes).values(mailbox_id=mailbox.mailbox_id, created_at=now, **values))
    return True


def update_fields(conn: Connection, mailbox_id: str, values: Mapping[str, Any]) -> bool:
    """Change only the given columns of a mailbox; False if there is no such mailbox."""
    if not storable(mailbox_id):
        return False
    check_text(_MAILBOX_TEXT, values)
    stmt = update(mailboxes).where(mailboxes.c.mailbox_id == mailbox_id).values(**values)
    return bool(conn.execute(stmt).rowcount)


def remove(conn: Connection, mailbox_id: str) -> int:
    """Delete a mailbox and its workflow registrations; returns how many registrations went."""
    registrations = conn.execute(delete(workflows).where(workflows.c.mailbox_id == mailbox_id)).rowcount
    conn.execute(delete(mailboxes).where(mailboxes.c.mailbox_id == mailbox_id))
    return int(registrations)


def record_handshake(conn: Connection, mailbox_id: str, now: datetime) -> None:
    conn.execute(update(mailboxes).where(mailboxes.c.mailbox_id == mailbox_id).values(last_handshake_at=now))


def replace_workflow(
    conn: Connection, workflow_id: str, registrations: Sequence[WorkflowRegistration]
) -> None:
    rows = [
        {"workflow_id": r.workflow_id, "mailbox_id": r.mailbox_id, "role": r.role.value}
        for r in registrations
    ]
    for row in [{"workflow_id": workflow_id}, *rows]:
        check_text(_WORKFLOW_TEXT, row)
    conn.execute(delete(workflows).where(workflows.c.workflow_id == workflow_id))
    if rows:
        conn.execute(insert(workflows), rows)


def is_registered(conn: Connection, workflow_id: str, mailbox_id: str, role: WorkflowRole) -> bool:
    if not storable(workflow_id, mailbox_id):
        return False
    stmt = select(workflows.c.mailbox_id).where(
        workflows.c.workflow_id == workflow_id,
        workflows.c.mailbox_id == mailbox_id,
        workflows.c.role == role.value,
    )
    return conn.execute(stmt).first() is not None


def workflow_known(conn: Connection, workflow_id: str) -> bool:
    if not storable(workflow_id):
        return False
    stmt = select(workflows.c.mailbox_id).where(workflows.c.workflow_id == workflow_id).limit(1)
    return conn.execute(stmt).first() is not None


def receivers(conn: Connection, workflow_id: str, ods_code: str | None = None) -> list[Mailbox]:
    if not storable(workflow_id, ods_code):
        return []
    stmt = (
        select(mailboxes)
        .join(workflows, workflows.c.mailbox_id == mailboxes.c.mailbox_id)
        .where(workflows.c.workflow_id == workflow_id, workflows.c.role == WorkflowRole.RECEIVER.value)
        .order_by(mailboxes.c.mailbox_id)
    )
    if ods_code is not None:
        stmt = stmt.where(mailboxes.c.ods_code == ods_code)
    return [_to_mailbox(row) for row in conn.execute(stmt)]


def registrations(conn: Connection, workflow_id: str | None = None) -> list[WorkflowRegistration]:
    """Workflow registrations (of one workflow, or all) by workflow, role and mailbox."""
    stmt = select(workflows).order_by(workflows.c.workflow_id, workflows.c.role, workflows.c.mailbox_id)
    if workflow_id is not None:
        if not storable(workflow_id):
            return []
        stmt = stmt.where(workflows.c.workflow_id == workflow_id)
    return [
        WorkflowRegistration(row.workflow_id, row.mailbox_id, WorkflowRole(row.role))
        for row in conn.execute(stmt)
    ]


def add_registrations(conn: Connection, wanted: Sequence[WorkflowRegistration]) -> int:
    """Register what is not registered yet; returns how many were added."""
    added = 0
    for registration in wanted:
        row = {
            "workflow_id": registration.workflow_id,
            "mailbox_id": registration.mailbox_id,
            "role": registration.role.value,
        }
        check_text(_WORKFLOW_TEXT, row)
        if not is_registered(conn, registration.workflow_id, registration.mailbox_id, registration.role):
            conn.execute(insert(workflows), row)
            added += 1
    return added


def remove_workflow(conn: Connection, workflow_id: str) -> int:
    """Remove every registration of a workflow; returns how many there were."""
    if not storable(workflow_id):
        return 0
    return int(conn.execute(delete(workflows).where(workflows.c.workflow_id == workflow_id)).rowcount)
