"""Cards are posted once, then updated in place, always rendered from current state."""

from __future__ import annotations

from bot.delivery import Delivery
from domain import services
from domain.services import MilestoneEdit
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import (
    deliver_all,
    intent,
    intents,
    posted_ts,
    posts_of,
    ref,
    text_of,
)
from tests.factories import CHANNEL, CLIENT, NOW, add, new_contract, submitted_contract


def test_a_contract_card_is_posted_once_then_updated_in_place(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    deliver_all(delivery)

    ts = posted_ts(db, f"contract:{contract_id}")
    stored = ref(db, f"contract:{contract_id}")
    assert stored is not None and stored.channel_id == CHANNEL
    assert posts_of(slack, ts) == 1

    with db.session() as session:
        add(session, contract_id, "Wireframes", "900")
        add(session, contract_id, "Visual design", "1200")
    deliver_all(delivery)

    assert posted_ts(db, f"contract:{contract_id}") == ts
    assert posts_of(slack, ts) == 1
    updates = [c for c in slack.calls_to("chat.update") if c.params.get("ts") == ts]
    assert len(updates) == 2 and all(c.ok for c in updates)
    card = slack.message(CHANNEL, ts)
    assert card is not None and card.edited == 2
    assert "Wireframes" in text_of(card) and "Visual design" in text_of(card)
    assert all(row.state == "sent" for row in intents(db, "contract_card", contract_id))


def test_delivering_the_same_intent_again_does_nothing(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    [card] = intents(db, "contract_card", contract_id)
    delivery.deliver([card.id])
    calls = len(slack.calls)

    delivery.deliver([card.id])
    deliver_all(delivery)  # the other intents of the contract
    delivery.deliver([card.id])

    assert posts_of(slack, posted_ts(db, f"contract:{contract_id}")) == 1
    assert not [c for c in slack.calls[calls:] if c.method == "chat.update"]
    assert intent(db, card.id).attempts == 1


def test_an_older_intent_delivered_last_still_shows_the_newest_state(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    deliver_all(delivery)
    ts = posted_ts(db, f"contract:{contract_id}")

    with db.session() as session:
        add(session, contract_id, "Wireframes", "900")
        services.change_milestones(
            session,
            contract_id=contract_id,
            actor_id=CLIENT,
            changes=[MilestoneEdit(1, title="Clickable prototype")],
            now=NOW,
        )
    older, newer = [r.id for r in intents(db, "contract_card", contract_id) if r.state == "pending"]

    delivery.deliver([newer])
    delivery.deliver([older])

    last_update = [c for c in slack.calls_to("chat.update") if c.params.get("ts") == ts][-1]
    assert "Clickable prototype" in str(last_update.params["blocks"])
    card = slack.message(CHANNEL, ts)
    assert card is not None
    assert "Clickable prototype" in text_of(card)
    assert "Wireframes" not in text_of(card)
    assert {intent(db, i).state for i in (older, newer)} == {"sent"}


def test_a_card_deleted_in_slack_is_posted_again_and_its_new_ts_stored(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    deliver_all(delivery)
    ts = posted_ts(db, f"contract:{contract_id}")
    delivery.client.chat_delete(channel=CHANNEL, ts=ts)

    with db.session() as session:
        add(session, contract_id, "Wireframes", "900")
    deliver_all(delivery)

    new_ts = posted_ts(db, f"contract:{contract_id}")
    assert new_ts != ts
    card = slack.message(CHANNEL, new_ts)
    assert card is not None and "Wireframes" in text_of(card)


def test_the_work_card_of_a_submission_is_its_own_message(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
    deliver_all(delivery)

    [work] = intents(db, "work_card", contract_id)
    work_ts = posted_ts(db, f"work:{work.subject_id}:1")
    assert work_ts != posted_ts(db, f"contract:{contract_id}")
    assert posts_of(slack, work_ts) == 1
