"""each person's choice of where they are told what needs their action

`notification_choice`: channel, dm, both or digest, per person (no row: both), and
when their next morning digest is due. `digest`: one row per person and local day, so a
digest is sent at most once a day however many sweepers run. The new outbox kinds
(`direct`, `direct_reminder`, `digest`) fit the existing `kind` column.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_choice",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column(
            "choice",
            sa.Enum(
                "channel",
                "dm",
                "both",
                "digest",
                name="notify",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("chosen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_digest_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_choice")),
    )
    op.create_index(
        "ix_notification_choice_digest",
        "notification_choice",
        ["choice", "next_digest_at"],
        unique=False,
    )
    op.create_table(
        "digest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest")),
        sa.UniqueConstraint("user_id", "day", name=op.f("uq_digest_user_id_day")),
    )


def downgrade() -> None:
    op.drop_table("digest")
    op.drop_index("ix_notification_choice_digest", table_name="notification_choice")
    op.drop_table("notification_choice")
