"""Copy a whole installation's data into another database and payload store.

Used by ``mailroom db migrate-data`` to move an embedded installation (SQLite and payload files)
to PostgreSQL and S3, or between any two stacks. The copy is:

- **safe to repeat and to resume**: rows go in with ``INSERT ... ON CONFLICT DO NOTHING`` in
  batches that each commit, and a payload already in the target is kept once its checksum
  matches, so a run stopped anywhere is finished by running it again;
- **verified**: every payload copied (or found) is hashed and compared with the SHA-256 its
  chunk row recorded; a mismatch or a missing source payload is reported, never ignored;
- **payloads before rows**: a message's rows reach the target only after the run has copied
  every payload, so the target never lists a message whose bytes are not there yet.

Administrators (their password hashes), the audit log, jobs and their logs are copied (a job
left running in the source is recovered in the target like any job whose process stopped:
resumed or failed). Used-token hashes (the replay guard) and the periodic schedules are not
copied: the tokens expire within hours, the schedules start afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadMissing, PayloadStore
from mailroom.storage.tables import (
    admin_users,
    api_keys,
    api_logins,
    attachments,
    audit_log,
    chunks,
    deliveries,
    envelope_attachments,
    envelopes,
    job_log,
    jobs,
    mailboxes,
    message_events,
    messages,
    refresh_tokens,
    server_keys,
    workflows,
)

#: Copied in this order (parents before children).
TABLES: Sequence[Table] = (
    mailboxes,
    workflows,
    messages,
    message_events,
    chunks,
    jobs,
    job_log,
    admin_users,
    audit_log,
    envelopes,
    attachments,
    envelope_attachments,
    deliveries,
    api_keys,
    api_logins,
    refresh_tokens,
    server_keys,
)
BATCH = 500


class TransferRefused(Exception):
    """The target is not a place this source can be copied into."""


@dataclass
class TransferReport:
    rows: dict[str, int] = field(default_factory=dict)  # table → rows inserted by this run
    payloads_copied: int = 0
    payloads_verified: int = 0  # already in the target with the right checksum
    bytes_copied: int = 0
    missing: list[str] = field(default_factory=list)  # payload keys the source no longer has
    mismatched: list[str] = field(default_factory=list)  # keys whose bytes disagree with their row

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


Progress = Callable[[str], None]


def copy_installation(
    source: Database,
    source_payloads: PayloadStore,
    target: Database,
    target_payloads: PayloadStore,
    *,
    progress: Progress = lambda _line: None,
) -> TransferReport:
    """Copy every row and payload of ``source`` into ``target`` (both migrated to head)."""
    check_target(source, target)
    report = TransferReport()
    copy_payloads(source, source_payloads, target_payloads, report, progress)
    for table in TABLES:
        report.rows[table.name] = copy_rows(source, target, table)
        progress(f"{table.name}: {report.rows[table.name]} rows copied")
    if target.engine.dialect.name == "postgresql":
        _reset_sequence(target, message_events)
        _reset_sequence(target, job_log)
        _reset_sequence(target, audit_log)
    return report


def check_target(source: Database, target: Database) -> None:
    """Refuse a target holding messages the source does not have (an exchange in use): their
    event ids could collide with the source's, and the copy would no longer be a copy."""
    if str(source.engine.url) == str(target.engine.url):
        raise TransferRefused("source and target are the same database")
    with target.read() as conn:
        if not conn.execute(select(func.count()).select_from(messages)).scalar_one():
            return
    for batch in _keys(target, messages):
        ids = [row[0] for row in batch]
        with source.read() as conn:
            known = set(
                conn.execute(select(messages.c.message_id).where(messages.c.message_id.in_(ids))).scalars()
            )
        if len(known) != len(ids):
            raise TransferRefused(
                "the target database holds messages the source does not: it is in use, not a copy of "
                "this installation (migrate into an empty database)"
            )


def copy_rows(source: Database, target: Database, table: Table) -> int:
    """Insert the source's rows of ``table`` that the target lacks, one committed batch at a time."""
    inserted = 0
    for rows in _rows(source, table):
        with target.write() as conn:
            inserted += _insert_missing(conn, table, rows)
    return inserted


def copy_payloads(
    source: Database,
    source_payloads: PayloadStore,
    target_payloads: PayloadStore,
    report: TransferReport,
    progress: Progress,
) -> None:
    """Every stored (not purged) chunk payload, copied unless the target has it already."""
    for rows in _rows(source, chunks):
        with source.read() as conn:
            purged = set(
                conn.execute(
                    select(messages.c.message_id).where(
                        messages.c.message_id.in_({row["message_id"] for row in rows}),
                        messages.c.payload_purged.is_(True),
                    )
                ).scalars()
            )
        for row in rows:
            if row["message_id"] not in purged:
                _copy_payload(row, source_payloads, target_payloads, report)
        progress(
            f"payloads: {report.payloads_copied} copied ({report.bytes_copied} bytes), "
            f"{report.payloads_verified} already there"
        )
    for rows in _rows(source, attachments):  # the JSON API's attachments, stored once each
        for row in rows:
            if not row["purged"]:
                _copy_payload(row, source_payloads, target_payloads, report)


def _copy_payload(
    row: dict[str, Any], source: PayloadStore, target: PayloadStore, report: TransferReport
) -> None:
    key, expected = row["payload_key"], row["sha256"]
    if not key:  # a small chunk kept in its row: its bytes travel with the row
        return
    present = _digest(target, key)
    if present == expected:
        report.payloads_verified += 1
        return
    try:
        stored = target.put(key, source.open(key))
    except PayloadMissing:
        report.missing.append(key)
        return
    if stored.sha256 != expected:
        target.delete(key)  # never leave bytes that disagree with their row
        report.mismatched.append(key)
        return
    report.payloads_copied += 1
    report.bytes_copied += stored.size


def _digest(store: PayloadStore, key: str) -> str | None:
    try:
        pieces = store.open(key)
        digest = hashlib.sha256()
        for piece in pieces:
            digest.update(piece)
    except PayloadMissing:
        return None
    return digest.hexdigest()


def _rows(db: Database, table: Table) -> Iterator[list[dict[str, Any]]]:
    """Every row of ``table`` in primary-key order, a batch at a time (keyset paging)."""
    key = list(table.primary_key.columns)
    after: tuple[Any, ...] | None = None
    while True:
        stmt = select(table).order_by(*key).limit(BATCH)
        if after is not None:
            stmt = stmt.where(tuple_(*key) > tuple_(*after))
        with db.read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
        if not rows:
            return
        yield rows
        after = tuple(rows[-1][column.name] for column in key)


def _keys(db: Database, table: Table) -> Iterator[list[tuple[Any, ...]]]:
    for rows in _rows(db, table):
        yield [tuple(row[column.name] for column in table.primary_key.columns) for row in rows]


def _insert_missing(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    stmt = insert(table).values(rows).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return len(conn.execute(stmt).all())


def _reset_sequence(db: Database, table: Table) -> None:
    """Explicit ids were inserted: move the id sequence past them."""
    with db.write() as conn:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )
        )
