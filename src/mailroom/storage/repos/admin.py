"""SQL for administrators and the audit log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from mailroom.domain.admin import AdminUser, AuditEntry, Privilege
from mailroom.storage.tables import admin_users, audit_log, check_text, text_limits

_AUDIT_LIMITS = text_limits(audit_log)


def _user(row: Row[Any]) -> AdminUser:
    return AdminUser(row.name, Privilege(row.privilege), row.created_at, row.password_changed_at)


def get_user(conn: Connection, name: str) -> tuple[AdminUser, str] | None:
    """The administrator and their password hash."""
    row = conn.execute(select(admin_users).where(admin_users.c.name == name)).first()
    return None if row is None else (_user(row), row.password_hash)


def users(conn: Connection) -> list[AdminUser]:
    return [_user(row) for row in conn.execute(select(admin_users).order_by(admin_users.c.name))]


def insert_user(conn: Connection, user: AdminUser, password_hash: str) -> None:
    conn.execute(
        insert(admin_users).values(
            name=user.name,
            password_hash=password_hash,
            privilege=user.privilege.value,
            created_at=user.created_at,
            password_changed_at=user.password_changed_at,
        )
    )


def set_password_hash(conn: Connection, name: str, password_hash: str, now: datetime) -> bool:
    changed = conn.execute(
        update(admin_users)
        .where(admin_users.c.name == name)
        .values(password_hash=password_hash, password_changed_at=now)
    ).rowcount
    return bool(changed)


def set_privilege(conn: Connection, name: str, privilege: Privilege) -> bool:
    changed = conn.execute(
        update(admin_users).where(admin_users.c.name == name).values(privilege=privilege.value)
    ).rowcount
    return bool(changed)


def delete_user(conn: Connection, name: str) -> bool:
    return bool(conn.execute(delete(admin_users).where(admin_users.c.name == name)).rowcount)


def count_admins(conn: Connection) -> int:
    rows = conn.execute(select(admin_users.c.name).where(admin_users.c.privilege == Privilege.ADMIN.value))
    return len(rows.all())


def add_audit(conn: Connection, entry: AuditEntry) -> None:
    values = {
        "at": entry.at,
        "user": entry.user[:100],
        "peer": entry.peer[:100],
        "function": entry.function[:100],
        "arguments": json.dumps(entry.arguments),
        "outcome": entry.outcome,
        "error": entry.error,
        "job_id": entry.job_id,
    }
    check_text(_AUDIT_LIMITS, values)
    conn.execute(insert(audit_log).values(**values))


def audit_entries(
    conn: Connection,
    *,
    user: str = "",
    function: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
    if user:
        stmt = stmt.where(audit_log.c.user == user)
    if function:
        stmt = stmt.where(audit_log.c.function == function)
    if since is not None:
        stmt = stmt.where(audit_log.c.at >= since)
    if until is not None:
        stmt = stmt.where(audit_log.c.at < until)
    return [
        AuditEntry(
            entry_id=row.id,
            at=row.at,
            user=row.user,
            peer=row.peer,
            function=row.function,
            arguments=json.loads(row.arguments),
            outcome=row.outcome,
            error=row.error,
            job_id=row.job_id,
        )
        for row in conn.execute(stmt)
    ]


def forget_audit(conn: Connection, before: datetime) -> int:
    return conn.execute(delete(audit_log).where(audit_log.c.at < before)).rowcount
