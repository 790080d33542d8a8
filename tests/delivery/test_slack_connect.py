"""Distribution in a Slack Connect channel: when the owning workspace's bot is not a
member, the first other installation whose bot is sends, and is remembered for the
channel (so the next delivery, and the update of its cards, go through it at once);
when no installation's bot is a member, the channel is held with that reason and
nothing is tried again before the check; a bot invited meanwhile takes over."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.delivery import NO_BOT_IN_CHANNEL, Delivery
from domain import outbox
from domain.outbox import Speaker
from sandbox.emulator import SlackEmulator
from sandbox.emulator.oauth import IssuedToken
from tests.conftest import Database
from tests.delivery.support import Clock, calls_in, deliver_all, intents, posted_ts
from tests.delivery.test_failures import posted_contract, rename_milestone
from tests.factories import CHANNEL, TEAM

OTHER = "T0OTHER"  # the other side of the Slack Connect channel, installed too
TOKENS = {TEAM: "xoxb-own-workspace", OTHER: "xoxb-other-workspace"}


@pytest.fixture
def distributed(slack: SlackEmulator, delivery: Delivery) -> Delivery:
    """The delivery with a token per installed workspace (as bot.installs gives it)."""
    for team, token in TOKENS.items():
        slack.oauth.add_workspace(team, team)
        slack.oauth.tokens[token] = IssuedToken(token, team)

    def client_for(team_id: str | None, *, enterprise_id: str | None = None) -> WebClient:
        assert team_id is not None
        return WebClient(token=TOKENS[team_id], base_url=slack.api_url)

    delivery.client_for = client_for
    delivery.installations = lambda: [Speaker(None, TEAM), Speaker(None, OTHER)]
    return delivery


def teams_of(slack: SlackEmulator, method: str, *, ok: bool = True) -> list[str | None]:
    return [
        slack.oauth.team_of_token(call.headers.get("authorization", "").removeprefix("Bearer "))
        for call in slack.calls_to(method)
        if call.params.get("channel") == CHANNEL and call.ok == ok
    ]


def speaker_of(db: Database, channel: str) -> Speaker | None:
    with db.session() as session:
        return outbox.speakers(session, [channel]).get(channel)


def states(db: Database, contract_id: int) -> set[str]:
    kinds = ("contract_card", "announce")
    return {row.state for kind in kinds for row in intents(db, kind, contract_id)}


def test_the_other_sides_bot_posts_when_the_owners_is_not_in_the_channel_and_is_remembered(
    db: Database, slack: SlackEmulator, clock: Clock, distributed: Delivery
) -> None:
    slack.set_membership(CHANNEL, is_member=True, team_id=OTHER)  # only the other side's bot

    contract_id = posted_contract(db, distributed)

    assert teams_of(slack, "chat.postMessage", ok=False) == [TEAM]  # refused once, not again
    assert set(teams_of(slack, "chat.postMessage")) == {OTHER}
    assert speaker_of(db, CHANNEL) == Speaker(None, OTHER)
    assert states(db, contract_id) == {"sent"}

    # The card's update goes straight through the one that posted it.
    rename_milestone(db, contract_id, "Prototype")
    deliver_all(distributed)
    assert teams_of(slack, "chat.update") and set(teams_of(slack, "chat.update")) == {OTHER}
    assert teams_of(slack, "chat.postMessage", ok=False) == [TEAM]
    assert "Prototype" in str(slack.message(CHANNEL, posted_ts(db, f"contract:{contract_id}")))


def test_no_installed_bot_in_the_channel_holds_it_with_that_reason_without_spinning(
    db: Database, slack: SlackEmulator, clock: Clock, distributed: Delivery
) -> None:
    slack.set_membership(CHANNEL, is_member=False, team_id=TEAM)  # nobody's bot

    contract_id = posted_contract(db, distributed)

    with db.session() as session:
        [hold] = outbox.holds(session)
    assert (hold.scope, hold.reason) == (f"channel:{CHANNEL}", NO_BOT_IN_CHANNEL)
    held = intents(db, "contract_card", contract_id)
    assert {row.state for row in held} == {"held"}
    assert all(NO_BOT_IN_CHANNEL in str(row.last_error) for row in held)
    # The other installation was asked once, however many intents the batch had there.
    assert calls_in(slack, "conversations.info", CHANNEL) == 1
    assert calls_in(slack, "chat.postMessage", CHANNEL) == 1
    tried = calls_in(slack, "conversations.info", CHANNEL) + calls_in(
        slack, "chat.postMessage", CHANNEL
    )
    rename_milestone(db, contract_id, "Prototype")
    for _ in range(5):
        distributed.sweep()
    assert (
        calls_in(slack, "conversations.info", CHANNEL)
        + calls_in(slack, "chat.postMessage", CHANNEL)
        == tried
    )

    # The other side's bot is invited: at the check it takes over what waited.
    slack.set_membership(CHANNEL, is_member=True, team_id=OTHER)
    clock.advance(minutes=2)
    deliver_all(distributed)
    with db.session() as session:
        assert outbox.holds(session) == []
    assert speaker_of(db, CHANNEL) == Speaker(None, OTHER)
    assert states(db, contract_id) == {"sent"}
    assert set(teams_of(slack, "chat.postMessage")) == {OTHER}


def test_one_workspace_keeps_holding_the_channel_as_before(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    slack.set_membership(CHANNEL, is_member=False)

    posted_contract(db, delivery)

    with db.session() as session:
        [hold] = outbox.holds(session)
        assert outbox.speakers(session, [CHANNEL]) == {}
    assert hold.reason == "not_in_channel"
    assert calls_in(slack, "conversations.info", CHANNEL) == 0  # nobody else to ask
