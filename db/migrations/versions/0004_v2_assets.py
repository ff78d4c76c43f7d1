"""The Comfy API v2: assets (uploads and outputs), the server's internal app of ad-hoc workflows, keys that may run
any workflow; and when retention removed a run's files.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("internal", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workflows", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("files_removed", sa.JSON(), nullable=True))
    op.create_table(
        "assets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("hash", sa.String(length=80), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("file_path", sa.String(length=255), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("artifact_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], name=op.f("fk_assets_api_key_id_api_keys"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["job_id"], ["runs.id"], name=op.f("fk_assets_job_id_runs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["artifact_id"], ["artifacts.id"], name=op.f("fk_assets_artifact_id_artifacts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("artifact_id", name=op.f("uq_assets_artifact_id")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        for column in ("hash", "file_path", "api_key_id", "job_id", "expires_at"):
            batch_op.create_index(batch_op.f(f"ix_assets_{column}"), [column], unique=False)


def downgrade() -> None:
    op.drop_table("assets")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("files_removed")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("workflows")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("internal")
