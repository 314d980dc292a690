"""SQL for the JSON messaging API's credentials: API keys, logins and their refresh tokens.

Secrets are never stored: a key's secret and a refresh token are kept as SHA-256 hex digests
(``secret_hash``, ``token_hash``), so reading the database gives nothing a client could present.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from mailroom.storage.tables import (
    api_keys,
    api_logins,
    check_text,
    mailboxes,
    refresh_tokens,
    storable,
    text_limits,
)

_KEY_TEXT = text_limits(api_keys)
_LOGIN_TEXT = text_limits(api_logins)


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    mailbox_id: str
    secret_hash: str
    read_only: bool
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class LoginRow:
    login_id: str
    mailbox_id: str
    key_id: str | None
    read_only: bool
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class MailboxState:
    """What a login needs of its mailbox: the MESH password and whether it may log in now."""

    mailbox_id: str
    password: str
    active: bool
    created_at: datetime


def _key(row: Any) -> KeyRow:
    return KeyRow(
        row.key_id,
        row.mailbox_id,
        row.secret_hash,
        bool(row.read_only),
        row.label,
        row.created_at,
        row.last_used_at,
        row.revoked_at,
    )


def _login(row: Any) -> LoginRow:
    return LoginRow(
        row.login_id,
        row.mailbox_id,
        row.key_id,
        bool(row.read_only),
        row.created_at,
        row.expires_at,
        row.revoked_at,
    )


# -- mailboxes ------------------------------------------------------------------------------------


def mailbox_state(conn: Connection, mailbox_id: str, *, lock: bool = False) -> MailboxState | None:
    """The mailbox's password, state and creation time; ``lock`` holds its row (PostgreSQL) for
    the rest of the transaction, so checks of a per-mailbox count cannot race."""
    if not storable(mailbox_id):
        return None
    stmt = select(mailboxes.c.mailbox_id, mailboxes.c.password, mailboxes.c.active, mailboxes.c.created_at)
    stmt = stmt.where(mailboxes.c.mailbox_id == mailbox_id)
    if lock and conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        return None
    return MailboxState(row.mailbox_id, row.password, bool(row.active), row.created_at)


# -- API keys -------------------------------------------------------------------------------------


def insert_key(conn: Connection, key: KeyRow) -> None:
    values = {
        "key_id": key.key_id,
        "mailbox_id": key.mailbox_id,
        "secret_hash": key.secret_hash,
        "read_only": key.read_only,
        "label": key.label,
        "created_at": key.created_at,
    }
    check_text(_KEY_TEXT, values)
    conn.execute(insert(api_keys).values(**values))


def get_key(conn: Connection, key_id: str) -> KeyRow | None:
    if not storable(key_id):
        return None
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    return None if row is None else _key(row)


def keys(conn: Connection, mailbox_id: str | None = None) -> list[KeyRow]:
    """Every key (revoked ones too), or a mailbox's, by mailbox then age."""
    stmt = select(api_keys).order_by(api_keys.c.mailbox_id, api_keys.c.created_at, api_keys.c.key_id)
    if mailbox_id is not None:
        if not storable(mailbox_id):
            return []
        stmt = stmt.where(api_keys.c.mailbox_id == mailbox_id)
    return [_key(row) for row in conn.execute(stmt)]


def count_live_keys(conn: Connection, mailbox_id: str) -> int:
    stmt = select(func.count()).where(api_keys.c.mailbox_id == mailbox_id, api_keys.c.revoked_at.is_(None))
    return int(conn.execute(stmt).scalar_one())


def key_used(conn: Connection, key_id: str, now: datetime) -> None:
    conn.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=now))


def revoke_key(conn: Connection, key_id: str, now: datetime) -> bool:
    """Revoke a key (kept as first revoked) and every live login made with it; False if unknown."""
    if get_key(conn, key_id) is None:
        return False
    conn.execute(
        update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    conn.execute(
        update(api_logins)
        .where(api_logins.c.key_id == key_id, api_logins.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="API key revoked")
    )
    return True


# -- logins and refresh tokens --------------------------------------------------------------------


def insert_login(conn: Connection, login: LoginRow) -> None:
    values = {
        "login_id": login.login_id,
        "mailbox_id": login.mailbox_id,
        "key_id": login.key_id,
        "read_only": login.read_only,
        "created_at": login.created_at,
        "expires_at": login.expires_at,
    }
    check_text(_LOGIN_TEXT, values)
    conn.execute(insert(api_logins).values(**values))


def insert_refresh_token(conn: Connection, token_hash: str, login_id: str, now: datetime) -> None:
    conn.execute(insert(refresh_tokens).values(token_hash=token_hash, login_id=login_id, issued_at=now))


def refresh_token_login(conn: Connection, token_hash: str) -> tuple[LoginRow, datetime | None] | None:
    """The login a refresh token belongs to and when the token was spent (None: not yet)."""
    stmt = (
        select(api_logins, refresh_tokens.c.spent_at)
        .select_from(refresh_tokens.join(api_logins, api_logins.c.login_id == refresh_tokens.c.login_id))
        .where(refresh_tokens.c.token_hash == token_hash)
    )
    row = conn.execute(stmt).first()
    return None if row is None else (_login(row), row.spent_at)


def spend_refresh_token(conn: Connection, token_hash: str, now: datetime) -> bool:
    """Mark a refresh token spent; False if it was spent already (by this or a concurrent call:
    on PostgreSQL the second ``UPDATE`` waits for the first to commit and then matches nothing)."""
    stmt = (
        update(refresh_tokens)
        .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.spent_at.is_(None))
        .values(spent_at=now)
    )
    return bool(conn.execute(stmt).rowcount)


def revoke_login(conn: Connection, login_id: str, now: datetime, reason: str) -> None:
    conn.execute(
        update(api_logins)
        .where(api_logins.c.login_id == login_id, api_logins.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason[:200])
    )


def revoke_mailbox_logins(
    conn: Connection, mailbox_id: str, now: datetime, reason: str, *, key_logins: bool = True
) -> int:
    """Revoke a mailbox's live logins (only its password logins unless ``key_logins``); how many."""
    stmt = (
        update(api_logins)
        .where(api_logins.c.mailbox_id == mailbox_id, api_logins.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason[:200])
    )
    if not key_logins:
        stmt = stmt.where(api_logins.c.key_id.is_(None))
    return int(conn.execute(stmt).rowcount)


def revoke_mailbox_keys(conn: Connection, mailbox_id: str, now: datetime) -> int:
    """Revoke every live API key of a mailbox (not its logins: ``revoke_mailbox_logins``); how many."""
    stmt = (
        update(api_keys)
        .where(api_keys.c.mailbox_id == mailbox_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(conn.execute(stmt).rowcount)


def login_alive(conn: Connection, login_id: str, now: datetime) -> bool:
    """Whether a login may still be used: not revoked, not past its chain's lifetime, its mailbox
    there and active (and not made again since the login: a removed and re-added mailbox does
    not inherit old logins), and its API key, if it logged in with one, not revoked."""
    if not storable(login_id):
        return False
    stmt = (
        select(
            api_logins.c.revoked_at,
            api_logins.c.expires_at,
            api_logins.c.created_at,
            api_logins.c.key_id,
            mailboxes.c.active,
            mailboxes.c.created_at.label("mailbox_created_at"),
            api_keys.c.key_id.label("found_key"),
            api_keys.c.revoked_at.label("key_revoked_at"),
        )
        .select_from(
            api_logins.outerjoin(mailboxes, mailboxes.c.mailbox_id == api_logins.c.mailbox_id).outerjoin(
                api_keys, api_keys.c.key_id == api_logins.c.key_id
            )
        )
        .where(api_logins.c.login_id == login_id)
    )
    row = conn.execute(stmt).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return False
    if not row.active or row.mailbox_created_at is None or row.mailbox_created_at > row.created_at:
        return False
    return row.key_id is None or (row.found_key is not None and row.key_revoked_at is None)


def forget_expired(conn: Connection, now: datetime) -> int:
    """Delete logins past their chain's lifetime with their refresh tokens; how many logins."""
    expired = select(api_logins.c.login_id).where(api_logins.c.expires_at < now)
    conn.execute(delete(refresh_tokens).where(refresh_tokens.c.login_id.in_(expired)))
    return int(conn.execute(delete(api_logins).where(and_(api_logins.c.expires_at < now))).rowcount)
