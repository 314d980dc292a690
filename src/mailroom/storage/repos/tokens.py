"""Single-use authentication tokens: a token hash may be recorded once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailroom.storage.tables import auth_tokens


def record_once(conn: Connection, token_hash: str, expires_at: datetime) -> bool:
    """Record a token; False if it was already recorded (a replay).

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (SQLite and PostgreSQL): a row comes back
    only if this call inserted it, atomically, without a savepoint or an exception on replay.
    The primary key decides between concurrent callers in different processes: PostgreSQL
    makes the second insert of a hash wait for the first to commit, then do nothing.
    (Not the row count: SQLAlchemy does not keep it for INSERT on PostgreSQL, where it reads -1.)
    """
    values = {"token_hash": token_hash, "expires_at": expires_at}
    insert_stmt = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    stmt = (
        insert_stmt(auth_tokens)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["token_hash"])
        .returning(auth_tokens.c.token_hash)
    )
    return conn.execute(stmt).first() is not None


def forget_expired(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(auth_tokens).where(auth_tokens.c.expires_at < now)).rowcount
