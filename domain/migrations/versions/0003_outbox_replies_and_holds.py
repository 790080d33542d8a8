"""outbox replies, workspace and channel of each intent, delivery holds, Home viewers

A person's confirmation becomes an outbox intent written with the change (its address
and text), so it is sent if and only if the change was committed. Each intent records
the workspace and channel it is shown in, so a workspace whose token is refused, or a
channel that is gone, holds its intents (`delivery_hold`) instead of dead-lettering
them. Home viewers: only the Home of someone who has opened it is kept up to date.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
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
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("team_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("channel_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("address", sa.Text(), nullable=True))
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.create_index(
            "ix_outbox_message_held",
            ["team_id", "channel_id"],
            unique=False,
            postgresql_where=sa.text("state = 'held'"),
            sqlite_where=sa.text("state = 'held'"),
        )
    # Intents still waiting learn where they are shown.
    op.execute(
        "UPDATE outbox_message SET team_id = "
        "(SELECT contract.team_id FROM contract WHERE contract.id = outbox_message.contract_id) "
        "WHERE state = 'pending' AND contract_id IS NOT NULL"
    )
    op.execute(
        "UPDATE outbox_message SET channel_id = "
        "(SELECT contract.channel_id FROM contract WHERE contract.id = outbox_message.contract_id) "
        "WHERE state = 'pending' AND contract_id IS NOT NULL AND kind <> 'home'"
    )
    op.create_table(
        "delivery_hold",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_delivery_hold")),
    )
    op.create_index(
        "ix_delivery_hold_next_check_at", "delivery_hold", ["next_check_at"], unique=False
    )
    op.create_table(
        "home_viewer",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("first_opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_home_viewer")),
    )


def downgrade() -> None:
    op.drop_table("home_viewer")
    op.drop_index("ix_delivery_hold_next_check_at", table_name="delivery_hold")
    op.drop_table("delivery_hold")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_index(
            "ix_outbox_message_held",
            postgresql_where=sa.text("state = 'held'"),
            sqlite_where=sa.text("state = 'held'"),
        )
        batch.drop_column("body")
        batch.drop_column("address")
        batch.drop_column("channel_id")
        batch.drop_column("team_id")
