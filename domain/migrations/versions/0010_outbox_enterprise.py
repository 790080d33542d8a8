"""the Enterprise Grid org of each intent, and who speaks in a Slack Connect channel

`outbox_message.enterprise_id` records the org of the intent's workspace when the
request that wrote it named one, so that with several org-wide installations the
delivery uses the right one. `channel_speaker` remembers, per channel, the installation
whose bot posts there when the owning workspace's bot is not a member of it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("enterprise_id", sa.String(length=32), nullable=True))
    op.create_table(
        "channel_speaker",
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=True),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_channel_speaker")),
    )


def downgrade() -> None:
    op.drop_table("channel_speaker")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("enterprise_id")
