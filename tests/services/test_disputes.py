"""Disputes: the client disputes submitted work, the provider side an end-refund; the
escrow is frozen until a split is agreed (either side proposes, the other agrees) or an
operator decides. Money moves once, through the ledger's unique keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from domain import services
from domain.db import read_transaction
from domain.errors import (
    DomainError,
    InvalidAmount,
    InvalidInput,
    InvalidTransition,
    MilestoneLocked,
    NotAllowed,
    NotAParty,
    WrongPhase,
)
from domain.model import (
    SYSTEM_ACTOR,
    Dispute,
    Event,
    EventKind,
    LedgerEntry,
    LedgerKind,
    OutboxMessage,
    Reminder,
    ReminderKind,
    ReminderState,
)
from domain.policy import Policy
from domain.services import MilestoneEdit
from domain.verify import verify
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    MEMBER,
    NOW,
    OUTSIDER,
    funded_contract,
    later,
    provider_of,
    submitted_contract,
)
from tests.services.support import (
    escrow,
    events,
    exported,
    ledger_entries,
    load,
    milestone,
    refuse,
    repeat_writes_nothing,
)

REASON = "The pages don't match the wireframes"


def dispute(session: Session, contract_id: int, actor: str = CLIENT, **kwargs: Any) -> Any:
    kwargs.setdefault("now", later(days=1))
    kwargs.setdefault("reason", REASON)
    return services.dispute_milestone(session, contract_id=contract_id, actor_id=actor, **kwargs)


def propose(
    session: Session, contract_id: int, actor: str, amount: str, number: int = 1
) -> services.Outcome:
    return services.propose_split(
        session,
        contract_id=contract_id,
        actor_id=actor,
        milestone_number=number,
        to_provider=amount,
        now=later(days=2),
    )


def the_dispute(session: Session, contract_id: int) -> Dispute:
    with read_transaction(session):
        found = session.scalar(
            select(Dispute)
            .where(Dispute.contract_id == contract_id)
            .execution_options(populate_existing=True)
        )
    assert found is not None
    return found


def agree(session: Session, contract_id: int, actor: str, proposal: int | None = None) -> Any:
    found = the_dispute(session, contract_id)
    return services.agree_to_split(
        session,
        contract_id=contract_id,
        dispute_id=found.id,
        proposal_number=found.proposal_number if proposal is None else proposal,
        actor_id=actor,
        now=later(days=3),
    )


def disputed_work(session: Session, *, agency: bool = False) -> int:
    contract_id = submitted_contract(session, agency=agency)
    dispute(session, contract_id)
    return contract_id


def reminders_of(session: Session, kind: ReminderKind) -> list[Reminder]:
    with read_transaction(session):
        return list(
            session.scalars(
                select(Reminder)
                .where(Reminder.kind == kind)
                .order_by(Reminder.id)
                .execution_options(populate_existing=True)
            )
        )


def assert_ledger_verifies(session: Session) -> None:
    with read_transaction(session):
        assert verify(session) == []


# --------------------------------------------------------------------------------------
# Opening a dispute


@pytest.mark.parametrize("agency", [False, True])
def test_the_client_disputes_submitted_work_and_its_escrow_is_frozen(
    session: Session, agency: bool
) -> None:
    contract_id = submitted_contract(session, agency=agency)

    outcome = dispute(session, contract_id)

    assert outcome.summary == (
        "Milestone 1 is disputed: its $1,500.00 stays in escrow, frozen, until you agree on "
        "a split (/milestone settle 1 <amount-to-provider>) or an operator decides."
    )
    shown = milestone(session, contract_id, 1)
    assert (shown["status"], shown["auto_release_at"]) == ("disputed", None)
    assert exported(session, contract_id)["escrow"]["balance_minor"] == 150000
    opened = events(session, contract_id)[-1]
    assert (opened.kind, opened.actor, opened.milestone_number) == (
        "milestone_disputed",
        CLIENT,
        1,
    )
    assert (opened.data["reason"], opened.data["held_minor"], opened.data["side"]) == (
        REASON,
        150000,
        "client",
    )
    found = the_dispute(session, contract_id)
    assert (found.opened_by, found.reason, found.held_minor) == (CLIENT, REASON, 150000)
    with read_transaction(session):
        kinds = {
            row.kind
            for row in session.scalars(select(OutboxMessage))
            if row.contract_id == contract_id
        }
    assert {"dispute_card", "work_card"} <= kinds
    assert_ledger_verifies(session)


def test_no_automatic_release_while_disputed(session: Session) -> None:
    contract_id = disputed_work(session)

    assert services.release_due(session, now=later(days=60)) == []

    assert milestone(session, contract_id, 1)["status"] == "disputed"
    assert escrow(session, contract_id).released_minor == 0


def test_review_reminders_stop_and_both_sides_are_reminded_of_the_dispute(
    session: Session,
) -> None:
    submitted_contract(session, agency=True)
    review = reminders_of(session, ReminderKind.REVIEW)
    assert review and all(r.state == ReminderState.PENDING for r in review)

    dispute(session, 1, policy=Policy(dispute_reminder_every=timedelta(days=3)))

    assert all(
        r.state == ReminderState.CANCELLED for r in reminders_of(session, ReminderKind.REVIEW)
    )
    nudges = reminders_of(session, ReminderKind.DISPUTE)
    assert sorted(r.recipient_id for r in nudges) == sorted([CLIENT, MANAGER, MANAGER_2])
    assert {r.due_at for r in nudges} == {later(days=4)}


def test_disputing_twice_is_already_done(session: Session) -> None:
    contract_id = disputed_work(session)

    outcome = repeat_writes_nothing(
        session,
        services.dispute_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        reason="again",
        now=later(days=2),
    )

    assert outcome.summary.startswith("Milestone 1 is already disputed")


@pytest.mark.parametrize(
    ("actor", "error"),
    [
        pytest.param(MEMBER, NotAllowed, id="member"),
        pytest.param(OUTSIDER, NotAParty, id="outsider"),
    ],
)
def test_a_member_or_an_outsider_cannot_dispute(
    session: Session, actor: str, error: type[DomainError]
) -> None:
    contract_id = submitted_contract(session, agency=True)

    refuse(
        session,
        error,
        services.dispute_milestone,
        contract_id=contract_id,
        actor_id=actor,
        reason=REASON,
        now=NOW,
    )


def test_the_client_can_only_dispute_submitted_work(session: Session) -> None:
    contract_id = funded_contract(session)

    message = refuse(
        session,
        InvalidTransition,
        services.dispute_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        reason=REASON,
        now=NOW,
    )
    assert message == (
        "You can dispute submitted work instead of approving it: milestone 1 is funded, "
        "not submitted for review."
    )


def test_the_provider_can_only_dispute_an_end_refund(session: Session) -> None:
    contract_id = submitted_contract(session)

    refuse(
        session,
        WrongPhase,
        services.dispute_milestone,
        contract_id=contract_id,
        actor_id=FREELANCER,
        reason=REASON,
        now=NOW,
    )


def test_a_dispute_needs_a_reason(session: Session) -> None:
    contract_id = submitted_contract(session)

    refuse(
        session,
        InvalidInput,
        services.dispute_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        reason="  ",
        now=NOW,
    )


@pytest.mark.parametrize("agency", [False, True])
def test_the_provider_disputes_the_end_refund_and_nothing_is_refunded_by_itself(
    session: Session, agency: bool
) -> None:
    contract_id = funded_contract(session, agency=agency)
    services.end_contract(session, contract_id=contract_id, actor_id=CLIENT, now=later(days=1))

    dispute(session, contract_id, provider_of(agency), reason="The work was done")

    assert exported(session, contract_id)["status"] == "ending"
    assert milestone(session, contract_id, 1)["status"] == "disputed"
    assert load(session, contract_id).ending_deadline_at is None
    assert events(session, contract_id)[-1].data["side"] == "provider"
    assert services.refund_due(session, now=later(days=60)) == []
    refuse(
        session,
        InvalidTransition,
        services.accept_refund,
        contract_id=contract_id,
        actor_id=provider_of(agency),
        now=later(days=2),
    )
    assert_ledger_verifies(session)


# --------------------------------------------------------------------------------------
# Other actions on a disputed milestone are refused, with the reason

FROZEN: dict[str, tuple[Callable[..., Any], str, dict[str, Any], type[DomainError]]] = {
    "approve": (services.approve_work, CLIENT, {}, WrongPhase),
    "request_changes": (services.request_changes, CLIENT, {"note": "x"}, WrongPhase),
    "fund": (services.fund_milestone, CLIENT, {}, WrongPhase),
    "submit": (services.submit_work, FREELANCER, {}, WrongPhase),
    "end": (services.end_contract, CLIENT, {}, InvalidTransition),
    "end_by_provider": (services.end_contract, FREELANCER, {}, InvalidTransition),
    "propose": (
        services.propose_changes,
        FREELANCER,
        {"changes": [MilestoneEdit(1, title="y")]},
        MilestoneLocked,
    ),
}


@pytest.mark.parametrize("action", list(FROZEN))
def test_other_actions_on_a_disputed_milestone_are_refused(session: Session, action: str) -> None:
    contract_id = disputed_work(session)
    call, actor, extra, error = FROZEN[action]

    message = refuse(
        session, error, call, contract_id=contract_id, actor_id=actor, now=later(2), **extra
    )
    assert "disputed" in message


# --------------------------------------------------------------------------------------
# Settling by agreement


@pytest.mark.parametrize(("proposer", "agreer"), [(CLIENT, FREELANCER), (FREELANCER, CLIENT)])
def test_either_side_proposes_a_split_and_the_other_agrees(
    session: Session, proposer: str, agreer: str
) -> None:
    contract_id = disputed_work(session)

    proposed = propose(session, contract_id, proposer, "600")

    assert "$600.00 to the provider, $900.00 back to the client" in proposed.summary
    assert events(session, contract_id)[-1].kind == "split_proposed"
    assert escrow(session, contract_id).balance_minor == 150000

    outcome = agree(session, contract_id, agreer)

    assert outcome.summary == (
        "You agreed to the split: $600.00 to the provider, $900.00 back to the client. "
        "The dispute over milestone 1 is settled. "
        "Recorded as settled — the client pays the provider's share directly."
    )
    entries = ledger_entries(session, contract_id)
    assert [(e.kind, e.amount_minor, e.actor, e.key) for e in entries[1:]] == [
        (LedgerKind.RELEASE, 60000, agreer, f"release:{entries[0].milestone_id}"),
        (LedgerKind.REFUND, 90000, agreer, f"refund:{entries[0].milestone_id}"),
    ]
    shown = milestone(session, contract_id, 1)
    assert shown["status"] == "released"
    money = exported(session, contract_id)["escrow"]
    assert (money["released_minor"], money["refunded_minor"], money["balance_minor"]) == (
        60000,
        90000,
        0,
    )
    settled = events(session, contract_id)
    assert [e.kind for e in settled][-2:] == ["milestone_released", "dispute_settled"]
    assert settled[-1].data["to_provider_minor"] == 60000
    assert settled[-1].data["to_client_minor"] == 90000
    assert settled[-1].data["how"] == "agreed"
    assert exported(session, contract_id)["status"] == "active"
    assert all(
        r.state != ReminderState.PENDING for r in reminders_of(session, ReminderKind.DISPUTE)
    )
    assert_ledger_verifies(session)


def test_proposing_the_split_the_other_side_proposed_is_an_agreement(session: Session) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, FREELANCER, "1000")

    outcome = propose(session, contract_id, CLIENT, "1,000.00")

    assert "The dispute over milestone 1 is settled" in outcome.summary
    assert escrow(session, contract_id).released_minor == 100000
    assert_ledger_verifies(session)


def test_a_newer_proposal_replaces_the_older_and_a_stale_agreement_is_refused(
    session: Session,
) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, CLIENT, "500")
    first = the_dispute(session, contract_id).proposal_number
    propose(session, contract_id, CLIENT, "400")

    message = refuse(
        session,
        InvalidTransition,
        services.agree_to_split,
        contract_id=contract_id,
        dispute_id=the_dispute(session, contract_id).id,
        proposal_number=first,
        actor_id=FREELANCER,
        now=later(days=3),
    )
    assert message == (
        "That proposal was replaced by a newer one: $400.00 to the provider, $1,100.00 back "
        "to the client. Agree to that one on the card."
    )
    agree(session, contract_id, FREELANCER)
    assert escrow(session, contract_id).released_minor == 40000


def test_the_proposing_side_cannot_agree_to_its_own_split(session: Session) -> None:
    contract_id = disputed_work(session, agency=True)
    propose(session, contract_id, MANAGER, "700")
    found = the_dispute(session, contract_id)

    message = refuse(
        session,
        NotAllowed,
        services.agree_to_split,
        contract_id=contract_id,
        dispute_id=found.id,
        proposal_number=found.proposal_number,
        actor_id=MANAGER_2,
        now=later(days=3),
    )
    assert message == f"Your side proposed this split; the client, @{CLIENT}, agrees to it."


def test_proposing_the_same_split_again_is_already_done(session: Session) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, CLIENT, "500")

    outcome = repeat_writes_nothing(
        session,
        services.propose_split,
        contract_id=contract_id,
        actor_id=CLIENT,
        milestone_number=1,
        to_provider="500",
        now=later(days=3),
    )

    assert outcome.summary.startswith("That split is already proposed")


def test_agreeing_twice_is_already_done(session: Session) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, CLIENT, "500")
    agree(session, contract_id, FREELANCER)
    found = the_dispute(session, contract_id)

    outcome = repeat_writes_nothing(
        session,
        services.agree_to_split,
        contract_id=contract_id,
        dispute_id=found.id,
        proposal_number=found.proposal_number,
        actor_id=FREELANCER,
        now=later(days=4),
    )

    assert outcome.summary == "The split of milestone 1 was already agreed."
    assert len([e for e in ledger_entries(session, contract_id) if e.kind == "release"]) == 1


def test_a_split_can_not_give_the_provider_more_than_is_held(session: Session) -> None:
    contract_id = disputed_work(session)

    refuse(
        session,
        InvalidAmount,
        services.propose_split,
        contract_id=contract_id,
        actor_id=CLIENT,
        milestone_number=1,
        to_provider="1500.01",
        now=later(days=2),
    )


def test_nothing_to_the_provider_refunds_everything_and_the_next_milestone_can_be_funded(
    session: Session,
) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, FREELANCER, "0")

    agree(session, contract_id, CLIENT)

    shown = milestone(session, contract_id, 1)
    assert shown["status"] == "pending"
    assert [e.kind for e in ledger_entries(session, contract_id)] == [
        LedgerKind.FUND,
        LedgerKind.REFUND,
    ]
    funded = services.fund_milestone(
        session, contract_id=contract_id, actor_id=CLIENT, now=later(days=4)
    )
    assert funded.milestone_number == 2
    refuse(
        session,
        InvalidTransition,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1, title="Again")],
        now=later(days=4),
    )
    assert_ledger_verifies(session)


def test_everything_to_the_provider_is_one_release(session: Session) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, CLIENT, "1500")

    agree(session, contract_id, FREELANCER)

    assert [e.kind for e in ledger_entries(session, contract_id)] == [
        LedgerKind.FUND,
        LedgerKind.RELEASE,
    ]
    assert milestone(session, contract_id, 1)["status"] == "released"
    assert_ledger_verifies(session)


def test_settling_an_ending_contracts_dispute_closes_it(session: Session) -> None:
    contract_id = funded_contract(session)
    services.end_contract(session, contract_id=contract_id, actor_id=CLIENT, now=later(days=1))
    dispute(session, contract_id, FREELANCER, reason="Most of it was delivered")
    propose(session, contract_id, FREELANCER, "1200")

    agree(session, contract_id, CLIENT)

    shown = exported(session, contract_id)
    assert shown["status"] == "closed"
    assert (shown["escrow"]["released_minor"], shown["escrow"]["refunded_minor"]) == (
        120000,
        30000,
    )
    closed = events(session, contract_id)[-1]
    assert (closed.kind, closed.data["how"], closed.data["refunded_minor"]) == (
        "contract_ended",
        "dispute_settled",
        0,
    )
    assert load(session, contract_id).closed_by == CLIENT
    assert_ledger_verifies(session)


# --------------------------------------------------------------------------------------
# An operator decides


def test_an_operator_decides_with_a_reason(session: Session) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, CLIENT, "100")

    outcome = services.resolve_dispute(
        session,
        contract_id=contract_id,
        milestone_number=1,
        to_provider="750",
        reason="Mediation: half the pages were delivered",
        now=later(days=10),
    )

    assert outcome.summary == (
        f"Decided the dispute over milestone 1 of contract {contract_id}: $750.00 to the "
        "provider, $750.00 back to the client."
    )
    entries = ledger_entries(session, contract_id)
    assert [(e.kind, e.amount_minor, e.actor) for e in entries[1:]] == [
        (LedgerKind.RELEASE, 75000, SYSTEM_ACTOR),
        (LedgerKind.REFUND, 75000, SYSTEM_ACTOR),
    ]
    decided = events(session, contract_id)[-1]
    assert (decided.kind, decided.actor) == ("dispute_settled", SYSTEM_ACTOR)
    assert decided.data["how"] == "operator"
    assert decided.data["reason"] == "Mediation: half the pages were delivered"
    found = the_dispute(session, contract_id)
    assert (found.settled_how, found.decision_reason) == (
        "operator",
        "Mediation: half the pages were delivered",
    )
    assert_ledger_verifies(session)


def test_an_operator_cannot_decide_what_is_not_disputed(session: Session) -> None:
    contract_id = submitted_contract(session)

    message = refuse(
        session,
        InvalidTransition,
        services.resolve_dispute,
        contract_id=contract_id,
        milestone_number=1,
        to_provider="10",
        reason="x",
        now=NOW,
    )
    assert message == "Milestone 1 is not disputed, so there is nothing to settle."


def test_a_settled_dispute_is_final(session: Session) -> None:
    contract_id = disputed_work(session)
    services.resolve_dispute(
        session,
        contract_id=contract_id,
        milestone_number=1,
        to_provider="0",
        reason="Refund",
        now=later(days=10),
    )

    refuse(
        session,
        InvalidTransition,
        services.propose_split,
        contract_id=contract_id,
        actor_id=CLIENT,
        milestone_number=1,
        to_provider="5",
        now=later(days=11),
    )


# --------------------------------------------------------------------------------------
# `ledger verify` understands a split, and checks it


def test_ledger_verify_checks_a_split_against_its_settlement(session: Session) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, CLIENT, "600")
    agree(session, contract_id, FREELANCER)
    assert_ledger_verifies(session)

    with session.begin():  # a hand-edit behind the services' back
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.contract_id == contract_id, LedgerEntry.kind == LedgerKind.REFUND)
            .values(amount_minor=80000)
        )

    with read_transaction(session):
        problems = [str(p) for p in verify(session)]
    assert any(
        "dispute_settled amounts [90000] differ from the ledger's [80000]" in p for p in problems
    )


def test_ledger_verify_refuses_a_release_and_a_refund_without_a_settlement(
    session: Session,
) -> None:
    contract_id = disputed_work(session)
    propose(session, contract_id, CLIENT, "600")
    agree(session, contract_id, FREELANCER)
    with session.begin():  # the settlement's history removed
        session.execute(
            delete(Event).where(
                Event.contract_id == contract_id, Event.kind == EventKind.DISPUTE_SETTLED
            )
        )

    with read_transaction(session):
        problems = [str(p) for p in verify(session)]
    assert any("refunded but the contract never ended" in p for p in problems)
