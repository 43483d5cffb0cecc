"""flow of every estimator result (locomotives, positions, events, snapshots): one estimator per flow;
observations unique per flow, node and sequence number (each flow of a node numbers its own)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("locomotives", "positions", "events", "snapshots")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("flow", sa.String(length=64), nullable=False, server_default="prod"))
    op.create_index("ix_locomotives_flow_present", "locomotives", ["flow", "present", "track_id"])
    op.create_index("ix_events_flow_time", "events", ["flow", "at"])
    op.create_index("ix_snapshots_flow_time", "snapshots", ["flow", "at"])
    with op.batch_alter_table("observations") as batch:
        batch.drop_constraint("uq_observations_node_seq", type_="unique")
        batch.create_unique_constraint("uq_observations_flow_node_seq", ["flow", "node_id", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.drop_constraint("uq_observations_flow_node_seq", type_="unique")
        batch.create_unique_constraint("uq_observations_node_seq", ["node_id", "seq"])
    op.drop_index("ix_snapshots_flow_time", "snapshots")
    op.drop_index("ix_events_flow_time", "events")
    op.drop_index("ix_locomotives_flow_present", "locomotives")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("flow")
