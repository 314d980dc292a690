"""Engine factory and transactions.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` for writes (one writer at a time). PostgreSQL
runs at READ COMMITTED with a connection pool per process; writers that touch the same message
serialise on its row lock (``SELECT ... FOR UPDATE``), so several processes can share it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from mailroom.storage.hot import Tx

_WRITE = "mailroom_write"


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer at a time. Queueing writers of this process on a lock is far
        # cheaper than letting them spin in SQLite's busy handler (which sleeps up to 100 ms).
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue instead of failing)."""
        with (
            self._write_lock,
            self.engine.connect().execution_options(**{_WRITE: True}) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def hot_write(self) -> Iterator[Tx]:
        """A write transaction for the hot statements (``storage.hot``), straight on the driver.

        The same transaction as ``write()`` (``BEGIN IMMEDIATE`` on SQLite behind this process's
        write lock, READ COMMITTED on PostgreSQL; committed on exit, rolled back on an error),
        without a SQLAlchemy ``Connection``, its ``begin`` event and its commit machinery
        (about 100 µs of CPU per transaction).
        """
        with self._write_lock, self._hot("BEGIN IMMEDIATE") as tx:
            yield tx

    @contextmanager
    def hot_read(self) -> Iterator[Tx]:
        with self._hot("BEGIN") as tx:
            yield tx

    @contextmanager
    def _hot(self, begin: str) -> Iterator[Tx]:
        pooled = self.engine.raw_connection()
        try:
            dbapi: Any = pooled.driver_connection
            if self.is_sqlite:  # isolation_level None: the driver leaves BEGIN to us
                dbapi.execute(begin)
            try:
                yield Tx(dbapi, self.engine.dialect)
            except BaseException:
                dbapi.rollback()
                raise
            dbapi.commit()
        finally:
            pooled.close()  # back to the pool (which rolls back anything left open)

    def dispose(self) -> None:
        self.engine.dispose()


def create_database(
    url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10, max_overflow: int = 20
) -> Database:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return Database(_sqlite_engine(url, sqlite_synchronous))
    options: dict[str, Any] = {}
    if parsed.get_backend_name() in ("postgres", "postgresql"):
        if parsed.drivername in ("postgres", "postgresql"):  # psycopg 3 unless a driver is named
            parsed = parsed.set(drivername="postgresql+psycopg")
        options = {
            "isolation_level": "READ COMMITTED",
            # timestamps are stored as naive UTC; a session time zone of UTC keeps now() and
            # any ad-hoc SQL an operator runs consistent with them
            "connect_args": {"options": "-c timezone=UTC", "application_name": "mailroom"},
        }
    engine = create_engine(
        parsed, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow, **options
    )
    return Database(engine)


def _sqlite_engine(url: str, synchronous: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=20, max_overflow=20, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
