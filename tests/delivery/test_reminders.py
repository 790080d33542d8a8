"""A reminder is a reply in the thread of the card it concerns, mentioning who owes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.delivery import Delivery
from domain import reminders, services
from domain.policy import DEFAULT_POLICY
from domain.services import MilestoneDeletion
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import (
    Clock,
    deliver_all,
    intent,
    intents,
    posted_ts,
    text_of,
)
from tests.factories import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    NOW,
    active_contract,
    funded_contract,
    submitted_contract,
)


def queue_reminders(db: Database, clock: Clock) -> list[int]:
    """The reminder sweep at the clock's time, every recipient in UTC: the thread replies
    it queued (the same reminders in direct messages, for people who chose `dm` or
    `both`, are tests/delivery/test_direct.py's)."""
    queued = reminders.send_due(
        db.sessions, now=clock.now, time_zone_of=lambda user: None, policy=DEFAULT_POLICY
    )
    return [outbox_id for outbox_id in queued if intent(db, outbox_id).kind == "reminder"]


def propose(db: Database, contract_id: int) -> int:
    with db.session() as session:
        outcome = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            changes=[MilestoneDeletion(2)],
            now=NOW,
        )
    assert outcome.request_id is not None
    return outcome.request_id


def replies(slack: SlackEmulator, ts: str) -> list[str]:
    return [text_of(m) for m in slack.thread(CHANNEL, ts) if m.ts != ts]


def test_a_request_nudge_is_a_reply_under_the_request_card_mentioning_the_client(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    request_id = propose(db, contract_id)
    deliver_all(delivery)
    request_ts = posted_ts(db, f"request:{request_id}")

    clock.advance(hours=24)
    queued = queue_reminders(db, clock)
    delivery.deliver(queued)

    [reply] = replies(slack, request_ts)
    assert f"<@{CLIENT}>" in reply
    assert replies(slack, posted_ts(db, f"contract:{contract_id}")) == []
    [post] = [c for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
    assert post.params["thread_ts"] == request_ts
    assert [intent(db, i).state for i in queued] == ["sent"]

    queue_reminders(db, clock)  # the same tick again: nothing new
    deliver_all(delivery)
    assert len(replies(slack, request_ts)) == 1


def test_a_review_reminder_is_a_reply_under_the_work_card(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
    deliver_all(delivery)
    [work] = intents(db, "work_card", contract_id)
    work_ts = posted_ts(db, f"work:{work.subject_id}:1")

    clock.advance(days=7)
    delivery.deliver(queue_reminders(db, clock))

    [reply] = replies(slack, work_ts)
    assert f"<@{CLIENT}>" in reply
    assert replies(slack, posted_ts(db, f"contract:{contract_id}")) == []


def test_overdue_nudges_reply_under_the_contract_card_mentioning_each_side(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = funded_contract(session)
    deliver_all(delivery)
    card_ts = posted_ts(db, f"contract:{contract_id}")

    clock.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    delivery.deliver(queue_reminders(db, clock))

    thread = replies(slack, card_ts)
    assert len(thread) == 2
    assert any(f"<@{CLIENT}>" in text for text in thread)
    assert any(f"<@{FREELANCER}>" in text for text in thread)


def test_a_reminder_whose_card_is_not_posted_yet_waits_for_it_and_is_not_lost(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    deliver_all(delivery)
    request_id = propose(db, contract_id)
    [request_card] = intents(db, "request_card", contract_id)

    clock.advance(hours=24)
    [nudge] = queue_reminders(db, clock)
    delivery.deliver([nudge])  # before the request card

    row = intent(db, nudge)
    assert row.state == "pending"
    assert row.attempts == 0  # waiting for a card is not a failed attempt
    assert row.next_attempt_at > clock.now
    assert not [c for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]

    delivery.deliver([request_card.id])
    clock.advance(seconds=30)
    delivery.sweep()

    [reply] = replies(slack, posted_ts(db, f"request:{request_id}"))
    assert f"<@{CLIENT}>" in reply
    assert intent(db, nudge).state == "sent"


def test_a_reminder_waits_out_a_rate_limit_on_its_channel(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
    deliver_all(delivery)
    [work] = intents(db, "work_card", contract_id)
    clock.advance(days=7)
    slack.fail_next("chat.postMessage", retry_after=10, channel=CHANNEL)

    [nudge] = queue_reminders(db, clock)
    delivery.deliver([nudge])
    assert intent(db, nudge).next_attempt_at == clock.now + timedelta(seconds=10)

    clock.advance(seconds=10)
    delivery.sweep()
    assert len(replies(slack, posted_ts(db, f"work:{work.subject_id}:1"))) == 1


def test_a_nudge_held_up_by_slack_is_not_posted_once_the_request_was_answered(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    request_id = propose(db, contract_id)
    deliver_all(delivery)
    clock.advance(hours=24)
    slack.fail_next("chat.postMessage", retry_after=10, channel=CHANNEL)
    [nudge] = queue_reminders(db, clock)
    delivery.deliver([nudge])  # rate-limited: still in the outbox
    with db.session() as session:
        services.decline_request(session, actor_id=CLIENT, request_id=request_id, now=clock.now)

    clock.advance(seconds=10)
    deliver_all(delivery)

    assert replies(slack, posted_ts(db, f"request:{request_id}")) == []
    assert intent(db, nudge).state == "sent"  # done with: nothing left to say
