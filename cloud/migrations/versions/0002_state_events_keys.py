"""locomotives, positions, events, snapshots, api keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:45:01.179740
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("loco_id", sa.String(length=32), nullable=True),
        sa.Column("station", sa.String(length=64), nullable=True),
        sa.Column("camera_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_time", ["at"], unique=False)
        batch_op.create_index("ix_events_track_time", ["track_id", "at"], unique=False)

    op.create_table(
        "locomotives",
        sa.Column("loco_id", sa.String(length=32), nullable=False),
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("start_m", sa.Float(), nullable=False),
        sa.Column("end_m", sa.Float(), nullable=False),
        sa.Column("start_seen", sa.Boolean(), nullable=False),
        sa.Column("end_seen", sa.Boolean(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=True),
        sa.Column("moving", sa.Boolean(), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=True),
        sa.Column("settled_start_m", sa.Float(), nullable=False),
        sa.Column("settled_end_m", sa.Float(), nullable=False),
        sa.Column("still_since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("loco_id"),
    )
    with op.batch_alter_table("locomotives", schema=None) as batch_op:
        batch_op.create_index("ix_locomotives_present", ["present", "track_id"], unique=False)

    op.create_table(
        "positions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loco_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("start_m", sa.Float(), nullable=False),
        sa.Column("end_m", sa.Float(), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.create_index("ix_positions_loco_time", ["loco_id", "at"], unique=False)

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index("ix_snapshots_time", ["at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshots_time")

    op.drop_table("snapshots")
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_index("ix_positions_loco_time")

    op.drop_table("positions")
    with op.batch_alter_table("locomotives", schema=None) as batch_op:
        batch_op.drop_index("ix_locomotives_present")

    op.drop_table("locomotives")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_track_time")
        batch_op.drop_index("ix_events_time")

    op.drop_table("events")
    op.drop_table("api_keys")
