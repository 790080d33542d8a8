"""Direct messages from the app: opened with conversations.open, posted in the DM,
rendered from current state at send time; a failure to open the DM is retried or held,
never lost (domain.notify, domain.digest, bot.delivery)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.delivery import Delivery
from domain import digest, notify, outbox, reminders, services
from domain.model import Notify
from domain.policy import DEFAULT_POLICY
from domain.services import MilestoneEdit
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import Clock, deliver_all, intent, intents, posted_ts, text_of
from tests.factories import CHANNEL, CLIENT, FREELANCER, NOW, TEAM, active_contract


def propose(db: Database, contract_id: int) -> int:
    """The freelancer proposes to raise milestone 2: request #1 waits for the client."""
    with db.session() as session:
        outcome = services.change_milestones(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            changes=[MilestoneEdit(2, amount="3000")],
            now=NOW,
        )
    assert outcome.request_number is not None
    return outcome.request_number


def dms(slack: SlackEmulator, user: str) -> list[str]:
    return [text_of(m) for m in slack.direct_messages(user)]


def choose(db: Database, user: str, choice: Notify) -> None:
    with db.session() as session:
        notify.choose(session, user_id=user, team_id=TEAM, choice=choice, now=NOW)


def test_a_request_reaches_the_client_in_a_dm_opened_with_conversations_open(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    propose(db, contract_id)
    deliver_all(delivery)

    [opened, *_] = slack.calls_to("conversations.open")
    assert opened.params["users"] == CLIENT and opened.response["channel"]["id"].startswith("D")
    fund, request = dms(slack, CLIENT)
    assert "is next: fund it" in fund
    assert "Change request #1" in request and f"<@{FREELANCER}>" in request
    assert f"<#{CHANNEL}>" in request  # where to answer it
    assert dms(slack, FREELANCER) == []
    # Opened once per person: the second message reuses the channel.
    assert len(slack.calls_to("conversations.open")) == 1
    assert {row.state for row in intents(db, "direct")} == {"sent"}
    # The channel has its card as always.
    assert posted_ts(db, "request:1")


def test_a_dm_about_something_answered_meanwhile_is_not_sent(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    number = propose(db, contract_id)
    with db.session() as session:
        services.withdraw_request(
            session, contract_id=contract_id, number=number, actor_id=FREELANCER, now=NOW
        )
    deliver_all(delivery)

    assert not [text for text in dms(slack, CLIENT) if "Change request" in text]
    assert not [text for text in dms(slack, CLIENT) if "fund it" in text]  # funded already
    assert {row.state for row in intents(db, "direct")} == {"sent"}  # done, not retried


def test_someone_who_switched_to_the_channel_meanwhile_gets_no_dm(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    propose(db, contract_id)
    choose(db, CLIENT, Notify.CHANNEL)
    deliver_all(delivery)
    assert dms(slack, CLIENT) == []
    assert slack.calls_to("conversations.open") == []


def test_a_failure_to_open_the_dm_is_retried_with_backoff_not_lost(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        active_contract(session)
    slack.fail_next("conversations.open", status=500, times=2)

    deliver_all(delivery)
    [row] = intents(db, "direct")
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > clock.now and row.last_error
    assert dms(slack, CLIENT) == []

    clock.advance(minutes=1)
    deliver_all(delivery)  # fails again
    assert intent(db, row.id).state == "pending"
    clock.advance(minutes=5)
    deliver_all(delivery)
    assert intent(db, row.id).state == "sent"
    assert len(dms(slack, CLIENT)) == 1


def test_a_rate_limited_conversations_open_waits_without_counting_an_attempt(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        active_contract(session)
    slack.fail_next("conversations.open", retry_after=20)

    deliver_all(delivery)
    [row] = intents(db, "direct")
    assert (row.state, row.attempts) == ("pending", 0)
    assert row.next_attempt_at == clock.now + timedelta(seconds=20)
    clock.advance(seconds=20)
    deliver_all(delivery)
    assert intent(db, row.id).state == "sent"


def test_a_revoked_token_holds_the_dm_and_sends_it_once_it_works(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        active_contract(session)
    slack.fail_for("*", 3600, error="token_revoked")

    deliver_all(delivery)
    [row] = intents(db, "direct")
    assert intent(db, row.id).state == "held"
    with db.session() as session:
        assert [hold.scope for hold in outbox.holds(session)] == [f"team:{TEAM}"]

    slack.clear_faults()
    clock.advance(minutes=5)
    deliver_all(delivery)
    assert intent(db, row.id).state == "sent"
    assert len(dms(slack, CLIENT)) == 1


def test_a_dm_channel_that_is_gone_is_opened_again(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    deliver_all(delivery)  # the DM about funding: the channel is known from now on
    propose(db, contract_id)
    dm = slack.dm_channel_id(CLIENT)
    slack.fail_next("chat.postMessage", error="channel_not_found", channel=dm)

    deliver_all(delivery)
    [row] = [r for r in intents(db, "direct") if r.body == "answer_request"]
    assert intent(db, row.id).state == "pending"
    clock.advance(minutes=1)
    deliver_all(delivery)
    assert intent(db, row.id).state == "sent"
    assert len(slack.calls_to("conversations.open")) == 2
    assert len(dms(slack, CLIENT)) == 2


def test_a_reminder_reaches_the_dm_of_someone_who_chose_dm_and_not_the_thread(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    propose(db, contract_id)
    choose(db, CLIENT, Notify.DM)
    deliver_all(delivery)
    before = len(dms(slack, CLIENT))

    clock.advance(hours=24)
    queued = reminders.send_due(
        db.sessions, now=clock.now, time_zone_of=lambda user: None, policy=DEFAULT_POLICY
    )
    delivery.deliver(queued)

    [nudge] = dms(slack, CLIENT)[before:]
    assert "has been waiting since" in nudge and "Change request #1" in nudge
    request_ts = posted_ts(db, "request:1")
    assert [m for m in slack.thread(CHANNEL, request_ts) if m.ts != request_ts] == []


def test_the_digest_lists_what_waits_and_an_old_one_is_not_sent(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
    propose(db, contract_id)
    choose(db, CLIENT, Notify.DIGEST)
    deliver_all(delivery)  # the DM about funding was written before the choice: not sent
    assert dms(slack, CLIENT) == []

    tuesday_nine = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    clock.now = tuesday_nine
    queued = digest.send_due(db.sessions, now=clock.now, time_zone_of=lambda user: None)
    delivery.deliver(queued)

    [morning] = dms(slack, CLIENT)
    assert "Good morning" in morning and "2 things" in morning
    assert "Change request #1" in morning and "fund it" in morning

    # A digest that could not go out for half a day is no longer this morning's news.
    clock.now = tuesday_nine + timedelta(days=1)
    slack.fail_for("chat.postMessage", 3600, status=500, channel=slack.dm_channel_id(CLIENT))
    [late] = digest.send_due(db.sessions, now=clock.now, time_zone_of=lambda user: None)
    deliver_all(delivery)
    assert intent(db, late).state == "pending"
    slack.clear_faults()
    clock.advance(hours=13)
    deliver_all(delivery)
    assert intent(db, late).state == "sent"
    assert len(dms(slack, CLIENT)) == 1
