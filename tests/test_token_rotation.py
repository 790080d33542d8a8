"""Token rotation across processes: two processes reading a workspace's token that is
about to expire refresh it once, with one refresh token, under a row lock on
PostgreSQL; both then use the new token, which is stored encrypted."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.token_rotation import TokenRotator
from sqlalchemy import text

from bot.installs import EncryptedInstallationStore, TokenCipher
from domain.db import make_engine
from sandbox.emulator import SlackEmulator

TEAM = "T0ROTATE"
KEY = Fernet.generate_key().decode()


def store_on(
    url: str, api_url: str, *, client_id: str, client_secret: str, key: str = KEY
) -> EncryptedInstallationStore:
    return EncryptedInstallationStore(
        client_id=client_id,
        engine=make_engine(url),
        cipher=TokenCipher([key]),
        rotator=TokenRotator(
            client_id=client_id, client_secret=client_secret, client=WebClient(base_url=api_url)
        ),
    )


def _read_token_in_another_process(
    url: str, api_url: str, client_id: str, client_secret: str, key: str, barrier: Any, out: Any
) -> None:
    store = store_on(url, api_url, client_id=client_id, client_secret=client_secret, key=key)
    barrier.wait()
    try:
        bot = store.find_bot(enterprise_id=None, team_id=TEAM)
    except Exception as error:  # noqa: BLE001 - told to the test
        out.put(f"failed: {error!r}")
        raise
    out.put(bot.bot_token if bot is not None else None)
    store.engine.dispose()


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackEmulator]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    with SlackEmulator() as emulator:
        yield emulator


def installed(slack: SlackEmulator, store: EncryptedInstallationStore) -> str:
    """Installed with a token that expires in ten minutes; its refresh token."""
    slack.oauth.token_lifetime = 600
    code = slack.oauth.authorize(TEAM, "Rotating")
    answer = WebClient(base_url=slack.api_url).oauth_v2_access(
        client_id=slack.oauth.client_id, client_secret=slack.oauth.client_secret, code=code
    )
    store.save(
        Installation(
            app_id=answer["app_id"],
            team_id=TEAM,
            team_name="Rotating",
            bot_token=answer["access_token"],
            bot_refresh_token=answer["refresh_token"],
            bot_token_expires_in=answer["expires_in"],
            bot_id="BROT",
            bot_user_id=answer["bot_user_id"],
            bot_scopes=answer["scope"],
            user_id=answer["authed_user"]["id"],
            installed_at=time.time(),
        )
    )
    slack.oauth.token_lifetime = 12 * 3600
    return str(answer["refresh_token"])


def test_two_processes_refresh_an_expiring_token_once_with_one_refresh_token(
    postgres_url: str, slack: SlackEmulator
) -> None:
    setup = store_on(
        postgres_url,
        slack.api_url,
        client_id=slack.oauth.client_id,
        client_secret=slack.oauth.client_secret,
    )
    with setup.engine.begin() as conn:
        conn.execute(text("DELETE FROM slack_bots"))
        conn.execute(text("DELETE FROM slack_installations"))
    refresh_token = installed(slack, setup)
    slack.delay("oauth.v2.access", 0.5)  # the second process arrives while the first refreshes

    spawn = multiprocessing.get_context("spawn")
    barrier, out = spawn.Barrier(2), spawn.Queue()
    args = (postgres_url, slack.api_url, slack.oauth.client_id, slack.oauth.client_secret, KEY)
    processes = [
        spawn.Process(target=_read_token_in_another_process, args=(*args, barrier, out))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    tokens = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert slack.oauth.refreshes == [refresh_token]  # refreshed once, with the one token
    current = slack.oauth.tokens_of(TEAM)[-1]
    assert tokens == [current, current]
    assert [c.ok for c in slack.calls_to("oauth.v2.access")] == [True, True]
    with setup.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT bot_token, bot_refresh_token FROM slack_bots WHERE team_id = :t"),
            {"t": TEAM},
        ).all()
    assert len(rows) == 1
    sealed_token, sealed_refresh = rows[0]
    assert TokenCipher([KEY]).open(sealed_token) == current
    assert not sealed_refresh.startswith("xox") and refresh_token not in sealed_refresh
    setup.engine.dispose()
