"""the JSON messaging API: envelopes, attachments stored once, deliveries' API state, API keys,
logins and refresh tokens, shared server keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "envelopes",
        sa.Column("envelope_id", sa.String(100), nullable=False),
        sa.Column("sender_id", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("local_id", sa.String(300), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("face", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sender_deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("envelope_id", name="pk_envelopes"),
    )
    op.create_index(
        "ix_envelopes_sender_id_idempotency_key", "envelopes", ["sender_id", "idempotency_key"], unique=True
    )
    op.create_index("ix_envelopes_sender_id_created_at", "envelopes", ["sender_id", "created_at"])
    op.create_table(
        "attachments",
        sa.Column("attachment_id", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("payload_key", sa.String(200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("purged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("attachment_id", name="pk_attachments"),
    )
    op.create_index("ix_attachments_owner_id_created_at", "attachments", ["owner_id", "created_at"])
    op.create_table(
        "envelope_attachments",
        sa.Column("envelope_id", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("attachment_id", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["envelope_id"],
            ["envelopes.envelope_id"],
            name="fk_envelope_attachments_envelope_id_envelopes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["attachments.attachment_id"],
            name="fk_envelope_attachments_attachment_id_attachments",
        ),
        sa.PrimaryKeyConstraint("envelope_id", "position", name="pk_envelope_attachments"),
    )
    op.create_index("ix_envelope_attachments_attachment_id", "envelope_attachments", ["attachment_id"])
    op.create_table(
        "deliveries",
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("envelope_id", sa.String(100), nullable=True),
        sa.Column("read", sa.Boolean(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("sender_hidden", sa.Boolean(), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name="fk_deliveries_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["envelope_id"], ["envelopes.envelope_id"], name="fk_deliveries_envelope_id_envelopes"
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_envelope_id", "deliveries", ["envelope_id"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("mailbox_id", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_mailbox_id", "api_keys", ["mailbox_id"])
    op.create_table(
        "api_logins",
        sa.Column("login_id", sa.String(32), nullable=False),
        sa.Column("mailbox_id", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("login_id", name="pk_api_logins"),
    )
    op.create_index("ix_api_logins_mailbox_id", "api_logins", ["mailbox_id"])
    op.create_index("ix_api_logins_key_id", "api_logins", ["key_id"])
    op.create_index("ix_api_logins_expires_at", "api_logins", ["expires_at"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("login_id", sa.String(32), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("spent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["login_id"],
            ["api_logins.login_id"],
            name="fk_refresh_tokens_login_id_api_logins",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_refresh_tokens"),
    )
    op.create_index("ix_refresh_tokens_login_id", "refresh_tokens", ["login_id"])
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("material", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_keys"),
    )


def downgrade() -> None:
    op.drop_table("server_keys")
    op.drop_index("ix_refresh_tokens_login_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    for name in ("ix_api_logins_expires_at", "ix_api_logins_key_id", "ix_api_logins_mailbox_id"):
        op.drop_index(name, table_name="api_logins")
    op.drop_table("api_logins")
    op.drop_index("ix_api_keys_mailbox_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_deliveries_envelope_id", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_envelope_attachments_attachment_id", table_name="envelope_attachments")
    op.drop_table("envelope_attachments")
    op.drop_index("ix_attachments_owner_id_created_at", table_name="attachments")
    op.drop_table("attachments")
    op.drop_index("ix_envelopes_sender_id_created_at", table_name="envelopes")
    op.drop_index("ix_envelopes_sender_id_idempotency_key", table_name="envelopes")
    op.drop_table("envelopes")
