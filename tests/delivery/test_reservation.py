"""Several senders: a card is posted once, and a crashed sender's claim is taken over."""

from __future__ import annotations

import threading
from datetime import timedelta

from bot.delivery import Delivery
from domain import outbox
from domain.outbox import Reservation
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import (
    Clock,
    deliver_all,
    intent,
    intents,
    posted_ts,
    posts_of,
    ref,
    text_of,
    web_client,
)
from tests.factories import CHANNEL, NOW, add, new_contract

LEASE = timedelta(seconds=30)  # Delivery's default lease


def pending_ids(db: Database, contract_id: int) -> list[int]:
    return [
        row.id
        for kind in ("contract_card", "announce", "home")
        for row in intents(db, kind, contract_id)
        if row.state == "pending"
    ]


def test_two_senders_delivering_the_same_intents_at_once_post_the_card_once(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
        add(session, contract_id, "Wireframes", "900")  # a second card intent
    ids = pending_ids(db, contract_id)
    senders = [Delivery(db.sessions, web_client(slack), clock) for _ in range(2)]
    slack.delay("chat.postMessage", 0.3, times=1)  # the first post is slow
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def send(sender: Delivery, order: list[int]) -> None:
        try:
            start.wait(timeout=10)
            sender.deliver(order)
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    threads = [
        threading.Thread(target=send, args=(senders[0], ids)),
        threading.Thread(target=send, args=(senders[1], list(reversed(ids)))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []

    ts = posted_ts(db, f"contract:{contract_id}")
    assert posts_of(slack, ts) == 1
    # Every other intent was claimed by exactly one of them and sent once.
    for row in intents(db, "announce", contract_id) + intents(db, "home", contract_id):
        assert (row.state, row.attempts) == ("sent", 1)

    # The sender that lost the reservation retries shortly and updates in place.
    clock.advance(seconds=3)
    for sender in senders:
        deliver_all(sender)
    assert {intent(db, i).state for i in ids} == {"sent"}
    assert posts_of(slack, ts) == 1
    card = slack.message(CHANNEL, ts)
    assert card is not None and "Wireframes" in text_of(card)
    top_level = [c for c in slack.calls_to("chat.postMessage") if c.ok]
    assert len([c for c in top_level if c.response["ts"] == ts]) == 1


def test_a_crashed_senders_reservation_is_taken_over_after_the_lease(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    [card] = intents(db, "contract_card", contract_id)
    subject = f"contract:{contract_id}"
    # A sender claimed the intent, reserved the card, and died before posting it.
    with db.session() as session:
        assert outbox.claim_many(session, [card.id], now=NOW, lease=LEASE)
    with db.session() as session:
        reserved = outbox.reserve(session, subject, channel_id=CHANNEL, now=NOW, stale_after=LEASE)
        assert reserved == Reservation.FIRST
    with db.session() as session:
        add(session, contract_id, "Wireframes", "900")  # another card intent meanwhile

    clock.advance(seconds=10)
    deliver_all(delivery)
    stuck = ref(db, subject)
    assert stuck is not None and stuck.ts == ""  # still the dead sender's
    assert intent(db, card.id).state == "pending"  # still leased to the dead sender
    [_, later_card] = intents(db, "contract_card", contract_id)
    assert (later_card.state, later_card.last_error) == ("pending", "another sender is posting it")

    clock.advance(seconds=21)  # the lease has run out
    deliver_all(delivery)

    ts = posted_ts(db, subject)
    assert posts_of(slack, ts) == 1
    assert {row.state for row in intents(db, "contract_card", contract_id)} == {"sent"}
    posted = slack.message(CHANNEL, ts)
    assert posted is not None and "Wireframes" in text_of(posted)


def test_a_live_reservation_is_respected(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    subject = f"contract:{contract_id}"
    with db.session() as session:
        reserved = outbox.reserve(session, subject, channel_id=CHANNEL, now=NOW, stale_after=LEASE)
        assert reserved == Reservation.FIRST
    with db.session() as session:
        again = outbox.reserve(
            session, subject, channel_id=CHANNEL, now=NOW + LEASE / 2, stale_after=LEASE
        )
        assert again == Reservation.BUSY
    [card] = intents(db, "contract_card", contract_id)

    delivery.deliver([card.id])

    row = intent(db, card.id)
    assert row.state == "pending"
    assert row.last_error == "another sender is posting it"
    assert row.attempts == 0  # waiting for another sender is not a failed attempt
    assert ref(db, subject) is not None
