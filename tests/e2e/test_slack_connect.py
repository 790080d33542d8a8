"""Distribution in Slack Connect channels and Enterprise Grid orgs, end to end over
signed HTTP against the emulator: a shared channel only the other side's bot is in is
served with that side's token (cards posted and updated by it); a channel no installed
workspace's bot is in parks its intents with that reason and tries nothing more until
the check is due, and a bot invited later takes over; two org-wide installations in
different orgs each serve their own workspaces."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.delivery import NO_BOT_IN_CHANNEL
from domain import outbox
from domain.model import ChannelSpeaker, DeliveryHold, IntentKind, OutboxMessage, OutboxState
from tests.e2e.conftest import PROXY_VARS
from tests.e2e.test_distribution import (
    ALICE,
    BEN,
    OPENER,
    TEAM_A,
    TEAM_B,
    Distributed,
    bearer,
    contracts,
    distributed,
    new_contract,
)

CONNECT = "C0CONNECT"  # Slack Connect: A's and B's people, only B's bot
NOBODY = "C0NOBODY"  # Slack Connect: B's bot leaves, nobody's bot is left
ORG_1, ORG_2 = "E0ORGONE", "E0ORGTWO"
TEAM_1, TEAM_2 = "T0ORGONE", "T0ORGTWO"  # a workspace in each org
OLGA, OSKAR = "U0OLGA", "U0OSKAR"  # of TEAM_1
TINA, TOM = "U0TINA", "U0TOM"  # of TEAM_2
CHANNEL_1, CHANNEL_2 = "C0ORGONE", "C0ORGTWO"


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Distributed]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")
    with distributed(f"sqlite:///{tmp_path / 'bot.sqlite3'}") as found:
        yield found


def sent_by(dist: Distributed, method: str, channel: str) -> list[str | None]:
    """Whose token each successful call of `method` in `channel` carried."""
    return [
        dist.slack.oauth.team_of_token(bearer(call.headers))
        for call in dist.slack.calls_to(method)
        if call.params.get("channel") == channel and call.ok
    ]


def calls_in(dist: Distributed, channel: str) -> int:
    return sum(1 for call in dist.slack.calls if call.params.get("channel") == channel)


def rows_in(dist: Distributed, channel: str) -> list[OutboxMessage]:
    with dist.bot.runtime.sessions() as session, session.begin():
        return list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == channel))
        )


def test_a_shared_channel_only_the_other_sides_bot_is_in_is_served_with_its_token(
    dist: Distributed,
) -> None:
    dist.install(TEAM_A, "Agency A")
    dist.install(TEAM_B, "Client B")
    dist.slack.add_channel(CONNECT, "connect-deals", members=[ALICE, BEN], bot_teams=[TEAM_B])

    # Alice (of A, whose bot is not in the channel) makes the contract there.
    assert "created" in new_contract(dist, ALICE, BEN, team=TEAM_A, channel=CONNECT)
    dist.say(ALICE, 'add "Design" 500 2031-01-01', team=TEAM_A, channel=CONNECT)
    dist.say(ALICE, "start", team=TEAM_A, channel=CONNECT)
    dist.say(BEN, "start", team=TEAM_B, channel=CONNECT)
    dist.bot.quiet()

    assert [c["status"] for c in contracts(dist)] == ["active"]
    assert contracts(dist)[0]["team_id"] == TEAM_A
    posts, updates = (sent_by(dist, m, CONNECT) for m in ("chat.postMessage", "chat.update"))
    assert posts and set(posts) == {TEAM_B}
    assert updates and set(updates) == {TEAM_B}  # its own cards: only their poster edits them
    card = dist.bot.card("contract:1")
    assert card.team == TEAM_B and "Design" in str(card.blocks)
    assert {row.state for row in rows_in(dist, CONNECT)} == {OutboxState.SENT}
    with dist.bot.runtime.sessions() as session, session.begin():
        speaker = session.get(ChannelSpeaker, CONNECT)
        assert speaker is not None and (speaker.enterprise_id, speaker.team_id) == (None, TEAM_B)
    # Nothing was ever refused in the channel: B was found before the first post.
    refused = [c for c in dist.slack.calls if c.params.get("channel") == CONNECT and not c.ok]
    assert refused == []

    # B's bot leaves and A's is invited: the next post finds A's, which takes over;
    # the card B posted can't be edited by A, so A posts it anew.
    dist.slack.set_membership(CONNECT, is_member=False, team_id=TEAM_B)
    dist.slack.set_membership(CONNECT, is_member=True, team_id=TEAM_A)
    before = len(dist.slack.calls)
    dist.say(ALICE, 'add "Copy" 300 2031-02-01', team=TEAM_A, channel=CONNECT)
    dist.bot.quiet()

    later = [c for c in dist.slack.calls[before:] if c.params.get("channel") == CONNECT]
    posted_later = [
        dist.slack.oauth.team_of_token(bearer(c.headers))
        for c in later
        if c.method == "chat.postMessage" and c.ok
    ]
    assert posted_later and set(posted_later) == {TEAM_A}
    assert {row.state for row in rows_in(dist, CONNECT)} == {OutboxState.SENT}
    with dist.bot.runtime.sessions() as session, session.begin():
        speaker = session.get(ChannelSpeaker, CONNECT)
        assert speaker is not None and speaker.team_id == TEAM_A
        assert outbox.holds(session) == []


def test_a_channel_no_installed_bot_is_in_parks_its_intents_with_that_reason_until_one_is(
    dist: Distributed,
) -> None:
    dist.install(TEAM_A, "Agency A")
    dist.install(TEAM_B, "Client B")
    dist.slack.add_channel(NOBODY, "nobody-deals", members=[ALICE, BEN], bot_teams=[TEAM_B])
    assert "created" in new_contract(dist, ALICE, BEN, team=TEAM_A, channel=NOBODY)
    dist.say(ALICE, 'add "Design" 500 2031-01-01', team=TEAM_A, channel=NOBODY)
    dist.bot.quiet()
    card_ts = dist.bot.card("contract:1").ts

    dist.slack.set_membership(NOBODY, is_member=False, team_id=TEAM_B)  # B's bot removed
    answer = dist.say(ALICE, "start", team=TEAM_A, channel=NOBODY)  # its answer still comes
    assert answer
    dist.bot.quiet()

    with dist.bot.runtime.sessions() as session, session.begin():
        hold = session.get(DeliveryHold, f"channel:{NOBODY}")
        assert hold is not None and hold.reason == NO_BOT_IN_CHANNEL
    held = [row for row in rows_in(dist, NOBODY) if row.state == OutboxState.HELD]
    assert held and all(NO_BOT_IN_CHANNEL in (row.last_error or "") for row in held)
    assert not [row for row in rows_in(dist, NOBODY) if row.state == OutboxState.DEAD]
    # Both workspaces' bots were asked; neither is a member.
    asked = {
        dist.slack.oauth.team_of_token(bearer(c.headers))
        for c in dist.slack.calls_to("conversations.info")
        if c.params.get("channel") == NOBODY
    }
    assert asked == {TEAM_A, TEAM_B}

    # Nothing spins: more changes and sweeps try nothing in the channel until the check.
    tried = calls_in(dist, NOBODY)
    dist.say(BEN, "start", team=TEAM_B, channel=NOBODY)
    dist.bot.quiet()
    for _ in range(3):
        dist.bot.delivery.sweep()
    assert calls_in(dist, NOBODY) == tried
    assert [c["status"] for c in contracts(dist)] == ["active"]

    # A's bot is invited; at the hold's check it is found, and what waited is sent with
    # A's token (the card B posted is posted again by A, who can't edit B's).
    dist.slack.set_membership(NOBODY, is_member=True, team_id=TEAM_A)
    with dist.bot.runtime.sessions() as session, session.begin():
        session.execute(
            update(DeliveryHold)
            .where(DeliveryHold.scope == f"channel:{NOBODY}")
            .values(next_check_at=dist.bot.runtime.clock() - timedelta(seconds=1))
        )
    dist.bot.delivery.sweep()
    dist.bot.delivery.sweep()
    dist.bot.quiet()

    with dist.bot.runtime.sessions() as session, session.begin():
        assert session.get(DeliveryHold, f"channel:{NOBODY}") is None
        speaker = session.get(ChannelSpeaker, NOBODY)
        assert speaker is not None and speaker.team_id == TEAM_A
    assert {row.state for row in rows_in(dist, NOBODY)} == {OutboxState.SENT}
    card = dist.bot.card("contract:1")
    assert card.ts != card_ts and card.team == TEAM_A and "active" in str(card.blocks).lower()


def install_org(dist: Distributed, enterprise_id: str, name: str) -> None:
    """An org-wide install of an Enterprise Grid org, through the same OAuth pages."""
    with OPENER.open(dist.bot.url + "/slack/install") as page:
        body = page.read().decode()
        cookie = page.headers["Set-Cookie"].split(";")[0]
    found = re.search(r"state=([0-9a-f-]{36})", body)
    assert found is not None, body
    code = dist.slack.oauth.authorize_org(enterprise_id, name)
    request = urllib.request.Request(
        f"{dist.bot.url}/slack/oauth_redirect?code={code}&state={found.group(1)}",
        headers={"Cookie": cookie},
    )
    with OPENER.open(request) as done:
        assert done.status == 200


def say_in_org(
    dist: Distributed, user: str, words: str, *, team: str, org: str, channel: str
) -> str:
    response = dist.bot.driver.command(
        user,
        words,
        channel_id=channel,
        team_id=team,
        enterprise_id=org,
        is_enterprise_install=True,
        show_reply=False,
    )
    assert response.status == 200, response.text
    return response.text if response.body.strip() else dist.bot.reply_to(response)


def test_two_org_wide_installations_in_different_orgs_each_serve_their_own_workspaces(
    dist: Distributed,
) -> None:
    for user, name, team in [(OLGA, "olga", TEAM_1), (OSKAR, "oskar", TEAM_1)]:
        dist.slack.add_user(user, name, team_id=team)
    for user, name, team in [(TINA, "tina", TEAM_2), (TOM, "tom", TEAM_2)]:
        dist.slack.add_user(user, name, team_id=team)
    dist.slack.add_channel(CHANNEL_1, "org-one-deals", members=[OLGA, OSKAR])
    dist.slack.add_channel(CHANNEL_2, "org-two-deals", members=[TINA, TOM])
    install_org(dist, ORG_1, "Org One")
    install_org(dist, ORG_2, "Org Two")

    for user, other, team, org, channel in [
        (OLGA, OSKAR, TEAM_1, ORG_1, CHANNEL_1),
        (TINA, TOM, TEAM_2, ORG_2, CHANNEL_2),
    ]:
        words = f'new "Site for {user}" client=<@{user}> freelancer=<@{other}>'
        assert "created" in say_in_org(dist, user, words, team=team, org=org, channel=channel)
        add = 'add "Design" 500 2031-01-01'
        assert say_in_org(dist, user, add, team=team, org=org, channel=channel)
    dist.bot.quiet()

    # Each workspace's cards went out with its own org's token; nothing was held.
    assert set(sent_by(dist, "chat.postMessage", CHANNEL_1)) == {ORG_1}
    assert set(sent_by(dist, "chat.update", CHANNEL_1)) == {ORG_1}
    assert set(sent_by(dist, "chat.postMessage", CHANNEL_2)) == {ORG_2}
    for channel, org in [(CHANNEL_1, ORG_1), (CHANNEL_2, ORG_2)]:
        rows = rows_in(dist, channel)
        assert rows and {row.state for row in rows} == {OutboxState.SENT}
        assert {row.enterprise_id for row in rows} == {org}  # recorded from the request
    with dist.bot.runtime.sessions() as session, session.begin():
        assert outbox.holds(session) == []

    # An intent a sweep writes (no request, so no org recorded) still finds its org.
    with dist.bot.runtime.sessions() as session:
        outbox.home_opened(session, TINA, now=dist.bot.runtime.clock())
    with dist.bot.runtime.sessions() as session, session.begin():
        session.add(
            OutboxMessage(
                kind=IntentKind.HOME,
                user_id=TINA,
                team_id=TEAM_2,
                created_at=dist.bot.runtime.clock(),
                next_attempt_at=dist.bot.runtime.clock(),
            )
        )
    before = len(dist.slack.calls_to("views.publish"))
    dist.bot.delivery.sweep()
    dist.bot.quiet()
    publishes = dist.slack.calls_to("views.publish")[before:]
    assert [c.params.get("user_id") for c in publishes if c.ok] == [TINA]
    assert {dist.slack.oauth.team_of_token(bearer(c.headers)) for c in publishes} == {ORG_2}
