"""`sweep_auto_releases` and `sweep_once`: run with a fixed `now`, each twice.

Submitted at `NOW` with the default 14-day review period, milestone 1 is due for
automatic release at `NOW + 14 days`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import ledger, queries, services
from domain.db import read_transaction
from domain.errors import DomainError
from domain.model import (
    SYSTEM_ACTOR,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    OutboxMessage,
    RequestStatus,
)
from domain.policy import DEFAULT_POLICY, Policy
from domain.services import MilestoneDeletion, MilestoneEdit
from scheduler.jobs import sweep_auto_releases, sweep_once
from tests.conftest import Database
from tests.factories import CLIENT, FREELANCER, NOW, active_contract, later, submitted_contract
from tests.scheduler.support import (
    announcements_per_event,
    milestone_id,
    release_events,
    releases_per_milestone,
    reminder_intents,
)

DUE_AT = NOW + timedelta(days=14)


class Delivered:
    """The `deliver` callback: records the outbox ids it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, ids: Sequence[int]) -> None:
        self.batches.append(list(ids))


def sweep(
    db: Database, now: datetime, deliver: Callable[[Sequence[int]], None] | None = None
) -> int:
    return sweep_auto_releases(db.sessions, now, deliver or Delivered(), policy=DEFAULT_POLICY)


def milestone_row(session: Session, contract_id: int, number: int = 1) -> Milestone:
    with read_transaction(session):
        found = session.scalar(
            select(Milestone).where(
                Milestone.contract_id == contract_id, Milestone.number == number
            )
        )
        assert found is not None
        return found


def released_amounts(session: Session, contract_id: int) -> list[int]:
    with read_transaction(session):
        return [
            e.amount_minor
            for e in ledger.entries(session, contract_id)
            if e.kind == LedgerKind.RELEASE
        ]


def test_nothing_is_released_before_the_review_period_ends(db: Database) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)

        for _ in range(2):
            assert sweep(db, DUE_AT - timedelta(seconds=1)) == 0
        assert milestone_row(session, contract_id).status == MilestoneStatus.SUBMITTED
        assert released_amounts(session, contract_id) == []


def test_submitted_work_is_released_once_when_the_review_period_ends(db: Database) -> None:
    delivered = Delivered()
    with db.session() as session:
        contract_id = submitted_contract(session)

        assert sweep(db, DUE_AT, delivered) == 1
        assert sweep(db, DUE_AT, delivered) == 0
        assert sweep(db, DUE_AT + timedelta(minutes=1), delivered) == 0

        row = milestone_row(session, contract_id)
        assert row.status == MilestoneStatus.RELEASED
        assert row.released_automatically
        assert (row.released_at, row.released_by) == (DUE_AT, SYSTEM_ACTOR)
        assert released_amounts(session, contract_id) == [150000]
        [event] = release_events(session)
        assert (event.actor, event.data["automatic"]) == (SYSTEM_ACTOR, True)
        assert announcements_per_event(session)[event.id] == 1
        # The release's intents were handed to delivery right away, once.
        assert len(delivered.batches) == 1 and delivered.batches[0]


def test_a_deadline_made_stale_by_a_change_request_does_nothing_at_the_old_time(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        services.request_changes(
            session, contract_id=contract_id, actor_id=CLIENT, note="fix", now=later(days=1)
        )
        resubmitted = later(days=2)
        services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=resubmitted)

        for _ in range(2):
            assert sweep(db, DUE_AT) == 0
            assert sweep(db, DUE_AT + timedelta(days=1)) == 0
        assert milestone_row(session, contract_id).status == MilestoneStatus.SUBMITTED

        assert sweep(db, resubmitted + timedelta(days=14)) == 1
        assert sweep(db, resubmitted + timedelta(days=14)) == 0
        assert milestone_row(session, contract_id).released_at == resubmitted + timedelta(days=14)


def test_work_sent_back_and_never_resubmitted_is_never_released(db: Database) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        services.request_changes(
            session, contract_id=contract_id, actor_id=CLIENT, note="fix", now=later(days=1)
        )

        assert sweep(db, NOW + timedelta(days=365)) == 0
        assert milestone_row(session, contract_id).status == MilestoneStatus.FUNDED


def test_when_the_bot_was_down_across_the_deadline_the_first_sweep_releases_it(
    db: Database,
) -> None:
    back_up = DUE_AT + timedelta(days=3, hours=5)
    with db.session() as session:
        contract_id = submitted_contract(session)

        assert sweep(db, back_up) == 1
        assert sweep(db, back_up) == 0
        row = milestone_row(session, contract_id)
        assert row.released_automatically
        assert row.released_at == back_up
        assert releases_per_milestone(session) == {row.id: 1}


def test_an_automatic_release_cancels_a_pending_request_that_would_have_changed_it(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        proposed = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            changes=[MilestoneEdit(1, title="Design, final")],
            now=later(1),
        )

        assert sweep(db, DUE_AT) == 1
        with read_transaction(session):
            request = queries.load_request(session, proposed.request_id or 0)
            assert request.status == RequestStatus.CANCELLED
            assert "released" in (request.cancel_reason or "")


def test_a_sweep_after_the_client_approved_does_nothing(db: Database) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))

        assert sweep(db, DUE_AT) == 0
        row = milestone_row(session, contract_id)
        assert not row.released_automatically
        assert releases_per_milestone(session) == {row.id: 1}


def test_approving_after_the_automatic_release_says_so_and_changes_nothing(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        sweep(db, DUE_AT)
        mid = milestone_id(session, contract_id)

        outcome = services.approve_work(
            session,
            contract_id=contract_id,
            actor_id=CLIENT,
            milestone_id=mid,
            now=DUE_AT + timedelta(minutes=1),
        )
        assert outcome.already_done
        assert "automatically" in outcome.summary
        assert releases_per_milestone(session) == {mid: 1}


def test_a_custom_review_period_is_what_the_sweep_honours(db: Database) -> None:
    short = Policy(auto_release_period=timedelta(seconds=43))
    with db.session() as session:
        contract_id = submitted_contract(session)  # with the default 14 days
        services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))
        services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=later(2))
        services.submit_work(
            session, contract_id=contract_id, actor_id=FREELANCER, now=later(3), policy=short
        )

        assert sweep(db, later(3) + timedelta(seconds=42)) == 0
        assert sweep(db, later(3) + timedelta(seconds=43)) == 1
        assert milestone_row(session, contract_id, 2).released_automatically


def released_intents(session: Session, contract_id: int) -> list[int]:
    """Outbox intents the automatic release of `contract_id` wrote."""
    with read_transaction(session):
        return list(
            session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.contract_id == contract_id,
                    OutboxMessage.created_at == DUE_AT,
                )
            )
        )


# --- races --------------------------------------------------------------------------------


def _race(first: Callable[[], object], second: Callable[[], object]) -> list[object]:
    """Run both at once; returns their results (or the DomainError they raised)."""
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def run(index: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except DomainError as refusal:
            results[index] = refusal

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_approve_racing_the_timer_exactly_one_wins_and_history_says_which(
    db: Database,
) -> None:
    with db.session() as session:
        contracts = [submitted_contract(session) for _ in range(6)]
    now = DUE_AT + timedelta(minutes=1)

    for contract_id in contracts:
        with db.session() as session:
            mid = milestone_id(session, contract_id)

        def approve(contract_id: int = contract_id, mid: int = mid) -> object:
            with db.session() as session:
                return services.approve_work(
                    session, contract_id=contract_id, actor_id=CLIENT, milestone_id=mid, now=now
                )

        approved, _swept = _race(approve, lambda: sweep(db, now))
        sweep(db, now)  # whatever the race left (a contract skipped as busy) is done now

        with db.session() as session:
            row = milestone_row(session, contract_id)
            assert row.status == MilestoneStatus.RELEASED
            assert releases_per_milestone(session)[mid] == 1
            events = [e for e in release_events(session) if e.contract_id == contract_id]
            assert len(events) == 1
            [event] = events
            client_won = isinstance(approved, services.Outcome) and not approved.already_done
            assert row.released_automatically is (not client_won)
            assert event.data["automatic"] is (not client_won)
            assert event.actor == (CLIENT if client_won else SYSTEM_ACTOR)
            assert row.released_by == event.actor


def test_accepting_a_request_racing_the_timer_leaves_one_consistent_outcome(
    db: Database,
) -> None:
    with db.session() as session:
        contracts = [submitted_contract(session) for _ in range(4)]
        requests = [
            services.propose_changes(
                session,
                contract_id=contract_id,
                actor_id=FREELANCER,
                changes=[MilestoneEdit(1, title="Design, final")],
                now=later(1),
            ).request_id
            for contract_id in contracts
        ]
    now = DUE_AT + timedelta(minutes=1)

    for contract_id, request_id in zip(contracts, requests, strict=True):

        def accept(request_id: int | None = request_id) -> object:
            with db.session() as session:
                return services.accept_request(
                    session, actor_id=CLIENT, request_id=request_id, now=now
                )

        accepted, _ = _race(accept, lambda: sweep(db, now))
        sweep(db, now)

        with db.session() as session:
            row = milestone_row(session, contract_id)
            assert row.status == MilestoneStatus.RELEASED
            assert releases_per_milestone(session)[row.id] == 1
            with read_transaction(session):
                request = queries.load_request(session, request_id or 0)
            if isinstance(accepted, DomainError):
                # The release came first: the request could no longer apply.
                assert request.status == RequestStatus.CANCELLED
                assert row.title == "Milestone 1"
            else:
                assert request.status == RequestStatus.ACCEPTED
                assert row.title == "Design, final"


# --- one tick -------------------------------------------------------------------------------


class FakeOutbox:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.delivered: list[int] = []
        self.sweeps = 0

    def deliver(self, ids: Sequence[int]) -> None:
        self.delivered.extend(ids)

    def sweep(self, *, limit: int = 50) -> int:
        self.sweeps += 1
        if self.fail:
            raise ConnectionError("database restarting")
        return 0


@pytest.mark.parametrize("outbox_fails", [False, True], ids=["healthy", "outbox-failing"])
def test_one_tick_releases_queues_reminders_and_retries_the_outbox_and_a_second_does_nothing(
    db: Database, outbox_fails: bool
) -> None:
    outbox = FakeOutbox(fail=outbox_fails)
    housekeeping: list[int] = []
    with db.session() as session:
        released = submitted_contract(session)
        # A change request sent a day before: its first nudge is due with the release.
        reminded = active_contract(session)
        services.propose_changes(
            session,
            contract_id=reminded,
            actor_id=FREELANCER,
            changes=[MilestoneDeletion(2)],
            now=later(days=13),
        )
    now = DUE_AT  # Monday, 10:00 UTC: in working hours

    def tick() -> None:
        sweep_once(
            db.sessions,
            lambda: now,
            policy=DEFAULT_POLICY,
            outbox=outbox,
            time_zone_of=lambda user: None,
            housekeeping=lambda: housekeeping.append(1),
        )

    tick()
    first = list(outbox.delivered)
    tick()

    with db.session() as session:
        assert milestone_row(session, released).released_automatically
        [nudge] = reminder_intents(session)
        assert nudge.contract_id == reminded
        release_intents = released_intents(session, released)
    assert release_intents and set(release_intents) < set(first)
    assert nudge.id in first
    assert outbox.delivered == first  # the second tick found nothing new
    assert outbox.sweeps == 2
    assert housekeeping == [1, 1]  # a failing outbox step does not stop the others
