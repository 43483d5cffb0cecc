"""nodes: the current birth's time, when the node was last heard from, and why it is not online, so a
replayed birth cannot take over a node and a node that fell silent is not shown online for good;
votes: each recognition counted, saved before it is acknowledged, and the whole tally per identity

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("born_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(length=200), nullable=False, server_default=""))
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("tallies", sa.JSON(), nullable=True))
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("thumbnail_id", sa.String(length=36), nullable=False),
        sa.Column("loco_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=True),
        sa.Column("series_confidence", sa.Float(), nullable=False),
        sa.Column("plate", sa.String(length=32), nullable=True),
        sa.Column("plate_confidence", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flow", "thumbnail_id", name="uq_votes_flow_thumbnail"),
    )
    op.create_index("ix_votes_time", "votes", ["at"])


def downgrade() -> None:
    op.drop_index("ix_votes_time", table_name="votes")
    op.drop_table("votes")
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("tallies")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("reason")
        batch.drop_column("last_seen_at")
        batch.drop_column("born_at")
