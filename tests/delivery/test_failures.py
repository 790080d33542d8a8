"""Slack failing: rate limits per channel, server errors, refused connections, dead letters.

Nothing is ever lost: a deferred or failed intent stays in the outbox with the time of
its next attempt, and the periodic sweep delivers it once that time has come.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import cast

from slack_sdk import WebClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import Delivery
from domain import outbox, services
from domain.services import MilestoneEdit
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import (
    OTHER_CHANNEL,
    Clock,
    calls_in,
    deliver_all,
    failed_calls,
    intent,
    intents,
    posted_ts,
    posts_of,
    ref,
    text_of,
    web_client,
)
from tests.factories import CHANNEL, CLIENT, NOW, add, new_contract


def card_intent(db: Database, contract_id: int) -> int:
    [row] = [r for r in intents(db, "contract_card", contract_id) if r.state == "pending"]
    return row.id


def rename_milestone(db: Database, contract_id: int, title: str) -> int:
    """A change to an already posted card; returns its card intent."""
    with db.session() as session:
        services.change_milestones(
            session,
            contract_id=contract_id,
            actor_id=CLIENT,
            changes=[MilestoneEdit(1, title=title)],
            now=NOW,
        )
    return card_intent(db, contract_id)


def posted_contract(db: Database, delivery: Delivery) -> int:
    """A contract with one milestone whose card is already in the channel."""
    with db.session() as session:
        contract_id = new_contract(session)
        add(session, contract_id, "Wireframes", "900")
    deliver_all(delivery)
    return contract_id


# --- 429 --------------------------------------------------------------------------------


def test_a_rate_limit_on_one_channel_defers_only_that_channel_and_nothing_is_lost(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        limited = new_contract(session, channel=CHANNEL, title="Limited")
        other = new_contract(session, channel=OTHER_CHANNEL, title="Other")
    limited_card, other_card = card_intent(db, limited), card_intent(db, other)
    slack.fail_next("chat.postMessage", retry_after=30, channel=CHANNEL)

    delivery.deliver([limited_card, other_card])  # one pass, the limited channel first
    delivery.sweep()  # and everything else that is due

    # The other channel was delivered in the same pass: its card and its announcement.
    assert posted_ts(db, f"contract:{other}")
    assert calls_in(slack, "chat.postMessage", OTHER_CHANNEL) == 2
    assert {i.state for i in intents(db, "announce", other)} == {"sent"}
    # The limited channel got exactly one call (the 429); its announcement waited
    # without calling Slack.
    assert calls_in(slack, "chat.postMessage", CHANNEL) == 1
    card = intent(db, limited_card)
    assert (card.state, card.last_error) == ("pending", "ratelimited")
    assert card.next_attempt_at == NOW + timedelta(seconds=30)
    [announce] = intents(db, "announce", limited)
    assert announce.state == "pending"
    assert NOW < announce.next_attempt_at <= NOW + timedelta(seconds=30)
    # App Home is not a channel message: published in the same pass.
    assert {i.state for i in intents(db, "home", limited)} == {"sent"}

    delivery.sweep()  # nothing is due before Retry-After has passed
    clock.advance(seconds=29)
    delivery.sweep()
    assert calls_in(slack, "chat.postMessage", CHANNEL) == 1

    clock.advance(seconds=1)
    delivery.sweep()

    ts = posted_ts(db, f"contract:{limited}")
    assert posts_of(slack, ts) == 1
    assert intent(db, card.id).state == "sent"
    assert intent(db, announce.id).state == "sent"
    assert calls_in(slack, "chat.postMessage", CHANNEL) == 3  # the 429, the card, the news


def test_a_rate_limited_update_of_a_posted_card_is_retried_after_retry_after(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    contract_id = posted_contract(db, delivery)
    ts = posted_ts(db, f"contract:{contract_id}")
    card = rename_milestone(db, contract_id, "Prototype")
    slack.fail_next("chat.update", retry_after=5, channel=CHANNEL)

    delivery.deliver([card])
    assert intent(db, card).next_attempt_at == NOW + timedelta(seconds=5)

    clock.advance(seconds=5)
    delivery.sweep()
    message = slack.message(CHANNEL, ts)
    assert message is not None and "Prototype" in text_of(message)
    assert intent(db, card).state == "sent"


def test_rate_limits_never_use_up_the_attempts_of_an_intent(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    patient = Delivery(db.sessions, web_client(slack), clock, max_attempts=2)
    contract_id = posted_contract(db, patient)
    card = rename_milestone(db, contract_id, "Prototype")

    for _ in range(4):
        slack.fail_next("chat.update", retry_after=2, channel=CHANNEL)
        patient.sweep()
        clock.advance(seconds=2)
    assert intent(db, card).state == "pending"

    slack.fail_next("chat.update", status=500, channel=CHANNEL)  # one real failure
    patient.sweep()
    assert intent(db, card).state == "pending"  # retried, not dead-lettered

    clock.advance(minutes=10)
    patient.sweep()
    assert intent(db, card).state == "sent"


# --- 5xx, refused connections -----------------------------------------------------------


def test_a_server_error_is_retried_with_backoff_then_delivered(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    card = card_intent(db, contract_id)
    slack.fail_next("chat.postMessage", status=500, channel=CHANNEL)

    delivery.deliver([card])

    row = intent(db, card)
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "internal_error")
    assert NOW < row.next_attempt_at <= NOW + timedelta(seconds=3)
    delivery.sweep()  # the other intents; the card is not due yet
    assert intent(db, card).state == "pending"
    assert ref(db, f"contract:{contract_id}") is None or not posted_card(db, contract_id)

    clock.advance(seconds=3)
    delivery.sweep()

    ts = posted_ts(db, f"contract:{contract_id}")
    assert posts_of(slack, ts) == 1
    assert intent(db, card).state == "sent"


def posted_card(db: Database, contract_id: int) -> bool:
    found = ref(db, f"contract:{contract_id}")
    return found is not None and bool(found.ts)


def test_the_backoff_grows_with_each_failed_attempt(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    contract_id = posted_contract(db, delivery)
    card = rename_milestone(db, contract_id, "Prototype")
    slack.fail_next("chat.update", status=503, times=4, channel=CHANNEL)

    waits = []
    for attempt in range(4):
        delivery.sweep()
        row = intent(db, card)
        assert row.state == "pending" and row.attempts == attempt + 1
        waits.append(row.next_attempt_at - clock.now)
        clock.now = row.next_attempt_at
    # 2 s × 2^(n-1), ±50 % jitter.
    for n, wait in enumerate(waits, start=1):
        base = 2.0 * 2 ** (n - 1)
        assert timedelta(seconds=base * 0.5) <= wait <= timedelta(seconds=base * 1.5)

    delivery.sweep()
    assert intent(db, card).state == "sent"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_is_retried_with_backoff_then_delivered(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    unreachable = WebClient(
        token="xoxb-test",
        base_url=f"http://127.0.0.1:{closed_port()}/api/",
        retry_handlers=[],  # slack_sdk's own retry would only sleep here
    )
    delivery = Delivery(db.sessions, unreachable, clock)
    with db.session() as session:
        contract_id = new_contract(session)
    card = card_intent(db, contract_id)

    delivery.deliver([card])

    row = intent(db, card)
    assert (row.state, row.attempts) == ("pending", 1)
    assert "Connection refused" in (row.last_error or "") or "Errno" in (row.last_error or "")
    assert row.next_attempt_at > NOW

    delivery.client = web_client(slack)  # Slack is reachable again
    clock.advance(seconds=3)
    delivery.sweep()

    ts = posted_ts(db, f"contract:{contract_id}")
    assert posts_of(slack, ts) == 1
    assert intent(db, card).state == "sent"


# --- dead letters -------------------------------------------------------------------------


def test_a_permanent_error_dead_letters_at_once_and_requeue_brings_it_back(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    card = card_intent(db, contract_id)
    slack.fail_next("chat.postMessage", error="invalid_blocks", channel=CHANNEL)

    delivery.deliver([card])

    row = intent(db, card)
    assert (row.state, row.attempts, row.last_error) == ("dead", 1, "invalid_blocks")
    clock.advance(hours=1)
    delivery.sweep()
    assert intent(db, card).state == "dead"  # the sweep leaves dead letters alone
    assert failed_calls(slack, "chat.postMessage", CHANNEL) == 1

    with db.session() as session:  # an operator's `milestone-bot outbox retry`
        assert outbox.retry_now(session, now=clock.now) >= 1
    row = intent(db, card)
    assert (row.state, row.attempts) == ("pending", 0)
    delivery.sweep()

    ts = posted_ts(db, f"contract:{contract_id}")
    assert posts_of(slack, ts) == 1
    assert intent(db, card).state == "sent"


def test_after_max_attempts_an_intent_is_dead_and_requeue_delivers_it(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    delivery = Delivery(db.sessions, web_client(slack), clock, max_attempts=3)
    contract_id = posted_contract(db, delivery)
    ts = posted_ts(db, f"contract:{contract_id}")
    card = rename_milestone(db, contract_id, "Prototype")
    slack.fail_next("chat.update", status=503, times=3, channel=CHANNEL)

    delivery.deliver([card])
    for _ in range(2):
        assert intent(db, card).state == "pending"
        clock.advance(minutes=10)
        delivery.sweep()

    row = intent(db, card)
    assert (row.state, row.attempts) == ("dead", 3)
    clock.advance(hours=1)
    delivery.sweep()
    assert failed_calls(slack, "chat.update", CHANNEL) == 3

    with db.session() as session:
        assert outbox.retry_now(session, now=clock.now) >= 1
    delivery.sweep()
    assert intent(db, card).state == "sent"
    message = slack.message(CHANNEL, ts)
    assert message is not None and "Prototype" in text_of(message)


def test_a_claim_whose_commit_went_unanswered_is_given_back_and_delivered_at_once(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    """The database applies the claim but its answer is lost: the change is committed and
    acked, so this must not surface as a failed request, nor leave the intents waiting
    for the claim's lease (30 s) to run out."""
    with db.session() as session:
        contract_id = new_contract(session)
    ids = [row.id for row in intents(db, "contract_card", contract_id)]
    first = True

    def sessions() -> Session:
        nonlocal first
        session = db.sessions()
        if first:
            first = False

            @event.listens_for(session, "after_commit")
            def answer_lost(_: Session) -> None:
                raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

        return session

    delivery = Delivery(cast(sessionmaker[Session], sessions), web_client(slack), clock)
    delivery.deliver(ids)  # raises nothing

    slack.wait_for(
        lambda: {intent(db, i).state for i in ids} == {"sent"},
        timeout=10,
        message="the card, once the database answers again",
    )
    assert [intent(db, i).attempts for i in ids] == [1]  # the lost claim was given back
    assert posts_of(slack, posted_ts(db, f"contract:{contract_id}")) == 1


def test_a_database_gone_during_delivery_after_the_ack_raises_nothing_and_the_sweep_sends_it(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    ids = [row.id for row in intents(db, "contract_card", contract_id)]

    def gone() -> Session:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    delivery = Delivery(cast(sessionmaker[Session], gone), web_client(slack), clock)
    delivery.deliver(ids)
    delivery.close()  # stops its retries

    assert [intent(db, i).state for i in ids] == ["pending"]
    deliver_all(Delivery(db.sessions, web_client(slack), clock))
    assert [intent(db, i).state for i in ids] == ["sent"]
    assert posts_of(slack, posted_ts(db, f"contract:{contract_id}")) == 1


def test_a_database_gone_while_rendering_gives_the_claims_back_and_delivers_once_it_answers(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    """The claim is made, then the database stops answering while the card is rendered:
    the intents go back as soon as it answers again and are delivered then, not after
    the claims' lease (30 s) runs out; nothing is sent twice."""
    with db.session() as session:
        contract_id = new_contract(session)
    ids = [row.id for row in intents(db, "contract_card", contract_id)]
    opened = 0

    def sessions() -> Session:
        nonlocal opened
        opened += 1
        session = db.sessions()
        if opened == 2:  # the first is the claim's; the second reads what to render

            @event.listens_for(session, "do_orm_execute")
            def gone(_: object) -> None:
                raise OperationalError("SELECT", {}, Exception("server closed the connection"))

        return session

    delivery = Delivery(cast(sessionmaker[Session], sessions), web_client(slack), clock)
    delivery.deliver(ids)  # raises nothing

    slack.wait_for(
        lambda: {intent(db, i).state for i in ids} == {"sent"},
        timeout=10,
        message="the card, once the database answers again (well before the lease)",
    )
    assert posts_of(slack, posted_ts(db, f"contract:{contract_id}")) == 1
