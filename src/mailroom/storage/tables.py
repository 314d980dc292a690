"""SQLAlchemy Core tables: the metadata of every message. Payload bytes live in the payload store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from mailroom.errors import ValidationFailed

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


mailboxes = Table(
    "mailboxes",
    metadata,
    Column("mailbox_id", String(100), primary_key=True),
    Column("mailbox_name", String(500), nullable=False, default=""),
    Column("password", String(500), nullable=False),
    Column("ods_code", String(100), nullable=False, default=""),
    Column("org_code", String(100), nullable=False, default=""),
    Column("org_name", String(500), nullable=False, default=""),
    Column("billing_entity", String(100), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_handshake_at", UTCDateTime, nullable=True),
)

workflows = Table(
    "workflows",
    metadata,
    Column("workflow_id", String(300), primary_key=True),
    Column("mailbox_id", String(100), primary_key=True),
    Column("role", String(20), primary_key=True),
    Index(None, "mailbox_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("message_id", String(100), primary_key=True),
    Column("message_type", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    # parties, copied when the message was sent
    Column("sender_id", String(100), nullable=False, default=""),
    Column("sender_name", String(500), nullable=False, default=""),
    Column("sender_ods_code", String(100), nullable=False, default=""),
    Column("sender_org_code", String(100), nullable=False, default=""),
    Column("sender_org_name", String(500), nullable=False, default=""),
    Column("sender_billing_entity", String(100), nullable=False, default=""),
    Column("recipient_id", String(100), nullable=False),
    Column("recipient_name", String(500), nullable=False, default=""),
    Column("recipient_ods_code", String(100), nullable=False, default=""),
    Column("recipient_org_code", String(100), nullable=False, default=""),
    Column("recipient_org_name", String(500), nullable=False, default=""),
    Column("recipient_billing_entity", String(100), nullable=False, default=""),
    # metadata from the sender
    Column("workflow_id", String(300), nullable=False, default=""),
    Column("subject", String(500), nullable=False, default=""),
    Column("local_id", String(300), nullable=False, default=""),
    Column("partner_id", String(500), nullable=False, default=""),
    Column("file_name", String(300), nullable=False, default=""),
    Column("content_type", String(100), nullable=False, default=""),
    Column("content_encoding", String(20), nullable=False, default=""),
    Column("checksum", String(100), nullable=False, default=""),
    Column("encrypted", Boolean, nullable=False, default=False),
    Column("compressed", Boolean, nullable=False, default=False),
    # size and lifecycle
    Column("total_chunks", Integer, nullable=False),
    Column("file_size", BigInteger, nullable=False, default=0),
    Column("status_event", String(50), nullable=False, default=""),
    Column("status_code", String(50), nullable=False, default=""),
    Column("status_description", Text, nullable=False, default=""),
    Column("linked_message_id", String(100), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status_at", UTCDateTime, nullable=False),
    Column("accepted_at", UTCDateTime, nullable=True),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("inbox_expires_at", UTCDateTime, nullable=True),
    Column("payload_purged", Boolean, nullable=False, default=False),
    # inbox listing: oldest accepted first, stable tie-break on id
    Index(None, "recipient_id", "status", "accepted_at", "message_id"),
    Index(None, "sender_id", "created_at"),
    Index(None, "sender_id", "local_id"),
    Index(None, "status", "inbox_expires_at"),
    Index(None, "status", "status_at"),
    Index(None, "status", "created_at"),
)

#: A 64-bit key on PostgreSQL; SQLite's auto-increment key must be ``INTEGER`` (its rowid), which
#: is 64-bit there anyway.
BigKey = BigInteger().with_variant(Integer, "sqlite")

message_events = Table(
    "message_events",
    metadata,
    Column("id", BigKey, primary_key=True, autoincrement=True),
    Column("message_id", String(100), ForeignKey("messages.message_id", ondelete="CASCADE"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("event", String(50), nullable=False, default=""),
    Column("code", String(50), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("linked_message_id", String(100), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "message_id"),
)

chunks = Table(
    "chunks",
    metadata,
    Column(
        "message_id", String(100), ForeignKey("messages.message_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("chunk_no", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    # "" when the bytes are in ``data`` (a small chunk, see Settings.inline_payload_bytes)
    Column("payload_key", String(200), nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("data", LargeBinary, nullable=True),
)

auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),
)

# -- jobs (services.jobs) ----------------------------------------------------------------------------

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("kind", String(100), nullable=False),
    Column("arguments", Text, nullable=False, default="{}"),  # JSON object
    Column("owner", String(200), nullable=False, default=""),
    Column("state", String(20), nullable=False),
    Column("status_version", BigInteger, nullable=False, default=1),
    Column("percent", Integer, nullable=True),
    Column("status_text", Text, nullable=True),
    Column("result", Text, nullable=True),  # JSON
    Column("error_message", Text, nullable=True),
    Column("error_details", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("checkpoint", Text, nullable=True),  # JSON, kept by a resumable job as it goes
    Column("claimed_by", String(200), nullable=False, default=""),  # the runner running it
    Column("lease_until", UTCDateTime, nullable=True),  # renewed while it runs
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index(None, "state", "created_at"),
    Index(None, "finished_at"),
)

job_log = Table(
    "job_log",
    metadata,
    Column("id", BigKey, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=False),
    Column("status_version", BigInteger, nullable=False),  # the job's version this line made
    Column("text", Text, nullable=False),
    Index(None, "job_id", "status_version"),
)

#: Periodic work (the maintenance steps): each row is claimed by one process per period.
job_schedules = Table(
    "job_schedules",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("next_run_at", UTCDateTime, nullable=False),
    Column("last_started_at", UTCDateTime, nullable=True),
    Column("last_finished_at", UTCDateTime, nullable=True),
    Column("last_outcome", String(20), nullable=False, default=""),  # succeeded | failed
    Column("last_error", Text, nullable=False, default=""),
    Column("last_result", Text, nullable=False, default=""),  # JSON
    Column("last_runner", String(200), nullable=False, default=""),
)

# -- administration API (services.admin_users, services.audit) -----------------------------------

admin_users = Table(
    "admin_users",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("password_hash", String(200), nullable=False),  # argon2id, PHC string format
    Column("privilege", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigKey, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("user", String(100), nullable=False),  # as given, also when unknown (a failed login)
    Column("peer", String(100), nullable=False, default=""),
    Column("function", String(100), nullable=False),
    Column("arguments", Text, nullable=False, default="{}"),  # JSON, secrets replaced
    Column("outcome", String(20), nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("job_id", String(32), nullable=False, default=""),
    Index(None, "at"),
    Index(None, "user", "at"),
)


# -- the JSON messaging API (services.messaging, services.api_tokens) -------------------------------
#
# A message written through the JSON API is an envelope (sender, subject, body) with one
# ``messages`` row per recipient (its delivery, which the MESH face serves as it is) and
# attachments whose bytes are stored once, however many recipients there are.

envelopes = Table(
    "envelopes",
    metadata,
    Column("envelope_id", String(100), primary_key=True),
    Column("sender_id", String(100), nullable=False),
    Column("subject", String(500), nullable=False, default=""),
    Column("body", Text, nullable=False, default=""),
    Column("local_id", String(300), nullable=False, default=""),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_digest", String(64), nullable=False, default=""),  # what the key was first used for
    Column("face", String(20), nullable=False, default=""),  # mft | d4science
    Column("created_at", UTCDateTime, nullable=False),
    Column("sender_deleted_at", UTCDateTime, nullable=True),  # hidden from the sender's outbox
    Index(None, "sender_id", "idempotency_key", unique=True),
    Index(None, "sender_id", "created_at"),
)

attachments = Table(
    "attachments",
    metadata,
    # a generated id (message id format): the bytes are under ``{attachment_id}/1-...``
    Column("attachment_id", String(100), primary_key=True),
    Column("owner_id", String(100), nullable=False),  # the mailbox that uploaded it
    Column("name", String(300), nullable=False),
    Column("content_type", String(200), nullable=False, default="application/octet-stream"),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("payload_key", String(200), nullable=False),  # "" when the bytes are in ``data``
    Column("data", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("purged", Boolean, nullable=False, default=False),
    Index(None, "owner_id", "created_at"),
)

envelope_attachments = Table(
    "envelope_attachments",
    metadata,
    Column(
        "envelope_id",
        String(100),
        ForeignKey("envelopes.envelope_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("attachment_id", String(100), ForeignKey("attachments.attachment_id"), nullable=False),
    Index(None, "attachment_id"),
)

#: The JSON API's state of a received message (any ``messages`` row, whichever face sent it):
#: made with the message for an envelope's delivery, on first use for a MESH message.
deliveries = Table(
    "deliveries",
    metadata,
    Column(
        "message_id", String(100), ForeignKey("messages.message_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("envelope_id", String(100), ForeignKey("envelopes.envelope_id"), nullable=True),
    Column("read", Boolean, nullable=False, default=False),  # the API-scope read flag
    Column("read_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),  # first retrieved, on either face
    Column("sender_hidden", Boolean, nullable=False, default=False),  # a MESH message deleted from the outbox
    Column("receipt", LargeBinary, nullable=True),  # the signed disposition notification
    Index(None, "envelope_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),  # the public ``tokenID``
    Column("mailbox_id", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # SHA-256 of a 256-bit random secret
    Column("read_only", Boolean, nullable=False, default=False),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index(None, "mailbox_id"),
)

#: One login (``/authorize``) and the chain of refresh tokens it grows.
api_logins = Table(
    "api_logins",
    metadata,
    Column("login_id", String(32), primary_key=True),
    Column("mailbox_id", String(100), nullable=False),
    Column("key_id", String(64), nullable=True),  # the API key it logged in with, if any
    Column("read_only", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_reason", String(200), nullable=False, default=""),
    Index(None, "mailbox_id"),
    Index(None, "key_id"),
    Index(None, "expires_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("login_id", String(32), ForeignKey("api_logins.login_id", ondelete="CASCADE"), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("spent_at", UTCDateTime, nullable=True),
    Index(None, "login_id"),
)

#: Keys every server process shares (token signing, link signing, the receipt signing key),
#: made once by whichever process needs one first.
server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("material", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


def storable(*values: str | None) -> bool:
    """False if a value has a NUL character: no stored text has one (``check_text``), so a lookup
    by such a value finds nothing, and must not reach PostgreSQL, which refuses it as a
    parameter even in a ``WHERE`` clause."""
    return not any(value and "\x00" in value for value in values)


def text_limits(table: Table) -> dict[str, int | None]:
    """Every text column of ``table`` with its length limit (None for unbounded ``Text``)."""
    return {
        column.name: column.type.length
        for column in table.columns
        if isinstance(column.type, String)  # Text is a String without a length
    }


def check_text(limits: Mapping[str, int | None], values: Mapping[str, Any]) -> None:
    """Refuse text a column cannot hold, as a validation error (400) rather than a database error.

    PostgreSQL raises on a value longer than its ``VARCHAR(n)`` and on any NUL character;
    SQLite accepts both silently. Checking here, where every row is written, makes both stacks
    refuse the same values, whichever client-filled field (header, JSON body, import file)
    they came from.
    """
    for name, limit in limits.items():
        value = values.get(name)
        if not isinstance(value, str):
            continue
        if limit is not None and len(value) > limit:
            raise ValidationFailed(
                "body",
                name,
                f"String should have at most {limit} characters",
                kind="string_too_long",
                value=value[:limit],
            )
        if "\x00" in value:
            raise ValidationFailed("body", name, "NUL characters are not allowed", value=value[:100])
