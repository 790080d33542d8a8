"""money that really moves: provider payments, movements, payout accounts, webhooks

With `PAYMENTS=stripe` a fund or top-up is a `provider_payment` the client pays through
a checkout link; its ledger entry is written when the provider's signed webhook
(`payment_webhook`, one row per event id) confirms it. A release or refund of money the
provider holds is a `provider_movement`, written with its ledger entry and carried out
by the payments sender under the entry's key. `payout_account` holds the provider side's
connected accounts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("milestone") as batch:
        # Existing rows were funded as records (the server default fills them in), then
        # the default goes: the application always writes the value.
        batch.add_column(
            sa.Column(
                "paid_through_provider", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("milestone") as batch:
        batch.alter_column("paid_through_provider", server_default=None)
    op.create_table(
        "provider_payment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("milestone_id", sa.Integer(), nullable=False),
        sa.Column("ledger_key", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("asked_by", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("checkout_session", sa.String(length=255), nullable=True),
        sa.Column("payment_intent", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
            name=op.f("fk_provider_payment_contract_id_contract"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["milestone_id"],
            ["milestone.id"],
            name=op.f("fk_provider_payment_milestone_id_milestone"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_payment")),
        sa.UniqueConstraint("ledger_key", name=op.f("uq_provider_payment_ledger_key")),
        sa.UniqueConstraint("token", name=op.f("uq_provider_payment_token")),
    )
    op.create_index("ix_provider_payment_milestone_id", "provider_payment", ["milestone_id"])
    op.create_index("ix_provider_payment_payment_intent", "provider_payment", ["payment_intent"])
    op.create_table(
        "provider_movement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=True),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("milestone_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("idempotency_key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refund_of", sa.String(length=255), nullable=True),
        sa.Column("provider_ref", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["ledger_entry.id"],
            name=op.f("fk_provider_movement_ledger_entry_id_ledger_entry"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contract.id"],
            name=op.f("fk_provider_movement_contract_id_contract"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["milestone_id"],
            ["milestone.id"],
            name=op.f("fk_provider_movement_milestone_id_milestone"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_movement")),
        sa.UniqueConstraint("ledger_entry_id", name=op.f("uq_provider_movement_ledger_entry_id")),
        sa.UniqueConstraint("key", name=op.f("uq_provider_movement_key")),
    )
    op.create_index(
        "ix_provider_movement_due",
        "provider_movement",
        ["next_attempt_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_index("ix_provider_movement_contract_id", "provider_movement", ["contract_id"])
    op.create_index("ix_provider_movement_refund_of", "provider_movement", ["refund_of"])
    op.create_table(
        "payout_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=True),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_account")),
        sa.UniqueConstraint("user_id", name=op.f("uq_payout_account_user_id")),
        sa.UniqueConstraint("token", name=op.f("uq_payout_account_token")),
        sa.UniqueConstraint("account_id", name=op.f("uq_payout_account_account_id")),
    )
    op.create_table(
        "payment_webhook",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=120), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_webhook")),
    )


def downgrade() -> None:
    op.drop_table("payment_webhook")
    op.drop_table("payout_account")
    op.drop_index("ix_provider_movement_refund_of", table_name="provider_movement")
    op.drop_index("ix_provider_movement_contract_id", table_name="provider_movement")
    op.drop_index("ix_provider_movement_due", table_name="provider_movement")
    op.drop_table("provider_movement")
    op.drop_index("ix_provider_payment_payment_intent", table_name="provider_payment")
    op.drop_index("ix_provider_payment_milestone_id", table_name="provider_payment")
    op.drop_table("provider_payment")
    with op.batch_alter_table("milestone") as batch:
        batch.drop_column("paid_through_provider")
