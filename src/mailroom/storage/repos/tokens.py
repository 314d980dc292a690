"""Single-use authentication tokens: a token hash may be recorded once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert
from sqlalchemy.exc import IntegrityError

from mailroom.storage.tables import auth_tokens


def record_once(conn: Connection, token_hash: str, expires_at: datetime) -> bool:
    """Record a token; False if it was already recorded (a replay)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(auth_tokens).values(token_hash=token_hash, expires_at=expires_at))
    except IntegrityError:
        return False
    return True


def forget_expired(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(auth_tokens).where(auth_tokens.c.expires_at < now)).rowcount
