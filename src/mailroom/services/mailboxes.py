"""Mailbox administration, handshake, endpoint lookup and workflow search.

Every change here clears this process's mailbox cache; other processes (a running server, when
the change comes from the command line) see it within ``Settings.mailbox_cache_ttl``, so a
removed mailbox or a changed password stops authenticating everywhere within that time.

A changed password also ends the mailbox's JSON API password logins, and a removal ends every
login and API key of the mailbox, in the same transaction (``ApiTokenService.end_logins``): their
refresh tokens are refused at once, their access tokens at once in this process and within
``Settings.api_revocation_ttl`` in the others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection

from mailroom.clock import Clock
from mailroom.domain.mailboxes import Mailbox, WorkflowRegistration, WorkflowRole, normalise_mailbox_id
from mailroom.errors import Conflict, NotFound, ValidationFailed
from mailroom.services.api_tokens import ApiTokenService
from mailroom.services.mailbox_cache import MailboxCache
from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.repos import mailboxes, messages
from mailroom.storage.repos.messages import HeldMessages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int


@dataclass(frozen=True)
class MailboxChanges:
    """The fields ``MailboxService.update`` sets; None leaves a field as it is."""

    mailbox_name: str | None = None
    ods_code: str | None = None
    org_code: str | None = None
    org_name: str | None = None
    billing_entity: str | None = None
    active: bool | None = None

    def values(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class MailboxSummary:
    """A mailbox as ``mailroom mailbox list`` shows it."""

    mailbox: Mailbox
    waiting: int  # messages in its inbox, not yet acknowledged


@dataclass(frozen=True)
class Removal:
    deleted: list[str]  # ids of the messages purged with the mailbox
    registrations: int  # workflow registrations removed
    sent_waiting: int  # messages it sent, still waiting in other inboxes (kept)
    payloads_left: int = 0  # payloads not deleted now (the sweep removes them as orphans)


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


def missing(mailbox_id: str) -> NotFound:
    return NotFound(f"mailbox {mailbox_id} does not exist")


def describe_held(held: HeldMessages) -> str:
    """``has 3 messages waiting in its inbox and 1 upload in progress`` (what blocks removal)."""
    parts = []
    if held.waiting:
        parts.append(f"{held.waiting} message{'s' if held.waiting != 1 else ''} waiting in its inbox")
    if held.uploading:
        parts.append(f"{held.uploading} upload{'s' if held.uploading != 1 else ''} in progress")
    return "has " + " and ".join(parts) if parts else "has no messages waiting"


def _active(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in {"false", "no", "n", "0", "off", ""}
    return bool(value)


class MailboxService:
    def __init__(
        self,
        db: Database,
        payloads: PayloadStore,
        clock: Clock,
        cache: MailboxCache | None = None,
        logins: ApiTokenService | None = None,
    ) -> None:
        self._db = db
        self._payloads = payloads
        self._clock = clock
        self._cache = cache
        self._logins = logins  # None: no JSON API logins to end (tests of this service alone)

    def _changed(self, *, logins_ended: bool = False) -> None:
        if self._cache is not None:
            self._cache.invalidate()
        if logins_ended and self._logins is not None:
            self._logins.forget_revocations()

    def _end_logins(self, conn: Connection, mailbox_id: str, *, removed: bool) -> bool:
        """In a credential change's transaction: a new password ends the password logins (an
        API key's logins do not use the password), a removal every login and every API key."""
        if self._logins is None:
            return False
        if removed:
            self._logins.end_logins(conn, mailbox_id, "mailbox removed", keys=True)
        else:
            self._logins.end_logins(conn, mailbox_id, "mailbox password changed", key_logins=False)
        return True

    def _put(self, conn: Connection, mailbox: Mailbox) -> tuple[bool, bool]:
        """Insert or replace a mailbox: (new, whether its logins were ended by a new password)."""
        before = mailboxes.get(conn, mailbox.mailbox_id)
        added = mailboxes.upsert(conn, mailbox, self._clock.now())
        if before is None or before.password == mailbox.password:
            return added, False
        return added, self._end_logins(conn, mailbox.mailbox_id, removed=False)

    def add(self, mailbox: Mailbox, *, replace: bool = False) -> bool:
        """Create a mailbox; True when it was new. An existing one is refused (``Conflict``)
        unless ``replace``, which sets every field from ``mailbox`` (blank ones too); a replaced
        password ends the mailbox's password logins, as ``set_password`` does."""
        with self._db.write() as conn:
            if not replace and mailboxes.get(conn, mailbox.mailbox_id) is not None:
                raise Conflict(f"mailbox {mailbox.mailbox_id} already exists")
            added, ended = self._put(conn, mailbox)
        self._changed(logins_ended=ended)
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

    def summaries(self) -> list[MailboxSummary]:
        """Every mailbox with its count of waiting messages (one query)."""
        with self._db.read() as conn:
            return [MailboxSummary(box, waiting) for box, waiting in mailboxes.list_with_waiting(conn)]

    def set_active(self, mailbox_id: str, active: bool) -> None:
        self.update(mailbox_id, MailboxChanges(active=active))

    def update(self, mailbox_id: str, changes: MailboxChanges) -> Mailbox:
        """Change only the fields ``changes`` gives; the mailbox as it is now."""
        with self._db.write() as conn:
            values = changes.values()
            if values and not mailboxes.update_fields(conn, mailbox_id, values):
                raise missing(mailbox_id)
            mailbox = mailboxes.get(conn, mailbox_id)
        if mailbox is None:
            raise missing(mailbox_id)
        self._changed()
        return mailbox

    def set_password(self, mailbox_id: str, password: str) -> None:
        """Change a mailbox's password. Its JSON API password logins end with the old password
        (in the same transaction); its API keys and their logins stay."""
        if not password:
            raise ValidationFailed("body", "password", "must not be empty")
        with self._db.write() as conn:
            if not mailboxes.update_fields(conn, mailbox_id, {"password": password}):
                raise missing(mailbox_id)
            ended = self._end_logins(conn, mailbox_id, removed=False)
        self._changed(logins_ended=ended)

    def held(self, mailbox_id: str) -> HeldMessages:
        """The messages a mailbox still takes part in (what ``remove`` would refuse or purge)."""
        with self._db.read() as conn:
            if mailboxes.get(conn, mailbox_id) is None:
                raise missing(mailbox_id)
            return messages.held_by(conn, mailbox_id)

    def remove(self, mailbox_id: str, *, purge: bool = False) -> Removal:
        """Delete a mailbox and its workflow registrations.

        Refused (``Conflict``) while messages wait in its inbox or uploads from or to it are in
        progress, unless ``purge``: then those messages go too, their rows in the same
        transaction and their payloads after it commits. Messages it sent that wait in other
        inboxes stay deliverable, and finished messages stay as history. Every JSON API login
        and API key of the mailbox is revoked in the same transaction.
        """
        with self._db.write() as conn:
            if mailboxes.get(conn, mailbox_id) is None:
                raise missing(mailbox_id)
            held = messages.held_by(conn, mailbox_id)
            if held.blocking and not purge:
                raise Conflict(f"mailbox {mailbox_id} {describe_held(held)}")
            deleted = messages.delete_held(conn, mailbox_id) if purge else []
            registrations = mailboxes.remove(conn, mailbox_id)
            ended = self._end_logins(conn, mailbox_id, removed=True)
        self._changed(logins_ended=ended)
        left = sum(not self._delete_payloads(message_id) for message_id in deleted)
        return Removal(deleted, registrations, held.sent_waiting, left)

    def _delete_payloads(self, message_id: str) -> bool:
        try:
            self._payloads.delete_message(message_id)
        except Exception:  # the row is gone: the sweep's orphan clean-up takes what is left
            log.warning("payloads of removed message %s not deleted", message_id, exc_info=True)
            return False
        return True

    def import_mailboxes(self, records: Iterable[dict[str, Any]]) -> ImportResult:
        """Add or replace mesh-sandbox ``mailboxes.jsonl`` records (a replaced password ends the
        mailbox's password logins, as ``set_password`` does)."""
        parsed = [mailbox_from_record(record) for record in records]
        added = 0
        ended = False
        with self._db.write() as conn:
            for mailbox in parsed:
                new, changed = self._put(conn, mailbox)
                added += new
                ended = ended or changed
        self._changed(logins_ended=ended)
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

    def workflows(self, workflow_id: str | None = None) -> list[tuple[str, list[str], list[str]]]:
        """(workflow id, senders, receivers) of every registered workflow, or of one."""
        with self._db.read() as conn:
            found = mailboxes.registrations(conn, workflow_id)
        grouped: dict[str, tuple[list[str], list[str]]] = {}
        for registration in found:
            senders, receivers = grouped.setdefault(registration.workflow_id, ([], []))
            (senders if registration.role is WorkflowRole.SENDER else receivers).append(
                registration.mailbox_id
            )
        return [(name, senders, receivers) for name, (senders, receivers) in grouped.items()]

    def add_workflow(self, workflow_id: str, senders: Iterable[str], receivers: Iterable[str]) -> int:
        """Register mailboxes (which must exist) as senders and receivers of a workflow, beside
        any registered already; returns how many registrations were new."""
        wanted = [
            *(WorkflowRegistration(workflow_id, box, WorkflowRole.SENDER) for box in senders),
            *(WorkflowRegistration(workflow_id, box, WorkflowRole.RECEIVER) for box in receivers),
        ]
        with self._db.write() as conn:
            for registration in wanted:
                if mailboxes.get(conn, registration.mailbox_id) is None:
                    raise missing(registration.mailbox_id)
            return mailboxes.add_registrations(conn, wanted)

    def remove_workflow(self, workflow_id: str) -> int:
        """Remove a workflow's registrations (``NotFound`` if it has none); returns how many."""
        with self._db.write() as conn:
            removed = mailboxes.remove_workflow(conn, workflow_id)
        if not removed:
            raise NotFound(f"workflow {workflow_id[:300]} is not registered")
        return removed
