"""index ledger entries by milestone, request receipts by time

Found by tests/test_query_plans.py: what is held for a milestone (asked by every
release, refund and top-up, so by the automatic-release sweep for each milestone)
was a sequential scan of the whole ledger, and the sweep's housekeeping that forgets
old request receipts scanned every receipt.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ledger_entry_milestone_id", "ledger_entry", ["milestone_id"], unique=False)
    op.create_index("ix_request_receipt_at", "request_receipt", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_request_receipt_at", table_name="request_receipt")
    op.drop_index("ix_ledger_entry_milestone_id", table_name="ledger_entry")
