"""counter-offers and revisions of change requests

A change request may answer another one: `counter_of` holds the number of the request
it counters (the other side's *Suggest changes*). A request replaced in one step —
countered, or revised by its proposer — records the number of the request that
replaced it in `replaced_by`, so its card can say "countered as change request #N" or
"revised as #N". The new request status `countered` needs no schema change (statuses
are stored as their text).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("change_request") as batch:
        batch.add_column(sa.Column("counter_of", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("replaced_by", sa.Integer(), nullable=True))
    # A request revised before this version names the one it replaced: the old one
    # learns which request replaced it.
    op.execute(
        "UPDATE change_request SET replaced_by = ("
        "SELECT newer.number FROM change_request AS newer "
        "WHERE newer.contract_id = change_request.contract_id "
        "AND newer.revision_of = change_request.number) "
        "WHERE EXISTS (SELECT 1 FROM change_request AS newer "
        "WHERE newer.contract_id = change_request.contract_id "
        "AND newer.revision_of = change_request.number)"
    )


def downgrade() -> None:
    with op.batch_alter_table("change_request") as batch:
        batch.drop_column("replaced_by")
        batch.drop_column("counter_of")
