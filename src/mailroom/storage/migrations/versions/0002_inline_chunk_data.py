"""small chunks kept in their row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # Chunks stored in their row have no payload elsewhere: refuse rather than lose them.
    bind = op.get_bind()
    inline = bind.execute(sa.text("SELECT COUNT(*) FROM chunks WHERE data IS NOT NULL")).scalar_one()
    if inline:
        raise RuntimeError(f"{inline} chunks are stored in the database; downgrading would lose them")
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_column("data")
