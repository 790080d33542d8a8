"""payments through a provider: no schema change yet

`PAYMENTS=ledger` (the only provider that runs in this version) needs no table beyond the
ledger. The tables for Stripe Connect (payout accounts, checkout sessions, provider
movements, webhook receipts) come with its wiring; the revision keeps the chain
0007 → 0008 → 0009 → 0010 fixed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # no schema change: see the docstring


def downgrade() -> None:
    pass
