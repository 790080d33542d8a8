"""A workspace or channel that refuses the bot's messages holds them instead of losing
them: a revoked token, an archived channel. The refusal is checked again with backoff
and what waited is sent, once, when it works; the rest of Slack is not held up; the
parties of a channel's contracts are told on App Home, where they can still be reached.
"""

from __future__ import annotations

import json

from bot.delivery import Delivery
from domain import outbox
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import (
    OTHER_CHANNEL,
    Clock,
    calls_in,
    deliver_all,
    intents,
    posted_ts,
    text_of,
)
from tests.delivery.test_failures import posted_contract, rename_milestone
from tests.factories import CHANNEL, CLIENT, FREELANCER, TEAM, new_contract


def states(db: Database, contract_id: int) -> set[str]:
    return {
        row.state
        for kind in ("contract_card", "announce", "home")
        for row in intents(db, kind, contract_id)
    }


def test_a_revoked_token_holds_the_workspace_without_spinning_and_resumes_when_it_works(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    contract_id = posted_contract(db, delivery)
    ts = posted_ts(db, f"contract:{contract_id}")
    rename_milestone(db, contract_id, "Prototype")
    slack.fail_for("*", 3600, error="token_revoked")

    deliver_all(delivery)
    with db.session() as session:
        [hold] = outbox.holds(session)
    assert (hold.scope, hold.reason) == (f"team:{TEAM}", "token_revoked")
    assert "held" in states(db, contract_id) and "dead" not in states(db, contract_id)

    tried = len(slack.calls)
    for _ in range(5):  # sweeps come and go; nothing is tried before the check is due
        delivery.sweep()
    assert len(slack.calls) == tried
    clock.advance(seconds=10)
    delivery.sweep()  # the token check (auth.test) is refused: back off
    assert [c.method for c in slack.calls[tried:]] == ["auth.test"]
    with db.session() as session:
        [again] = outbox.holds(session)
    assert again.checks == 1 and again.next_check_at > clock.now

    slack.clear_faults()
    clock.advance(minutes=5)
    deliver_all(delivery)
    with db.session() as session:
        assert outbox.holds(session) == []
    assert states(db, contract_id) == {"sent"}
    card = slack.message(CHANNEL, ts)
    assert card is not None and "Prototype" in text_of(card)


def test_an_archived_channel_holds_only_that_channel_and_home_says_where_to_look(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    archived = posted_contract(db, delivery)
    with db.session() as session:
        elsewhere = new_contract(session, channel=OTHER_CHANNEL)
    rename_milestone(db, archived, "Prototype")
    slack.archive_channel(CHANNEL)

    deliver_all(delivery)

    with db.session() as session:
        [hold] = outbox.holds(session)
    assert hold.scope == f"channel:{CHANNEL}" and hold.reason in ("is_archived", "is_inactive")
    assert calls_in(slack, "chat.postMessage", OTHER_CHANNEL) >= 1  # the others go on
    assert states(db, elsewhere) == {"sent"}
    home = slack.home_view(FREELANCER)
    assert home is not None
    assert "channel was archived" in text_of_view(home) and f"<#{CHANNEL}>" in text_of_view(home)

    slack.unarchive_channel(CHANNEL)
    clock.advance(minutes=2)
    deliver_all(delivery)
    with db.session() as session:
        assert outbox.holds(session) == []
    assert states(db, archived) == {"sent"}
    card = slack.message(CHANNEL, posted_ts(db, f"contract:{archived}"))
    assert card is not None and "Prototype" in text_of(card)
    home = slack.home_view(CLIENT)
    assert home is not None and "channel was archived" not in text_of_view(home)


def text_of_view(view: dict[str, object]) -> str:
    return json.dumps(view)
