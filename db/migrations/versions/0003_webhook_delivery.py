"""Runs: where their webhook delivery stands, so a restart delivers what was still due.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("webhook_error", sa.Text(), nullable=True))
        batch_op.create_index("ix_runs_webhook_status", ["webhook_status"])


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_webhook_status")
        batch_op.drop_column("webhook_error")
        batch_op.drop_column("webhook_status")
