"""The installation store: tokens encrypted at rest (and readable after a key
rotation), each workspace's client found by its team (Enterprise Grid included), and
no token in any log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store.models.installation import Installation
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bot.installs import (
    NOT_INSTALLED,
    EncryptedInstallationStore,
    InstalledClients,
    NotInstalled,
    TokenCipher,
    redact_tokens_in_logs,
)
from domain.db import make_engine, upgrade_schema
from domain.model import IntentKind, OutboxMessage
from domain.outbox import Speaker

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'installs.sqlite3'}")
    upgrade_schema(engine)
    yield engine
    engine.dispose()


def store_with(engine: Engine, *keys: str) -> EncryptedInstallationStore:
    return EncryptedInstallationStore(client_id="1.2", engine=engine, cipher=TokenCipher(keys))


def install(
    store: EncryptedInstallationStore,
    *,
    team_id: str | None,
    token: str,
    enterprise_id: str | None = None,
    org_wide: bool = False,
) -> None:
    store.save(
        Installation(
            app_id="A1",
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=token,
            bot_id="B1",
            bot_user_id="UB1",
            bot_scopes="commands,chat:write",
            user_id="U1",
            is_enterprise_install=org_wide,
            installed_at=time.time(),
        )
    )


def clients_of(store: EncryptedInstallationStore) -> InstalledClients:
    return InstalledClients(store, lambda token: WebClient(token=token))


def test_tokens_are_stored_encrypted_and_read_back_in_the_clear(engine: Engine) -> None:
    store = store_with(engine, NEW)
    install(store, team_id="T1", token="xoxb-1-secret")

    with engine.connect() as conn:
        stored = [
            value
            for table in ("slack_bots", "slack_installations")
            for (value,) in conn.execute(text(f"SELECT bot_token FROM {table}"))  # noqa: S608
        ]
    assert len(stored) == 2 and all("xoxb" not in value for value in stored)
    bot = store.find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_token == "xoxb-1-secret"
    found = store.find_installation(enterprise_id=None, team_id="T1")
    assert found is not None and found.bot_token == "xoxb-1-secret"


def test_a_new_key_in_front_still_reads_tokens_sealed_with_the_old_one(engine: Engine) -> None:
    install(store_with(engine, OLD), team_id="T1", token="xoxb-1-secret")

    bot = store_with(engine, NEW, OLD).find_bot(enterprise_id=None, team_id="T1")

    assert bot is not None and bot.bot_token == "xoxb-1-secret"


def test_each_workspace_gets_a_client_with_its_own_token(engine: Engine) -> None:
    store = store_with(engine, NEW)
    install(store, team_id="T1", token="xoxb-one")
    install(store, team_id="T2", token="xoxb-two", enterprise_id="E1")  # a Grid workspace

    clients = clients_of(store)

    assert clients.client_for("T1").token == "xoxb-one"
    assert clients.client_for("T2").token == "xoxb-two"


def test_an_org_wide_install_serves_the_workspaces_of_its_org(engine: Engine) -> None:
    store = store_with(engine, NEW)
    install(store, team_id=None, token="xoxb-org", enterprise_id="E1", org_wide=True)

    assert clients_of(store).client_for("T9").token == "xoxb-org"


def test_with_several_org_wide_installs_the_org_of_the_intent_or_of_a_request_chooses(
    engine: Engine,
) -> None:
    store = store_with(engine, NEW)
    install(store, team_id=None, token="xoxb-org-1", enterprise_id="E1", org_wide=True)
    install(store, team_id=None, token="xoxb-org-2", enterprise_id="E2", org_wide=True)
    install(store, team_id="T1", token="xoxb-own", enterprise_id="E1")  # its own install
    clients = clients_of(store)

    assert clients.client_for("T9", enterprise_id="E2").token == "xoxb-org-2"
    assert clients.client_for("T8", enterprise_id="E1").token == "xoxb-org-1"
    assert clients.client_for("T1", enterprise_id="E1").token == "xoxb-own"
    with pytest.raises(NotInstalled):
        clients.client_for("T9")  # which org? nothing says: it waits, held
    # A request from T9 named its org (its intents recorded it): later ones use it too.
    with Session(engine) as session, session.begin():
        session.add(
            OutboxMessage(
                kind=IntentKind.HOME,
                user_id="U9",
                team_id="T9",
                enterprise_id="E2",
                created_at=datetime.now(UTC),
                next_attempt_at=datetime.now(UTC),
            )
        )
    clients.forget("T9")
    assert clients.client_for("T9").token == "xoxb-org-2"
    # Whom a Slack Connect channel's delivery may ask, each installation once.
    assert set(clients.installations()) == {
        Speaker("E1", None),
        Speaker("E2", None),
        Speaker("E1", "T1"),
    }


def test_a_workspace_without_an_installation_is_refused_as_not_installed(
    engine: Engine,
) -> None:
    store = store_with(engine, NEW)
    install(store, team_id="T1", token="xoxb-one")
    clients = clients_of(store)

    with pytest.raises(NotInstalled) as caught:
        clients.client_for("T2")
    assert caught.value.response["error"] == NOT_INSTALLED

    store.delete_all(enterprise_id=None, team_id="T1")
    clients.forget("T1")
    with pytest.raises(NotInstalled):
        clients.client_for("T1")


def test_no_token_reaches_a_log_line_or_a_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redact_tokens_in_logs()
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("tests.installs")

    log.info("answer: %s", {"access_token": "xoxe.xoxb-1-abc", "refresh_token": "xoxe-1-def"})
    try:
        raise ValueError("bad token xoxb-123-456")
    except ValueError:
        log.exception("failed")

    assert "xoxe.xoxb-1-abc" not in caplog.text and "xoxe-1-def" not in caplog.text
    assert "xoxb-123-456" not in caplog.text
    assert "[token]" in caplog.text
