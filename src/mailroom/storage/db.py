"""Engine factory and transactions.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` for writes (one writer at a time). PostgreSQL
runs at READ COMMITTED with a connection pool per process; writers that touch the same message
serialise on its row lock (``SELECT ... FOR UPDATE``), so several processes can share it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from mailroom.storage.group_commit import GroupWriter
from mailroom.storage.hot import Tx
from mailroom.storage.private import create_private_file, make_private_dir
from mailroom.storage.write_lock import WriteLock, lock_path_for

_WRITE = "mailroom_write"
T = TypeVar("T")


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer at a time. Queueing writers on a lock (within this process and
        # across processes, see storage.write_lock) is far cheaper than letting them spin in
        # SQLite's busy handler (which sleeps up to 100 ms).
        self._lock: WriteLock | None = None
        self._write_lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        self._writer: GroupWriter | None = None
        if self.is_sqlite:
            self._lock = self._write_lock = WriteLock(lock_path_for(engine.url.database))
            self._writer = GroupWriter(
                engine.raw_connection, lambda dbapi: Tx(dbapi, engine.dialect), self._lock
            )
        self._thread_reader = threading.local()
        self._readers: list[Any] = []  # every thread's reader connection, closed by dispose()
        self._readers_lock = threading.Lock()

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

    # -- from the event loop ----------------------------------------------------------------------
    async def write_async(self, work: Callable[[Tx], T], *, first: Callable[[Tx], None] | None = None) -> T:
        """Run ``work(tx)`` in a write transaction and return its result, from a coroutine.

        ``first(tx)``, when given, runs before ``work`` and is kept even if ``work`` raises (its
        changes are committed, ``work``'s rolled back, then ``work``'s exception is raised); if
        ``first`` raises, ``work`` does not run. (A request's token is spent even when the
        request fails.)

        SQLite: a job of the group-commit writer (``storage.group_commit``): it shares one
        durable commit with the jobs queued beside it, and the event loop never blocks.
        PostgreSQL: a transaction of its own in a worker thread (row locks stay short).
        """
        job = work if first is None else partial(_first_then, first=first, work=work)
        if self._writer is not None:
            result = await self._writer.submit(job)
        else:
            result = await anyio.to_thread.run_sync(self._write_now, job)
        if isinstance(result, _Raised):
            raise result.error
        return result

    def _write_now(self, work: Callable[[Tx], T]) -> T:
        with self.hot_write() as tx:
            return work(tx)

    async def read_async(self, work: Callable[[Tx], T]) -> T:
        """Run ``work(tx)`` in a read transaction, from a coroutine.

        SQLite: right here on the event loop thread, on a connection of its own. A read of a
        few indexed rows takes tens of microseconds, less than handing it to a thread; WAL
        readers never wait for the writer. PostgreSQL: in a worker thread (a network round trip).
        """
        if not self.is_sqlite:
            return await anyio.to_thread.run_sync(self._read_now, work)
        return self._read_now(work)

    def _read_now(self, work: Callable[[Tx], T]) -> T:
        if not self.is_sqlite:
            with self.hot_read() as tx:
                return work(tx)
        pooled = getattr(self._thread_reader, "pooled", None)
        if pooled is None:
            pooled = self._thread_reader.pooled = self.engine.raw_connection()
            with self._readers_lock:
                self._readers.append(pooled)
        dbapi: Any = pooled.driver_connection
        dbapi.execute("BEGIN")
        try:
            return work(Tx(dbapi, self.engine.dialect))
        finally:
            dbapi.rollback()  # a read: nothing to keep; ends the snapshot

    def dispose(self) -> None:
        if self._writer is not None:
            self._writer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for pooled in readers:
            with contextlib.suppress(Exception):
                pooled.close()
        self.engine.dispose()
        if self._lock is not None:
            self._lock.close()


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
    _create_database_file(make_url(url).database)
    engine = create_engine(url, pool_size=20, max_overflow=20, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # savepoints' statement journals in memory, not in a temp file made and unlinked per
        # write transaction (they hold only what a rollback to the savepoint needs)
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _create_database_file(database: str | None) -> None:
    """Make a SQLite database file (and its directory) private before SQLite opens it.

    SQLite gives the ``-wal`` and ``-shm`` files it creates the database file's own mode, so a
    file made here with mode 0600 keeps all three private (they hold mailbox passwords), however
    the umask and the directory's mode are set. Only the engine is made here, never a request.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    make_private_dir(path.parent)
    create_private_file(path)


class _Raised:
    """``work``'s exception, carried past a commit that keeps ``first``'s changes."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _first_then(tx: Tx, first: Callable[[Tx], None], work: Callable[[Tx], T]) -> T | _Raised:
    first(tx)
    tx.dbapi.execute("SAVEPOINT work")
    try:
        result = work(tx)
    except Exception as exc:
        tx.dbapi.execute("ROLLBACK TO SAVEPOINT work")
        tx.dbapi.execute("RELEASE SAVEPOINT work")
        return _Raised(exc)
    tx.dbapi.execute("RELEASE SAVEPOINT work")
    return result
