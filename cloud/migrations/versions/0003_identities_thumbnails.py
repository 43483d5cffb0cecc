"""identities (series and number per locomotive), thumbnails

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("loco_id", sa.String(length=32), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=True),
        sa.Column("series_confidence", sa.Float(), nullable=False),
        sa.Column("series_weight", sa.Float(), nullable=False),
        sa.Column("plate", sa.String(length=32), nullable=True),
        sa.Column("plate_confidence", sa.Float(), nullable=False),
        sa.Column("plate_weight", sa.Float(), nullable=False),
        sa.Column("thumbnail_id", sa.String(length=36), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("loco_id"),
    )
    op.create_table(
        "thumbnails",
        sa.Column("thumbnail_id", sa.String(length=36), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("span_start_m", sa.Float(), nullable=False),
        sa.Column("span_end_m", sa.Float(), nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("thumbnail_id"),
    )
    op.create_index("ix_thumbnails_time", "thumbnails", ["captured_at"])


def downgrade() -> None:
    op.drop_index("ix_thumbnails_time", table_name="thumbnails")
    op.drop_table("thumbnails")
    op.drop_table("identities")
