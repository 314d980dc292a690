"""Background work: expiry with non-delivery reports, abandoned uploads, payload purge, token
clean-up and orphan removal. Each is a step the job runner (``services.jobs``) runs once per
period in one of the processes sharing the database (``MaintenanceService.periodic``); no broker
or leader is needed, and any step may also run anywhere at any time (``sweep``), safely.

Expiry claims due messages with row locks (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and
expires them together with their reports in one transaction, so each message is expired and
reported exactly once however many processes sweep at the same time, and whichever of them
stops mid-sweep. The other steps are conditional updates or idempotent deletes: running them
twice changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Connection

from mailroom.clock import Clock
from mailroom.domain.messages import (
    Message,
    MessageStatus,
    MessageType,
    Metadata,
    Party,
    StatusDetail,
)
from mailroom.domain.reports import SYSTEM_SENDER_NAME, ReportSpec, not_collected_report
from mailroom.ids import new_message_id
from mailroom.services.jobs import Periodic
from mailroom.services.sending import party
from mailroom.settings import Settings
from mailroom.storage.db import Database
from mailroom.storage.payloads import PayloadStore
from mailroom.storage.repos import envelopes, mailboxes, messages, tokens

log = logging.getLogger(__name__)

BATCH = 200
EXPIRY_BATCH = 50  # messages expired per transaction (each also inserts a report)
ORPHAN_GRACE = timedelta(hours=1)


@dataclass
class SweepResult:
    expired: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    purged: int = 0
    purge_failed: int = 0
    forgotten: int = 0
    orphans: int = 0
    tokens: int = 0
    attachments_purged: int = 0
    staged_removed: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "expired": len(self.expired),
            "reports": len(self.reports),
            "abandoned": len(self.abandoned),
            "purged": self.purged,
            "purgeFailed": self.purge_failed,
            "forgotten": self.forgotten,
            "orphans": self.orphans,
            "tokens": self.tokens,
            "attachmentsPurged": self.attachments_purged,
            "stagedRemoved": self.staged_removed,
        }


def _step(step: Callable[[SweepResult], None]) -> dict[str, int]:
    result = SweepResult()
    step(result)
    if result.expired or result.purged or result.orphans or result.purge_failed or result.forgotten:
        log.info("maintenance: %s", ", ".join(f"{k} {v}" for k, v in result.summary().items() if v))
    return result.summary()


def system_party() -> Party:
    return Party(mailbox_id="", name=SYSTEM_SENDER_NAME, ods_code="X26", org_name="NHS England")


def report_message(
    spec: ReportSpec, recipient: Party, now: datetime, status: MessageStatus, *, file_name: str = ""
) -> Message:
    """A REPORT in ``recipient``'s inbox (empty body, zero chunks)."""
    return Message(
        message_id=new_message_id(now),
        message_type=MessageType.REPORT,
        sender=system_party(),
        recipient=recipient,
        meta=Metadata(
            workflow_id=spec.workflow_id, local_id=spec.local_id, subject=spec.subject, file_name=file_name
        ),
        total_chunks=0,
        file_size=0,
        status=status,
        detail=spec.detail,
        created_at=now,
        status_at=now,
        accepted_at=now,
        acknowledged_at=None,
        inbox_expires_at=None,
    )


class MaintenanceService:
    def __init__(self, settings: Settings, db: Database, payloads: PayloadStore, clock: Clock) -> None:
        self._settings = settings
        self._db = db
        self._payloads = payloads
        self._clock = clock

    def sweep(self, *, orphans: bool = True) -> SweepResult:
        """Every step now, in this process (tests, and an operator's ``PurgeExpired``)."""
        result = SweepResult()
        self.expire(result)
        self.abandon_uploads(result)
        self.purge(result)
        self.purge_attachments(result)
        self.remove_staged(result)
        self.forget_messages(result)
        self.forget_tokens(result)
        if orphans:
            self.scan_orphans(result)
        return result

    def periodic(self) -> list[Periodic]:
        """The steps as the job runner schedules them (none where the settings disable them)."""
        steps: list[Periodic] = []
        every = self._settings.sweep_interval
        if every.total_seconds() > 0:
            for name, step in (
                ("maintenance.expire", self.expire),
                ("maintenance.abandon-uploads", self.abandon_uploads),
                ("maintenance.purge", self.purge),
                ("maintenance.purge-attachments", self.purge_attachments),
                ("maintenance.staged-attachments", self.remove_staged),
                ("maintenance.forget-messages", self.forget_messages),
                ("maintenance.tokens", self.forget_tokens),
            ):
                steps.append(Periodic(name, every, partial(_step, step)))
        scan = self._settings.orphan_scan_interval
        if scan.total_seconds() > 0:
            steps.append(Periodic("maintenance.orphans", scan, partial(_step, self.scan_orphans)))
        return steps

    def forget_messages(self, result: SweepResult) -> None:
        """Rows of finished, purged messages past ``metadata_retention``: the database does not
        grow without bound (tracking answers 404 for them from then on)."""
        retention = self._settings.metadata_retention
        if retention.total_seconds() <= 0:
            return
        cutoff = self._clock.now() - retention
        while True:
            with self._db.write() as conn:
                forgotten = messages.forget_finished(conn, cutoff, BATCH)
            result.forgotten += len(forgotten)
            if len(forgotten) < BATCH:
                break
        while True:  # envelopes whose deliveries are all forgotten
            with self._db.write() as conn:
                gone = envelopes.forget_envelopes(conn, BATCH)
            if len(gone) < BATCH:
                return

    def forget_tokens(self, result: SweepResult) -> None:
        with self._db.write() as conn:
            result.tokens = tokens.forget_expired(conn, self._clock.now())

    def scan_orphans(self, result: SweepResult) -> None:
        """Walks every message's payload folder: the one step that grows with the store."""
        result.orphans = self.remove_orphans()
        self._payloads.remove_stale_uploads(ORPHAN_GRACE)

    def expire(self, result: SweepResult) -> None:
        while True:
            expired = self._expire_batch()
            for message_id, report_id, recipient_id in expired:
                log.info("expired %s; report %s sent to %s", message_id, report_id, recipient_id)
                result.expired.append(message_id)
                result.reports.append(report_id)
            if len(expired) < EXPIRY_BATCH:
                return

    def _expire_batch(self) -> list[tuple[str, str, str]]:
        """Claim a batch of due messages and expire them, each with its report, in one transaction.

        Claiming (row locks, skipping rows another sweep holds), the status change and the
        report insert commit together or not at all: a process stopped mid-sweep leaves its
        batch due, and the next sweep anywhere takes it. So every message is expired and
        reported exactly once, however many processes sweep.
        """
        now = self._clock.now()
        done = []
        with self._db.write() as conn:
            for message_id in messages.claim_due_for_expiry(conn, now, EXPIRY_BATCH):
                report_id, recipient_id = self._expire_one(conn, message_id, now)
                done.append((message_id, report_id, recipient_id))
        return done

    def _expire_one(self, conn: Connection, message_id: str, now: datetime) -> tuple[str, str]:
        original = messages.get(conn, message_id)
        assert original is not None  # claimed rows are locked: they cannot go away
        recipient = mailboxes.get(conn, original.recipient.mailbox_id)
        spec = not_collected_report(
            original,
            self._settings.inbox_retention,
            deactivated=recipient is not None and not recipient.active,
        )
        changed = messages.change_status(
            conn,
            message_id,
            MessageStatus.UNDELIVERABLE,
            now,
            only_from=[MessageStatus.ACCEPTED],
            detail=spec.detail,
        )
        assert changed  # claimed as ACCEPTED under a lock
        sender = mailboxes.get(conn, original.sender.mailbox_id)
        recipient_party = original.sender if sender is None else party(sender)
        report = report_message(spec, recipient_party, now, MessageStatus.ACCEPTED)
        messages.insert_message(conn, report)
        messages.add_event(conn, report.message_id, MessageStatus.ACCEPTED, now, spec.detail)
        return report.message_id, spec.recipient_id

    def abandon_uploads(self, result: SweepResult) -> None:
        """A chunked upload not completed within the inbox retention fails (status ``error``);
        its chunks are then purged like any finished message's."""
        now = self._clock.now()
        cutoff = now - self._settings.inbox_retention
        detail = StatusDetail(
            event="SEND", code="InvalidChunkedUpload", description="Chunked upload was not completed in time"
        )
        with self._db.read() as conn:
            due = messages.due_for_abandon(conn, cutoff, BATCH)
        for message_id in due:
            with self._db.write() as conn:
                if messages.change_status(
                    conn,
                    message_id,
                    MessageStatus.ERROR,
                    now,
                    only_from=[MessageStatus.UPLOADING],
                    detail=detail,
                ):
                    result.abandoned.append(message_id)

    def purge(self, result: SweepResult) -> None:
        cutoff = self._clock.now() - self._settings.payload_retention
        while True:
            with self._db.read() as conn:
                due = messages.due_for_purge(conn, cutoff, BATCH)
            purged = 0
            for message_id in due:
                try:
                    self._payloads.delete_message(message_id)
                except Exception:  # one payload the store refuses to delete does not stop the rest
                    log.exception(
                        "could not delete the payload of %s; it is tried again next time", message_id
                    )
                    result.purge_failed += 1
                    continue
                with self._db.write() as conn:
                    messages.mark_purged(conn, message_id)
                purged += 1
            result.purged += purged
            if len(due) < BATCH or not purged:
                return

    def purge_attachments(self, result: SweepResult) -> None:
        """Attachment bytes (stored once for every recipient) once every delivery that needs
        them has been purged: a shared blob is never removed while one recipient may still
        download it, whichever face it reads on."""
        while True:
            with self._db.read() as conn:
                due = envelopes.purgeable_attachments(conn, BATCH)
            purged = 0
            for row in due:
                if not self._delete_attachment_bytes(row.attachment_id, result):
                    continue
                with self._db.write() as conn:
                    envelopes.mark_attachment_purged(conn, row.attachment_id)
                purged += 1
            result.attachments_purged += purged
            if len(due) < BATCH or not purged:
                return

    def remove_staged(self, result: SweepResult) -> None:
        """Attachments uploaded but used by no message after ``staged_attachment_retention``
        (an upload never sent, or the part of a submit that then failed)."""
        cutoff = self._clock.now() - self._settings.staged_attachment_retention
        with self._db.read() as conn:
            due = envelopes.stale_staged(conn, cutoff, BATCH)
        for row in due:
            # the row first, and only while no message uses it: a submit linking it right now
            # keeps it; bytes left by a failed delete are an orphan the orphan scan removes
            with self._db.write() as conn:
                if not envelopes.delete_attachment(conn, row.attachment_id):
                    continue
            self._delete_attachment_bytes(row.attachment_id, result)
            result.staged_removed += 1

    def _delete_attachment_bytes(self, attachment_id: str, result: SweepResult) -> bool:
        try:
            self._payloads.delete_message(attachment_id)  # the attachment's own folder
        except Exception:
            log.exception("could not delete attachment %s; it is tried again next time", attachment_id)
            result.purge_failed += 1
            return False
        return True

    def remove_orphans(self) -> int:
        """Payloads whose message row never committed (a crash mid-send), after a grace period.

        An orphan must be old twice over: by the time in its id (when the send began) and by when
        its payload was last written, so an upload that streamed for hours and is committing
        right now is never taken for one.
        """
        cutoff_time = self._clock.now() - ORPHAN_GRACE
        cutoff = cutoff_time.strftime("%Y%m%d%H%M%S%f")
        candidates = [mid for mid in self._payloads.message_ids() if mid[:20] < cutoff]
        removed = 0
        for start in range(0, len(candidates), 500):
            batch = candidates[start : start + 500]
            with self._db.read() as conn:
                known = messages.existing_ids(conn, batch) | envelopes.existing_attachment_ids(conn, batch)
            for message_id in batch:
                written = self._payloads.last_written(message_id)
                if message_id in known or (written is not None and written > cutoff_time):
                    continue
                self._payloads.delete_message(message_id)
                removed += 1
        return removed
