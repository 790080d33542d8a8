"""endings with a window for the provider, disputes that freeze escrow, split proposals

A contract the client ends while escrow is held becomes `ending`: who ended it, when,
and until when the provider side may accept the refund or dispute it (the sweep finds
the windows that ran out through a partial index). A dispute freezes one milestone's
escrow until a split is agreed or an operator decides (`dispute`, one per milestone).
Ending a contract stops its pending reminders, found through a partial index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENDING = sa.text("status = 'ending'")
_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("contract") as batch:
        batch.add_column(sa.Column("ending_started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ending_by", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("ending_deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(
            "ix_contract_ending_due",
            ["ending_deadline_at"],
            unique=False,
            postgresql_where=_ENDING,
            sqlite_where=_ENDING,
        )
    op.create_table(
        "dispute",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("milestone_id", sa.Integer(), nullable=False),
        sa.Column("opened_by", sa.String(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_minor", sa.BigInteger(), nullable=False),
        sa.Column("proposal_number", sa.Integer(), nullable=False),
        sa.Column("proposed_by", sa.String(length=32), nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposed_to_provider_minor", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_by", sa.String(length=32), nullable=True),
        sa.Column("settled_how", sa.String(length=16), nullable=True),
        sa.Column("to_provider_minor", sa.BigInteger(), nullable=True),
        sa.Column("to_client_minor", sa.BigInteger(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
            name=op.f("fk_dispute_contract_id_contract"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["milestone_id"],
            ["milestone.id"],
            name=op.f("fk_dispute_milestone_id_milestone"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute")),
        sa.UniqueConstraint("milestone_id", name=op.f("uq_dispute_milestone_id")),
    )
    op.create_index("ix_dispute_contract_id", "dispute", ["contract_id"], unique=False)
    op.create_index(
        "ix_reminder_contract_pending",
        "reminder",
        ["contract_id"],
        unique=False,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_reminder_contract_pending",
        table_name="reminder",
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.drop_index("ix_dispute_contract_id", table_name="dispute")
    op.drop_table("dispute")
    with op.batch_alter_table("contract") as batch:
        batch.drop_index("ix_contract_ending_due", postgresql_where=_ENDING, sqlite_where=_ENDING)
        batch.drop_column("ending_deadline_at")
        batch.drop_column("ending_by")
        batch.drop_column("ending_started_at")
