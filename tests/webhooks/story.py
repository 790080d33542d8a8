"""Two contracts walked through every event the domain records, through the services."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import services
from domain.db import read_transaction
from domain.model import Dispute, Event, EventKind, Milestone
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from tests.factories import CLIENT, FREELANCER, NOW, active_contract, add, new_contract

DUE = date(2026, 12, 1)


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def _milestone_id(session: Session, contract_id: int, number: int) -> int:
    with read_transaction(session):
        found = session.scalar(
            select(Milestone.id).where(
                Milestone.contract_id == contract_id, Milestone.number == number
            )
        )
    assert found is not None
    return found


def _propose(
    session: Session, contract_id: int, *changes: services.ChangeInput, now: datetime
) -> int:
    outcome = services.propose_changes(
        session, contract_id=contract_id, actor_id=FREELANCER, changes=list(changes), now=now
    )
    assert outcome.request_id is not None
    return outcome.request_id


def negotiated_and_worked(session: Session) -> int:
    """Created, drafted (added, edited, deleted, agreement cleared), agreed, funded, changed
    by request (accepted with a top-up, declined, withdrawn, countered), submitted, sent
    back, more review time asked / given / declined, partly released, approved, a bonus,
    and the next milestone released automatically."""
    contract_id = new_contract(session)
    add(session, contract_id, "Design", "1500")
    add(session, contract_id, "Build", "2500")
    add(session, contract_id, "Extra", "300")
    services.agree_to_terms(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(number=3, amount="400")],
        now=NOW,
    )
    services.change_milestones(
        session, contract_id=contract_id, actor_id=CLIENT, changes=[MilestoneDeletion(3)], now=NOW
    )
    services.agree_to_terms(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    services.agree_to_terms(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=at(1))

    accepted = _propose(session, contract_id, MilestoneEdit(number=1, amount="1600"), now=at(2))
    services.accept_request(
        session, actor_id=CLIENT, now=at(2), contract_id=contract_id, request_id=accepted
    )
    declined = _propose(
        session, contract_id, MilestoneEdit(number=2, title="Build it all"), now=at(2)
    )
    services.decline_request(
        session,
        actor_id=CLIENT,
        now=at(2),
        reason="not now",
        contract_id=contract_id,
        request_id=declined,
    )
    withdrawn = _propose(
        session, contract_id, MilestoneEdit(number=2, title="Build more"), now=at(2)
    )
    services.withdraw_request(
        session, actor_id=FREELANCER, now=at(2), contract_id=contract_id, request_id=withdrawn
    )
    countered = _propose(session, contract_id, MilestoneEdit(number=2, amount="3000"), now=at(3))
    counter = services.counter_request(
        session,
        contract_id=contract_id,
        request_id=countered,
        actor_id=CLIENT,
        changes=[MilestoneEdit(number=2, amount="2700")],
        message="meet halfway?",
        now=at(3),
    )
    assert counter.request_id is not None
    services.accept_request(
        session,
        actor_id=FREELANCER,
        now=at(3),
        contract_id=contract_id,
        request_id=counter.request_id,
    )

    services.submit_work(
        session, contract_id=contract_id, actor_id=FREELANCER, note="first cut", now=at(4)
    )
    services.request_changes(
        session, contract_id=contract_id, actor_id=CLIENT, note="bigger logo", now=at(5)
    )
    services.submit_work(
        session, contract_id=contract_id, actor_id=FREELANCER, note="second cut", now=at(6)
    )
    services.extend_review(session, contract_id=contract_id, actor_id=CLIENT, days=2, now=at(7))
    milestone_1 = _milestone_id(session, contract_id, 1)
    services.give_more_time(
        session, contract_id=contract_id, milestone_id=milestone_1, actor_id=FREELANCER, now=at(8)
    )
    services.extend_review(session, contract_id=contract_id, actor_id=CLIENT, days=3, now=at(9))
    services.keep_review_date(
        session, contract_id=contract_id, milestone_id=milestone_1, actor_id=FREELANCER, now=at(10)
    )
    services.release_part(
        session, contract_id=contract_id, actor_id=CLIENT, number=1, amount="500", now=at(11)
    )
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=at(12))
    services.pay_bonus(
        session, contract_id=contract_id, actor_id=CLIENT, amount="200", note="thanks", now=at(12)
    )

    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=at(13))
    services.submit_work(
        session, contract_id=contract_id, actor_id=FREELANCER, note="built", now=at(14)
    )
    released = services.release_due(session, now=at(14) + timedelta(days=30))
    assert [o.contract_id for o in released] == [contract_id]
    return contract_id


def disputed_and_ended(session: Session) -> int:
    """Disputed, a split proposed and agreed, then ended by the client with escrow held
    (the ending window), a pending request cancelled, and the refund accepted."""
    contract_id = active_contract(session, amounts=("1000", "2000", "500"))
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=at(1))
    services.submit_work(
        session, contract_id=contract_id, actor_id=FREELANCER, note="done", now=at(2)
    )
    services.dispute_milestone(
        session, contract_id=contract_id, actor_id=CLIENT, reason="half done", now=at(3)
    )
    services.propose_split(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        milestone_number=1,
        to_provider="400",
        now=at(4),
    )
    with read_transaction(session):
        dispute = session.scalar(select(Dispute).where(Dispute.contract_id == contract_id))
        assert dispute is not None
        dispute_id, proposal = dispute.id, dispute.proposal_number
    services.agree_to_split(
        session,
        contract_id=contract_id,
        dispute_id=dispute_id,
        proposal_number=proposal,
        actor_id=FREELANCER,
        now=at(5),
    )
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=at(6))
    _propose(session, contract_id, NewMilestone("Later", "100", DUE), now=at(6))
    services.end_contract(session, contract_id=contract_id, actor_id=CLIENT, now=at(7))
    services.accept_refund(session, contract_id=contract_id, actor_id=FREELANCER, now=at(8))
    return contract_id


def walk_every_event(session: Session) -> list[int]:
    """Both contracts; their ids."""
    return [negotiated_and_worked(session), disputed_and_ended(session)]


def event_kinds(session: Session) -> list[tuple[int, EventKind]]:
    """(id, kind) of every event written, in order."""
    with read_transaction(session):
        return [(row.id, row.kind) for row in session.scalars(select(Event).order_by(Event.id))]
