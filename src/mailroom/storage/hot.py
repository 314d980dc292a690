"""The hot statements, cheaply: Core statements compiled once per dialect, run on the DBAPI cursor.

Every small message runs a handful of statements (token insert, message, event and chunk
inserts, message and chunk by id, inbox page, acknowledgement). Through SQLAlchemy's
``Connection.execute`` each costs about 200 µs of CPU (cache key, execution context, result
processing), against under 10 µs for the driver itself. A ``Prepared`` statement is still written
as Core against ``tables.py``, but compiled once per dialect (qmark for sqlite3, pyformat for
psycopg), and a ``Tx`` runs it on the DBAPI connection, converting only what the two drivers
return differently: times (naive UTC in, aware UTC out; SQLite stores them as text in
SQLAlchemy's format) and booleans (0/1 on SQLite).

A ``Tx`` is either a transaction of its own (``Database.hot_write``/``hot_read``: no SQLAlchemy
``Connection``, no ``begin`` event) or a view of a SQLAlchemy ``Connection``'s transaction
(``Tx.of(conn)``), so repository functions serve both kinds of caller with one statement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Connection, Dialect
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.elements import ClauseElement

from mailroom.storage.tables import UTCDateTime

Row = tuple[Any, ...]
Convert = Callable[[Any], Any]


def _sqlite_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _naive_time(value: Any) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _flag(value: Any) -> Any:
    return None if value is None else bool(value)


class _Compiled:
    __slots__ = ("converters", "defaults", "names", "sql")

    def __init__(self, compiled: Compiled, sqlite: bool, types: Sequence[Any]) -> None:
        self.sql = compiled.string
        positional = compiled.positiontup  # type: ignore[attr-defined]
        self.names: tuple[str, ...] | None = tuple(positional) if positional is not None else None
        # values written into the statement (``status == "accepted"``): bound on every run
        self.defaults = {
            name: bind.effective_value
            for bind, name in compiled.bind_names.items()  # type: ignore[attr-defined]
            if not bind.required
        }
        converters: list[tuple[int, Convert]] = []
        for index, type_ in enumerate(types):
            if isinstance(type_, UTCDateTime):
                converters.append((index, _sqlite_time if sqlite else _naive_time))
            elif isinstance(type_, Boolean) and sqlite:
                converters.append((index, _flag))
        self.converters = tuple(converters)


class Prepared:
    """One statement, compiled the first time each dialect runs it.

    ``build(dialect_name)`` returns the Core statement (most ignore the name; an upsert needs the
    dialect's own ``insert``). ``column_keys`` names the parameters of an INSERT or the SET of an
    UPDATE, as ``Compiled`` takes them.
    """

    def __init__(
        self, build: Callable[[str], ClauseElement], column_keys: Sequence[str] | None = None
    ) -> None:
        self._build = build
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            with self._lock:
                stmt = self._build(dialect.name)
                compiled = stmt.compile(dialect=dialect, column_keys=self._column_keys)
                selected: Any = getattr(stmt, "selected_columns", None)
                if selected is None:
                    selected = getattr(stmt, "_returning", ())
                types = [column.type for column in selected]
                found = self._compiled[dialect.name] = _Compiled(compiled, dialect.name == "sqlite", types)
        return found


class Tx:
    """Runs ``Prepared`` statements on one DBAPI connection, inside a transaction someone else ends."""

    __slots__ = ("dbapi", "dialect", "sqlite")

    def __init__(self, dbapi: Any, dialect: Dialect) -> None:
        self.dbapi = dbapi
        self.dialect = dialect
        self.sqlite = dialect.name == "sqlite"

    @classmethod
    def of(cls, conn: Connection | Tx) -> Tx:
        """The transaction ``conn`` is in (it must have begun one, as ``Database`` connections have)."""
        if isinstance(conn, Tx):
            return conn
        return cls(conn.connection.driver_connection, conn.dialect)

    def _execute(self, stmt: Prepared, params: Mapping[str, Any]) -> tuple[Any, _Compiled]:
        compiled = stmt.compiled(self.dialect)
        # every statement of every message comes through here: one pass, times bound in place
        bound = {k: self._bind(v) if isinstance(v, datetime) else v for k, v in params.items()}
        if compiled.defaults:
            bound = {**compiled.defaults, **bound}
        names = compiled.names
        if names is not None:
            cursor = self.dbapi.execute(compiled.sql, [bound[name] for name in names])
        else:
            cursor = self.dbapi.execute(compiled.sql, bound)
        return cursor, compiled

    def _bind(self, value: datetime) -> Any:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # SQLAlchemy's SQLite format (always with microseconds), so text comparisons and rows
        # written by either path agree
        return naive.isoformat(" ", "microseconds") if self.sqlite else naive

    def execute(self, stmt: Prepared, params: Mapping[str, Any]) -> int:
        """Run a statement without rows; returns the row count."""
        cursor, _ = self._execute(stmt, params)
        return int(cursor.rowcount)

    def rows(self, stmt: Prepared, params: Mapping[str, Any]) -> list[Row]:
        cursor, compiled = self._execute(stmt, params)
        fetched = cursor.fetchall()
        if not compiled.converters:
            return [tuple(row) for row in fetched]
        return [_convert(row, compiled.converters) for row in fetched]

    def first(self, stmt: Prepared, params: Mapping[str, Any]) -> Row | None:
        cursor, compiled = self._execute(stmt, params)
        row = cursor.fetchone()
        if row is None:
            return None
        # the statements run here return one row at most or are read to the end by ``rows``;
        # a cursor left with rows would keep a read lock on SQLite
        cursor.fetchall()
        return _convert(row, compiled.converters) if compiled.converters else tuple(row)


class NamedRow:
    """A positional row read by attribute, as a SQLAlchemy ``Row`` is (for the row mappers)."""

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        self.__dict__.update(zip(names, values, strict=True))


def _convert(row: Sequence[Any], converters: Sequence[tuple[int, Convert]]) -> Row:
    values = list(row)
    for index, convert in converters:
        values[index] = convert(values[index])
    return tuple(values)
