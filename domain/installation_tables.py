"""The tables of Slack's installation and OAuth state stores, declared on the models'
metadata so that migrations and models agree (tests/test_migrations.py).

bot/installs.py reads and writes them through slack_sdk's SQLAlchemy stores, which
declare the same columns on a metadata of their own; the schema is created by the
migration 0008, never by the stores' `create_tables`. The token columns are wider than
the stores' 200 characters: they hold Fernet ciphertext, not the tokens themselves.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, MetaData, String, Table

ENCRYPTED = 1000  # a Fernet token of a rotating Slack token (~150 characters) fits


def define_installation_tables(metadata: MetaData) -> None:
    Table(
        "slack_installations",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client_id", String(32), nullable=False),
        Column("app_id", String(32), nullable=False),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
        Column("enterprise_url", String(200)),
        Column("team_id", String(32)),
        Column("team_name", String(200)),
        Column("bot_token", String(ENCRYPTED)),
        Column("bot_id", String(32)),
        Column("bot_user_id", String(32)),
        Column("bot_scopes", String(1000)),
        Column("bot_refresh_token", String(ENCRYPTED)),
        Column("bot_token_expires_at", DateTime),
        Column("user_id", String(32), nullable=False),
        Column("user_token", String(ENCRYPTED)),
        Column("user_scopes", String(1000)),
        Column("user_refresh_token", String(ENCRYPTED)),
        Column("user_token_expires_at", DateTime),
        Column("incoming_webhook_url", String(200)),
        Column("incoming_webhook_channel", String(200)),
        Column("incoming_webhook_channel_id", String(200)),
        Column("incoming_webhook_configuration_url", String(200)),
        Column("is_enterprise_install", Boolean, nullable=False),
        Column("token_type", String(32)),
        Column("installed_at", DateTime, nullable=False),
        Index(
            "slack_installations_idx",
            "client_id",
            "enterprise_id",
            "team_id",
            "user_id",
            "installed_at",
        ),
    )
    Table(
        "slack_bots",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client_id", String(32), nullable=False),
        Column("app_id", String(32), nullable=False),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
        Column("team_id", String(32)),
        Column("team_name", String(200)),
        Column("bot_token", String(ENCRYPTED)),
        Column("bot_id", String(32)),
        Column("bot_user_id", String(32)),
        Column("bot_scopes", String(1000)),
        Column("bot_refresh_token", String(ENCRYPTED)),
        Column("bot_token_expires_at", DateTime),
        Column("is_enterprise_install", Boolean, nullable=False),
        Column("installed_at", DateTime, nullable=False),
        Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
    )
    Table(
        "slack_oauth_states",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("state", String(200), nullable=False),
        Column("expire_at", DateTime, nullable=False),
    )
