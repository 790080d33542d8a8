"""Both sides of an open dispute are reminded every few days, in the dispute card's
thread; the reminders stop once it is settled. `NOW` is Monday 2 November 2026, 10:00
UTC; the dispute opens on Tuesday at 10:00, every recipient is in UTC."""

from __future__ import annotations

from datetime import timedelta

from domain import services
from domain.model import ReminderKind, ReminderState
from domain.policy import Policy
from tests.conftest import Database
from tests.factories import CLIENT, FREELANCER, later, submitted_contract
from tests.scheduler.support import pending, reminder_intents, reminder_rows, send_due, sent

EVERY = timedelta(days=3)
POLICY = Policy(dispute_reminder_every=EVERY)
OPENED = later(days=1)


def open_dispute(db: Database) -> int:
    with db.session() as session:
        contract_id = submitted_contract(session)
        services.dispute_milestone(
            session,
            contract_id=contract_id,
            actor_id=CLIENT,
            reason="Not what we agreed",
            now=OPENED,
            policy=POLICY,
        )
    return contract_id


def test_both_sides_are_reminded_every_few_days_until_it_is_settled(db: Database) -> None:
    contract_id = open_dispute(db)
    with db.session() as session:
        first = pending(session, ReminderKind.DISPUTE)
        assert sorted((r.recipient_id, r.due_at) for r in first) == [
            (CLIENT, OPENED + EVERY),
            (FREELANCER, OPENED + EVERY),
        ]
        assert pending(session, ReminderKind.REVIEW) == []  # the review clock stopped

        assert send_due(db.sessions, OPENED + EVERY - timedelta(seconds=1), policy=POLICY) == []
        queued = send_due(db.sessions, OPENED + EVERY, policy=POLICY)
        assert len(queued) == 2
        assert {i.user_id for i in reminder_intents(session)} == {CLIENT, FREELANCER}
        following = pending(session, ReminderKind.DISPUTE)
        assert {(r.slot, r.due_at) for r in following} == {(2, OPENED + 2 * EVERY)}

    with db.session() as session:
        services.propose_split(
            session,
            contract_id=contract_id,
            actor_id=CLIENT,
            milestone_number=1,
            to_provider="0",
            now=OPENED + EVERY,
        )
        services.propose_split(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            milestone_number=1,
            to_provider="0",
            now=OPENED + EVERY,
            policy=POLICY,
        )
        assert pending(session, ReminderKind.DISPUTE) == []
        states = {r.state for r in reminder_rows(session, kind=ReminderKind.DISPUTE)}
        assert states == {ReminderState.SENT, ReminderState.CANCELLED}
    send_due(db.sessions, OPENED + 10 * EVERY, policy=POLICY)  # (the next milestone's nudge)
    with db.session() as session:
        assert len(sent(session, ReminderKind.DISPUTE)) == 2, "no dispute nudge after settling"
