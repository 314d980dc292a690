"""Single-use authentication tokens: a token hash may be recorded once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ClauseElement

from mailroom.storage.hot import Prepared, Tx
from mailroom.storage.tables import auth_tokens

_ASYNC_COMMIT = Prepared(lambda _: text("SET LOCAL synchronous_commit = off"))


def _insert_once(dialect: str) -> ClauseElement:
    insert_stmt = sqlite_insert if dialect == "sqlite" else postgresql_insert
    return (
        insert_stmt(auth_tokens)
        .on_conflict_do_nothing(index_elements=["token_hash"])
        .returning(auth_tokens.c.token_hash)
    )


_INSERT_ONCE = Prepared(_insert_once, ["token_hash", "expires_at"])


def record_once(conn: Connection | Tx, token_hash: str, expires_at: datetime, *, alone: bool = True) -> bool:
    """Record a token; False if it was already recorded (a replay).

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (SQLite and PostgreSQL): a row comes back
    only if this call inserted it, atomically, without a savepoint or an exception on replay.
    The primary key decides between concurrent callers in different processes: PostgreSQL
    makes the second insert of a hash wait for the first to commit, then do nothing.
    (Not the row count: SQLAlchemy does not keep it for INSERT on PostgreSQL, where it reads -1.)
    """
    tx = Tx.of(conn)
    if alone and not tx.sqlite:
        # A transaction that only records a token need not wait for PostgreSQL's WAL flush: a
        # crash loses at most the last moments' entries, which only reopens a replay window for
        # tokens seconds old; the write is still atomic, so concurrent replays stay refused.
        # Never when the transaction also writes a message (``alone=False``): that must be durable.
        tx.execute(_ASYNC_COMMIT, {})
    return tx.first(_INSERT_ONCE, {"token_hash": token_hash, "expires_at": expires_at}) is not None


def forget_expired(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(auth_tokens).where(auth_tokens.c.expires_at < now)).rowcount
