"""Mailbox administration, handshake, endpoint lookup and workflow search."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mailroom.clock import Clock
from mailroom.domain.mailboxes import Mailbox, WorkflowRegistration, WorkflowRole, normalise_mailbox_id
from mailroom.errors import NotFound, ValidationFailed
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.storage.db import Database
from mailroom.storage.repos import mailboxes


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int


def parse_jsonl(lines: Iterable[str]) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationFailed("body", f"line {number}", f"not JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise ValidationFailed("body", f"line {number}", "each line must be a JSON object")
        records.append(record)
    return records


def mailbox_from_record(record: dict[str, Any]) -> Mailbox:
    """A mesh-sandbox ``mailboxes.jsonl`` record → Mailbox."""
    mailbox_id = normalise_mailbox_id(str(record.get("mailbox_id", "")))
    password = record.get("password")
    if mailbox_id is None:
        raise ValidationFailed("body", "mailbox_id", f"not a mailbox id: {record.get('mailbox_id')!r}")
    if not isinstance(password, str) or not password:
        raise ValidationFailed("body", "password", f"mailbox {mailbox_id} has no password")
    return Mailbox(
        mailbox_id=mailbox_id,
        mailbox_name=str(record.get("mailbox_name") or ""),
        password=password,
        ods_code=str(record.get("ods_code") or ""),
        org_code=str(record.get("org_code") or ""),
        org_name=str(record.get("org_name") or ""),
        billing_entity=str(record.get("billing_entity") or ""),
        active=_active(record.get("active", True)),
    )


def workflow_from_record(record: dict[str, Any]) -> tuple[str, list[WorkflowRegistration]]:
    """A mesh-sandbox ``workflows.jsonl`` record → (workflow id, registrations)."""
    workflow_id = str(record.get("workflow_id") or "").strip()
    if not workflow_id:
        raise ValidationFailed("body", "workflow_id", "workflow record has no workflow_id")
    registrations = []
    for role, key in ((WorkflowRole.SENDER, "senders"), (WorkflowRole.RECEIVER, "receivers")):
        for raw in record.get(key) or []:
            mailbox_id = normalise_mailbox_id(str(raw))
            if mailbox_id is None:
                raise ValidationFailed("body", key, f"not a mailbox id: {raw!r}")
            registrations.append(WorkflowRegistration(workflow_id, mailbox_id, role))
    return workflow_id, registrations


def _active(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in {"false", "no", "n", "0", "off", ""}
    return bool(value)


class MailboxService:
    def __init__(self, db: Database, clock: Clock, cache: MailboxCache | None = None) -> None:
        self._db = db
        self._clock = clock
        self._cache = cache

    def _changed(self) -> None:
        if self._cache is not None:
            self._cache.invalidate()

    def add(self, mailbox: Mailbox) -> bool:
        """Create or update a mailbox; True when it was new."""
        with self._db.write() as conn:
            added = mailboxes.upsert(conn, mailbox, self._clock.now())
        self._changed()
        return added

    def get(self, mailbox_id: str) -> Mailbox:
        with self._db.read() as conn:
            mailbox = mailboxes.get(conn, mailbox_id)
        if mailbox is None:
            raise NotFound("mailbox does not exist")
        return mailbox

    def all(self) -> list[Mailbox]:
        with self._db.read() as conn:
            return mailboxes.list_all(conn)

    def set_active(self, mailbox_id: str, active: bool) -> None:
        with self._db.write() as conn:
            if not mailboxes.set_active(conn, mailbox_id, active):
                raise NotFound("mailbox does not exist")
        self._changed()

    def import_mailboxes(self, records: Iterable[dict[str, Any]]) -> ImportResult:
        parsed = [mailbox_from_record(record) for record in records]
        added = 0
        with self._db.write() as conn:
            now = self._clock.now()
            for mailbox in parsed:
                added += mailboxes.upsert(conn, mailbox, now)
        self._changed()
        return ImportResult(added=added, updated=len(parsed) - added)

    def import_workflows(self, records: Iterable[dict[str, Any]]) -> int:
        parsed = [workflow_from_record(record) for record in records]
        with self._db.write() as conn:
            for workflow_id, registrations in parsed:
                mailboxes.replace_workflow(conn, workflow_id, registrations)
        return len(parsed)

    def record_handshake(self, mailbox_id: str) -> None:
        with self._db.write() as conn:
            mailboxes.record_handshake(conn, mailbox_id, self._clock.now())

    def lookup(self, ods_code: str, workflow_id: str) -> list[Mailbox]:
        """Receivers of a workflow with the given ODS code (exact, case-sensitive)."""
        with self._db.read() as conn:
            return mailboxes.receivers(conn, workflow_id, ods_code)

    def workflow_receivers(self, workflow_id: str) -> list[Mailbox]:
        with self._db.read() as conn:
            return mailboxes.receivers(conn, workflow_id)
