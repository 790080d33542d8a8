"""partial releases, bonuses outside escrow, more time to review

A milestone records what was released of it early (`released_early_minor`: partial
releases; the rest stays held) and the client's asks for more time to review during
the current submission (`extension_asks`, and the one waiting for the provider's
answer: `extension_asked_days`, `extension_asked_at`). A bonus is a ledger entry of the
contract, not of a milestone: `ledger_entry.milestone_id` may be empty.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("milestone") as batch:
        # Existing rows start at 0 (the server default fills them in), then the
        # default goes: the application always writes the value.
        batch.add_column(
            sa.Column("released_early_minor", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("extension_asks", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("extension_asked_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("extension_asked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("milestone") as batch:
        batch.alter_column("released_early_minor", server_default=None)
        batch.alter_column("extension_asks", server_default=None)
    with op.batch_alter_table("ledger_entry") as batch:
        batch.alter_column("milestone_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # Bonuses have no milestone: they can't be kept once every entry needs one.
    op.execute("DELETE FROM ledger_entry WHERE milestone_id IS NULL")
    with op.batch_alter_table("ledger_entry") as batch:
        batch.alter_column("milestone_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("milestone") as batch:
        batch.drop_column("extension_asked_at")
        batch.drop_column("extension_asked_days")
        batch.drop_column("extension_asks")
        batch.drop_column("released_early_minor")
