"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailroom.storage.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", mailroom.storage.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_tokens")),
    )
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_tokens_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "mailboxes",
        sa.Column("mailbox_id", sa.String(length=100), nullable=False),
        sa.Column("mailbox_name", sa.String(length=500), nullable=False),
        sa.Column("password", sa.String(length=500), nullable=False),
        sa.Column("ods_code", sa.String(length=100), nullable=False),
        sa.Column("org_code", sa.String(length=100), nullable=False),
        sa.Column("org_name", sa.String(length=500), nullable=False),
        sa.Column("billing_entity", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", mailroom.storage.tables.UTCDateTime(), nullable=False),
        sa.Column("last_handshake_at", mailroom.storage.tables.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_mailboxes")),
    )
    op.create_table(
        "messages",
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("message_type", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sender_id", sa.String(length=100), nullable=False),
        sa.Column("sender_name", sa.String(length=500), nullable=False),
        sa.Column("sender_ods_code", sa.String(length=100), nullable=False),
        sa.Column("sender_org_code", sa.String(length=100), nullable=False),
        sa.Column("sender_org_name", sa.String(length=500), nullable=False),
        sa.Column("sender_billing_entity", sa.String(length=100), nullable=False),
        sa.Column("recipient_id", sa.String(length=100), nullable=False),
        sa.Column("recipient_name", sa.String(length=500), nullable=False),
        sa.Column("recipient_ods_code", sa.String(length=100), nullable=False),
        sa.Column("recipient_org_code", sa.String(length=100), nullable=False),
        sa.Column("recipient_org_name", sa.String(length=500), nullable=False),
        sa.Column("recipient_billing_entity", sa.String(length=100), nullable=False),
        sa.Column("workflow_id", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("local_id", sa.String(length=300), nullable=False),
        sa.Column("partner_id", sa.String(length=500), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("content_encoding", sa.String(length=20), nullable=False),
        sa.Column("checksum", sa.String(length=100), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("compressed", sa.Boolean(), nullable=False),
        sa.Column("total_chunks", sa.Integer(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("status_event", sa.String(length=50), nullable=False),
        sa.Column("status_code", sa.String(length=50), nullable=False),
        sa.Column("status_description", sa.Text(), nullable=False),
        sa.Column("linked_message_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", mailroom.storage.tables.UTCDateTime(), nullable=False),
        sa.Column("status_at", mailroom.storage.tables.UTCDateTime(), nullable=False),
        sa.Column("accepted_at", mailroom.storage.tables.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", mailroom.storage.tables.UTCDateTime(), nullable=True),
        sa.Column("inbox_expires_at", mailroom.storage.tables.UTCDateTime(), nullable=True),
        sa.Column("payload_purged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messages_recipient_id_status_accepted_at_message_id"),
            ["recipient_id", "status", "accepted_at", "message_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_messages_sender_id_created_at"), ["sender_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_messages_sender_id_local_id"), ["sender_id", "local_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_messages_status_created_at"), ["status", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_messages_status_inbox_expires_at"), ["status", "inbox_expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_messages_status_status_at"), ["status", "status_at"], unique=False
        )

    op.create_table(
        "workflows",
        sa.Column("workflow_id", sa.String(length=300), nullable=False),
        sa.Column("mailbox_id", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "mailbox_id", "role", name=op.f("pk_workflows")),
    )
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workflows_mailbox_id"), ["mailbox_id"], unique=False)

    op.create_table(
        "chunks",
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("payload_key", sa.String(length=200), nullable=False),
        sa.Column("stored_at", mailroom.storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_chunks_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "chunk_no", name=op.f("pk_chunks")),
    )
    op.create_table(
        "message_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("event", sa.String(length=50), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("linked_message_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", mailroom.storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_message_events_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_events")),
    )
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_events_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_events_message_id"))

    op.drop_table("message_events")
    op.drop_table("chunks")
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflows_mailbox_id"))

    op.drop_table("workflows")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_status_status_at"))
        batch_op.drop_index(batch_op.f("ix_messages_status_inbox_expires_at"))
        batch_op.drop_index(batch_op.f("ix_messages_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_messages_sender_id_local_id"))
        batch_op.drop_index(batch_op.f("ix_messages_sender_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_messages_recipient_id_status_accepted_at_message_id"))

    op.drop_table("messages")
    op.drop_table("mailboxes")
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_tokens_expires_at"))

    op.drop_table("auth_tokens")
