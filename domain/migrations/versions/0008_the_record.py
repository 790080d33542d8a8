"""the record as it was, and finding things

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nothing to change: the title a milestone had at the time travels in each event's
    # `data` (a JSON column), events written before are named by replaying title edits
    # (domain.record), and what waits for a person is read from existing columns.
    pass


def downgrade() -> None:
    pass
