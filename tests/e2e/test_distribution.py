"""Distribution end to end: two workspaces install the app over HTTP (bolt's OAuth flow
against the emulator's `oauth.v2.access`), each is served with its own token, a shared
channel works, one uninstalls and only its deliveries stop (parked, not spinning), a
reinstall resumes them; a person of one workspace can't act on the other's contract;
no token is ever logged or stored in the clear."""

from __future__ import annotations

import logging
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from bot.app import ListenerPool, start_bot
from bot.server import SlackFront, wsgi_app
from bot.settings import Settings
from domain import export
from domain.model import DeliveryHold, IntentKind, OutboxMessage, OutboxState
from sandbox.emulator import SlackDriver, SlackEmulator
from tests.e2e.conftest import PROXY_VARS, Bot, serve_wsgi

SECRET = "e2e-signing-secret"
TEAM_A, TEAM_B = "T0001", "T0BETA"
ALICE, ADAM = "U0ALICE", "U0ADAM"  # workspace A: a client and a freelancer
BEA, BEN = "U0BEA", "U0BEN"  # workspace B
CHANNEL_A, CHANNEL_B, SHARED = "C0AAAA", "C0BBBB", "C0SHARED"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Distributed:
    bot: Bot
    keys: tuple[str, str]

    @property
    def slack(self) -> SlackEmulator:
        return self.bot.slack

    def install(self, team_id: str, team_name: str) -> str:
        """Add to Slack, as a person does it: the install page (which sets the state
        cookie), Slack's approval, the redirect back with code and state."""
        with OPENER.open(self.bot.url + "/slack/install") as page:
            body = page.read().decode()
            cookie = page.headers["Set-Cookie"].split(";")[0]
        found = re.search(r"state=([0-9a-f-]{36})", body)
        assert found is not None, body
        code = self.slack.oauth.authorize(team_id, team_name)
        request = urllib.request.Request(
            f"{self.bot.url}/slack/oauth_redirect?code={code}&state={found.group(1)}",
            headers={"Cookie": cookie},
        )
        with OPENER.open(request) as done:
            assert done.status == 200
            return str(done.read().decode())

    def say(self, user: str, words: str, *, team: str, channel: str) -> str:
        response = self.bot.driver.command(
            user, words, channel_id=channel, team_id=team, show_reply=False
        )
        assert response.status == 200, response.text
        if not response.body.strip():
            return self.bot.reply_to(response)
        return response.text

    def teams_of_calls(self, method: str, *, channel: str | None = None) -> list[str | None]:
        """Whose token each call of `method` (to `channel`) carried."""
        found = []
        for call in self.slack.calls_to(method):
            if channel is not None and call.params.get("channel") != channel:
                continue
            token = call.headers.get("authorization", "").removeprefix("Bearer ")
            found.append(self.slack.oauth.team_of_token(token))
        return found


@contextmanager
def distributed(database_url: str) -> Iterator[Distributed]:
    keys = (Fernet.generate_key().decode(), Fernet.generate_key().decode())
    with SlackEmulator(validate_blocks=True) as slack:
        for user, name, team in [
            (ALICE, "alice", TEAM_A),
            (ADAM, "adam", TEAM_A),
            (BEA, "bea", TEAM_B),
            (BEN, "ben", TEAM_B),
        ]:
            slack.add_user(user, name, team_id=team, tz="Europe/Berlin", tz_offset=3600)
        slack.add_channel(CHANNEL_A, "a-deals", members=[ALICE, ADAM])
        slack.add_channel(CHANNEL_B, "b-deals", members=[BEA, BEN])
        slack.add_channel(SHARED, "shared-deals", members=[ALICE, BEN])  # Slack Connect
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            DATABASE_URL=database_url,
            SLACK_API_URL=slack.api_url,
            SLACK_CLIENT_ID=slack.oauth.client_id,
            SLACK_CLIENT_SECRET=slack.oauth.client_secret,
            SLACK_SIGNING_SECRET=SECRET,
            TOKEN_ENCRYPTION_KEY=",".join(keys),
        )
        listeners = ListenerPool(16)
        started = start_bot(
            settings,
            bot_token="",
            signing_secret=SECRET,
            scheduler=False,
            migrate=True,
            listener_executor=listeners,
            distribution=settings.require_distribution(),
        )
        url, server = serve_wsgi(wsgi_app(SlackFront(started.app, started.runtime.database_ok)))
        driver = SlackDriver(slack, url, SECRET)
        bot = Bot(slack, driver, started.runtime, started.delivery, url, listeners)
        try:
            yield Distributed(bot, keys)
            listeners.wait_idle(30)
            started.delivery.close()
        finally:
            server.shutdown()
            server.server_close()
            started.close(timeout=30)


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Distributed]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")
    with distributed(f"sqlite:///{tmp_path / 'bot.sqlite3'}") as found:
        yield found


def new_contract(
    dist: Distributed, client: str, freelancer: str, *, team: str, channel: str
) -> str:
    return dist.say(
        client,
        f'new "Site for {client}" client=<@{client}> freelancer=<@{freelancer}>',
        team=team,
        channel=channel,
    )


def bearer(headers: dict[str, str]) -> str:
    return headers.get("authorization", "").removeprefix("Bearer ")


def contracts(dist: Distributed) -> list[dict[str, Any]]:
    with dist.bot.runtime.sessions() as session, session.begin():
        found: list[dict[str, Any]] = export.export_contracts(session)["contracts"]
        return found


def test_two_workspaces_each_served_with_its_own_token_and_one_uninstalling_stops_only_its_own(
    dist: Distributed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    page = dist.install(TEAM_A, "Agency A")
    assert "/invite @milestone-bot" in page and "/milestone help" in page
    dist.install(TEAM_B, "Client B")

    assert "created" in new_contract(dist, ALICE, ADAM, team=TEAM_A, channel=CHANNEL_A)
    assert "created" in new_contract(dist, BEA, BEN, team=TEAM_B, channel=CHANNEL_B)
    dist.bot.quiet()
    assert set(dist.teams_of_calls("chat.postMessage", channel=CHANNEL_A)) == {TEAM_A}
    assert set(dist.teams_of_calls("chat.postMessage", channel=CHANNEL_B)) == {TEAM_B}

    # A Slack Connect channel: a contract made from A, its provider a person of B who
    # agrees from B's side.
    assert "created" in new_contract(dist, ALICE, BEN, team=TEAM_A, channel=SHARED)
    dist.say(ALICE, 'add "Design" 500 2031-01-01 contract=3', team=TEAM_A, channel=SHARED)
    dist.say(ALICE, "start contract=3", team=TEAM_A, channel=SHARED)
    dist.say(BEN, "start contract=3", team=TEAM_B, channel=SHARED)
    dist.bot.quiet()
    assert [c["status"] for c in contracts(dist)] == ["negotiating", "negotiating", "active"]

    # Bea opens the app's Home in B: published with B's token.
    opened = {"type": "app_home_opened", "user": BEA, "tab": "home"}
    assert dist.bot.driver.event(opened, team_id=TEAM_B).status == 200
    dist.bot.quiet()
    homes = [c for c in dist.slack.calls_to("views.publish") if c.params.get("user_id") == BEA]
    assert homes and {dist.slack.oauth.team_of_token(bearer(c.headers)) for c in homes} == {TEAM_B}

    # B uninstalls: Slack revokes B's tokens and tells the app.
    dist.slack.oauth.uninstall(TEAM_B)
    assert dist.bot.driver.event({"type": "app_uninstalled"}, team_id=TEAM_B).status == 200
    dist.bot.quiet()
    with dist.bot.runtime.sessions() as session, session.begin():
        hold = session.get(DeliveryHold, f"team:{TEAM_B}")
        assert hold is not None and hold.reason == "app_uninstalled"
        left = session.execute(
            text("SELECT count(*) FROM slack_bots WHERE team_id = :t"), {"t": TEAM_B}
        )
        assert left.scalar() == 0
        # Something for B to show later (as a reminder or an automatic release would).
        intent = OutboxMessage(
            kind=IntentKind.HOME,
            user_id=BEA,
            team_id=TEAM_B,
            created_at=dist.bot.runtime.clock(),
            next_attempt_at=dist.bot.runtime.clock(),
        )
        session.add(intent)
        session.flush()
        intent_id = intent.id
    calls_before = len(dist.slack.calls)
    dist.bot.delivery.deliver([intent_id])
    dist.bot.delivery.sweep()
    with dist.bot.runtime.sessions() as session, session.begin():
        parked = session.get(OutboxMessage, intent_id)
        assert parked is not None and parked.state == OutboxState.HELD
        assert parked.last_error == f"held: team:{TEAM_B} (app_uninstalled)"
    assert len(dist.slack.calls) == calls_before  # nothing tried, nothing spins

    # B's contract stays, and export shows it.
    assert [c["team_id"] for c in contracts(dist)] == [TEAM_A, TEAM_B, TEAM_A]

    # B's people are told to install it again; A keeps working as before.
    answer = dist.say(BEA, "status", team=TEAM_B, channel=CHANNEL_B)
    assert "install" in answer.lower()
    reply = dist.say(ALICE, 'add "Copy" 300 2031-02-01', team=TEAM_A, channel=CHANNEL_A)
    assert "Copy" in reply or "added" in reply.lower()
    dist.bot.quiet()
    assert set(dist.teams_of_calls("chat.postMessage", channel=CHANNEL_A)) == {TEAM_A}

    # B installs again: what waited is delivered with B's new token.
    dist.install(TEAM_B, "Client B")
    dist.bot.quiet()
    with dist.bot.runtime.sessions() as session, session.begin():
        sent = session.get(OutboxMessage, intent_id)
        assert sent is not None and sent.state == OutboxState.SENT
        assert session.get(DeliveryHold, f"team:{TEAM_B}") is None
    publishes = [c for c in dist.slack.calls_to("views.publish") if c.params.get("user_id") == BEA]
    token = bearer(publishes[-1].headers)
    assert token in dist.slack.oauth.tokens_of(TEAM_B) and publishes[-1].ok

    # No token in the clear: not in the database, not in any log line, not in export.
    issued = [t.token for t in dist.slack.oauth.tokens.values()]
    assert issued
    with dist.bot.runtime.engine.connect() as conn:
        stored = " ".join(
            str(value)
            for table in ("slack_bots", "slack_installations")
            for row in conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            for value in row
        )
    exported = str(contracts(dist))
    for token in issued:
        assert token not in stored
        assert token not in caplog.text
        assert token not in exported
    assert "xoxb-" not in caplog.text and "xoxe" not in caplog.text
    assert dist.slack.oauth.client_secret not in caplog.text


def test_a_person_of_one_workspace_cannot_act_on_the_others_contract(dist: Distributed) -> None:
    dist.install(TEAM_A, "Agency A")
    dist.install(TEAM_B, "Client B")
    new_contract(dist, ALICE, ADAM, team=TEAM_A, channel=CHANNEL_A)
    dist.say(ALICE, 'add "Design" 500 2031-01-01', team=TEAM_A, channel=CHANNEL_A)
    dist.say(ALICE, "start", team=TEAM_A, channel=CHANNEL_A)  # the card now asks Adam
    dist.bot.quiet()
    card = dist.bot.card("contract:1")
    agree = dist.slack.find_button(CHANNEL_A, card.ts, label_startswith="Agree")

    # Guessing the contract's id from B's own channel.
    for words in ("status contract=1", "start contract=1", "fund contract=1", "history contract=1"):
        answer = dist.say(BEA, words, team=TEAM_B, channel=CHANNEL_B)
        assert "Design" not in answer and "Site for" not in answer, (words, answer)
    # A's channel id with B's workspace, and the card's button with its real value: Slack
    # signs the channel a command comes from and only its members type there (a Slack
    # Connect member sees the cards anyway), so what is checked is that nothing a person
    # who is no party does there counts.
    for words in ("start", "fund", "approve", "end"):
        answer = dist.say(BEA, words, team=TEAM_B, channel=CHANNEL_A)
        assert "not a party" in answer, (words, answer)
    response = dist.bot.driver.click(
        BEA,
        channel_id=CHANNEL_A,
        message_ts=card.ts,
        action_id=agree.action_id,
        value=agree.value,
        team_id=TEAM_B,
    )
    assert response.status == 200
    dist.bot.quiet()

    # Had any of it counted as the provider's agreement, the contract would be active.
    assert contracts(dist)[0]["status"] == "negotiating"
    assert contracts(dist)[0]["freelancer_id"] == ADAM
    # Nothing for B was ever sent with A's token, nor the other way round.
    assert set(dist.teams_of_calls("chat.postMessage", channel=CHANNEL_A)) == {TEAM_A}


def test_a_token_about_to_expire_is_refreshed_once_and_stored_encrypted(
    dist: Distributed,
) -> None:
    dist.slack.oauth.token_lifetime = 600  # inside the 120 minutes: refreshed when read
    dist.install(TEAM_A, "Agency A")
    first = dist.slack.oauth.tokens_of(TEAM_A)
    dist.slack.oauth.token_lifetime = 12 * 3600
    assert "created" in new_contract(dist, ALICE, ADAM, team=TEAM_A, channel=CHANNEL_A)
    dist.bot.quiet()

    assert len(dist.slack.oauth.refreshes) == 1
    tokens = dist.slack.oauth.tokens_of(TEAM_A)
    assert len(tokens) == 2 and tokens[0] == first[0]
    used = [
        c.headers["authorization"].removeprefix("Bearer ")
        for c in dist.slack.calls_to("chat.postMessage")
    ]
    assert used and set(used) == {tokens[1]}
    with dist.bot.runtime.engine.connect() as conn:
        sealed = conn.execute(text("SELECT bot_token, bot_refresh_token FROM slack_bots")).one()
    assert all(value and not value.startswith("xox") for value in sealed)


def test_a_key_rotation_keeps_old_tokens_readable(dist: Distributed) -> None:
    from bot.installs import TokenCipher

    old_key, new_key = dist.keys[1], Fernet.generate_key().decode()
    sealed_with_old = TokenCipher([old_key]).seal("xoxb-1-secret")
    rotated = TokenCipher([new_key, old_key])
    assert rotated.open(sealed_with_old) == "xoxb-1-secret"
    assert TokenCipher([new_key]).open(rotated.reseal(sealed_with_old)) == "xoxb-1-secret"


def test_revoked_tokens_hold_that_workspace_and_a_reinstall_resumes_it(dist: Distributed) -> None:
    dist.install(TEAM_A, "Agency A")
    dist.install(TEAM_B, "Client B")
    new_contract(dist, BEA, BEN, team=TEAM_B, channel=CHANNEL_B)
    dist.bot.quiet()

    dist.slack.oauth.uninstall(TEAM_B)  # the tokens stop working
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UB0BETA"]}}
    assert dist.bot.driver.event(revoked, team_id=TEAM_B).status == 200
    dist.bot.quiet()
    with dist.bot.runtime.sessions() as session, session.begin():
        hold = session.get(DeliveryHold, f"team:{TEAM_B}")
        assert hold is not None and hold.reason == "tokens_revoked"
        assert session.get(DeliveryHold, f"team:{TEAM_A}") is None

    assert "created" in new_contract(dist, ALICE, ADAM, team=TEAM_A, channel=CHANNEL_A)
    dist.install(TEAM_B, "Client B")
    dist.bot.quiet()
    with dist.bot.runtime.sessions() as session, session.begin():
        assert session.get(DeliveryHold, f"team:{TEAM_B}") is None
    assert "created" in new_contract(dist, BEN, BEA, team=TEAM_B, channel=CHANNEL_B)
    dist.bot.quiet()
    assert set(dist.teams_of_calls("chat.postMessage", channel=CHANNEL_B)) == {TEAM_B}
