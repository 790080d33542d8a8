"""Escrow: funding in order, submitting, approving, requesting changes, automatic release."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import ledger, queries, services
from domain.db import write_transaction
from domain.errors import (
    DomainError,
    InvalidInput,
    InvalidTransition,
    NotAllowed,
    NotAParty,
    OutOfOrder,
)
from domain.ledger import LedgerInvariantError
from domain.model import LedgerKind, Milestone
from domain.policy import Policy
from domain.services import MilestoneDeletion, NewMilestone
from tests.factories import (
    CLIENT,
    DUE,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    MEMBER,
    NOW,
    OUTSIDER,
    active_contract,
    funded_contract,
    later,
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
    statuses,
)

REVIEW = timedelta(days=14)
PROVIDER_SIDE = [
    pytest.param(FREELANCER, False, id="freelancer"),
    pytest.param(MANAGER, True, id="manager"),
    pytest.param(MANAGER_2, True, id="second-manager"),
    pytest.param(MEMBER, True, id="member"),
]
NOT_CLIENT = [
    pytest.param(FREELANCER, False, NotAllowed, id="freelancer"),
    pytest.param(MANAGER, True, NotAllowed, id="manager"),
    pytest.param(MEMBER, True, NotAllowed, id="member"),
    pytest.param(OUTSIDER, False, NotAParty, id="outsider"),
]


def fund(session: Session, contract_id: int, **kwargs: Any) -> services.Outcome:
    kwargs.setdefault("now", NOW)
    return services.fund_milestone(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        **kwargs,
    )


def submit(
    session: Session, contract_id: int, actor: str = FREELANCER, **kwargs: Any
) -> services.Outcome:
    kwargs.setdefault("now", NOW)
    return services.submit_work(
        session,
        contract_id=contract_id,
        actor_id=actor,
        **kwargs,
    )


def approve(session: Session, contract_id: int, **kwargs: Any) -> services.Outcome:
    kwargs.setdefault("now", NOW)
    return services.approve_work(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        **kwargs,
    )


def send_back(session: Session, contract_id: int, **kwargs: Any) -> services.Outcome:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("note", "Fix the header")
    return services.request_changes(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        **kwargs,
    )


def milestone_id(session: Session, contract_id: int, number: int) -> int:
    found = load(session, contract_id).milestone(number)
    assert found is not None
    return found.id


def check_balance(session: Session, contract_id: int) -> None:
    """The balance recomputed from entries equals funded + top-ups - released - refunded."""
    entries = ledger_entries(session, contract_id)
    inflow = sum(e.amount_minor for e in entries if e.kind in (LedgerKind.FUND, LedgerKind.TOP_UP))
    outflow = sum(
        e.amount_minor for e in entries if e.kind in (LedgerKind.RELEASE, LedgerKind.REFUND)
    )
    summary = escrow(session, contract_id)
    assert summary.balance_minor == inflow - outflow >= 0
    shown = exported(session, contract_id)["escrow"]
    assert shown["balance_minor"] == summary.balance_minor
    assert shown["funded_minor"] == summary.funded_minor == inflow


# --- funding -----------------------------------------------------------------------


def test_client_funds_the_first_milestone(session: Session) -> None:
    contract_id = active_contract(session)

    outcome = fund(session, contract_id)

    assert outcome.milestone_number == 1
    assert outcome.summary == (
        "Funded milestone 1 (Milestone 1) with $1,500.00. The provider can start. "
        "Recorded as funded — move the money yourselves."
    )
    assert statuses(session, contract_id) == {1: "funded", 2: "pending"}
    shown = exported(session, contract_id)
    assert shown["ledger"] == [
        {
            "at": "2026-11-02T10:00:00Z",
            "kind": "fund",
            "milestone_number": 1,
            "amount_minor": 150000,
            "actor": CLIENT,
            "top_up": False,
        }
    ]
    assert shown["escrow"] == {
        "funded_minor": 150000,
        "released_minor": 0,
        "refunded_minor": 0,
        "balance_minor": 150000,
    }
    funded = events(session, contract_id)[-1]
    assert (funded.kind, funded.actor, funded.milestone_number) == ("milestone_funded", CLIENT, 1)


@pytest.mark.parametrize(("actor", "agency", "error"), NOT_CLIENT)
def test_only_the_client_funds(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    contract_id = active_contract(session, agency=agency)

    message = refuse(
        session, error, services.fund_milestone, contract_id=contract_id, actor_id=actor, now=NOW
    )
    assert message.endswith(f"Only the client, @{CLIENT}, can fund milestones.")


def test_only_one_milestone_is_in_progress_at_a_time(session: Session) -> None:
    contract_id = funded_contract(session)

    message = refuse(
        session,
        OutOfOrder,
        services.fund_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
    )
    assert message == (
        "Milestone 1 (Milestone 1) is funded; the next milestone can be funded once it is released."
    )


def test_next_milestone_cannot_be_funded_while_work_is_submitted(session: Session) -> None:
    contract_id = submitted_contract(session)

    refuse(
        session,
        OutOfOrder,
        services.fund_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
    )


def test_milestones_are_funded_in_order(session: Session) -> None:
    contract_id = active_contract(session)

    message = refuse(
        session,
        OutOfOrder,
        services.fund_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
        milestone_id=milestone_id(session, contract_id, 2),
    )
    assert message == "Milestones are funded in order: milestone 1 comes next."


def test_next_milestone_can_be_funded_once_the_previous_is_released(session: Session) -> None:
    contract_id = submitted_contract(session)
    approve(session, contract_id)

    outcome = fund(session, contract_id, milestone_id=milestone_id(session, contract_id, 2))

    assert outcome.milestone_number == 2
    assert statuses(session, contract_id) == {1: "released", 2: "funded"}


def test_a_deleted_milestone_is_skipped_when_funding(session: Session) -> None:
    contract_id = active_contract(session, amounts=("100", "200", "300"))
    services.change_milestones(
        session, contract_id=contract_id, actor_id=CLIENT, changes=[MilestoneDeletion(1)], now=NOW
    )

    assert fund(session, contract_id).milestone_number == 2


def test_nothing_left_to_fund_is_refused(session: Session) -> None:
    contract_id = active_contract(session, amounts=("100",))
    fund(session, contract_id)
    submit(session, contract_id)
    approve(session, contract_id)

    message = refuse(
        session,
        InvalidTransition,
        services.fund_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
    )
    assert message == "There is no milestone left to fund."


def test_a_milestone_added_after_all_were_released_can_be_funded(session: Session) -> None:
    contract_id = active_contract(session, amounts=("100",))
    fund(session, contract_id)
    submit(session, contract_id)
    approve(session, contract_id)
    services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("More", "50", DUE)],
        now=NOW,
    )

    assert fund(session, contract_id).milestone_number == 2


# --- submitting ------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "agency"), PROVIDER_SIDE)
def test_provider_side_including_members_submits_funded_work(
    session: Session, actor: str, agency: bool
) -> None:
    contract_id = funded_contract(session, agency=agency)

    outcome = submit(session, contract_id, actor, note="See the Figma link")

    assert outcome.summary == "Submitted milestone 1 (Milestone 1) for review."
    shown = milestone(session, contract_id, 1)
    assert shown["status"] == "submitted"
    assert shown["submitted_at"] == "2026-11-02T10:00:00Z"
    assert shown["auto_release_at"] == "2026-11-16T10:00:00Z"
    loaded = load(session, contract_id).milestone(1)
    assert loaded is not None
    assert (loaded.submitted_by, loaded.submission_note, loaded.submission_count) == (
        actor,
        "See the Figma link",
        1,
    )
    submitted = events(session, contract_id)[-1]
    assert (submitted.kind, submitted.actor, submitted.data["note"]) == (
        "work_submitted",
        actor,
        "See the Figma link",
    )


@pytest.mark.parametrize(
    ("actor", "error"),
    [
        pytest.param(CLIENT, NotAllowed, id="client"),
        pytest.param(OUTSIDER, NotAParty, id="outsider"),
    ],
)
def test_client_and_outsider_cannot_submit(
    session: Session, actor: str, error: type[DomainError]
) -> None:
    contract_id = funded_contract(session, agency=True)

    message = refuse(
        session, error, services.submit_work, contract_id=contract_id, actor_id=actor, now=NOW
    )
    assert message.endswith(
        f"Only an agency manager (@{MANAGER} or @{MANAGER_2}) or an agency member can submit work."
    )


def test_submitting_an_unfunded_milestone_is_refused_with_the_explanation(
    session: Session,
) -> None:
    contract_id = active_contract(session)

    message = refuse(
        session,
        InvalidTransition,
        services.submit_work,
        contract_id=contract_id,
        actor_id=FREELANCER,
        now=NOW,
    )
    assert message == (
        f"Milestone 1 (Milestone 1) isn't funded yet: work should not start before @{CLIENT} "
        "funds it."
    )


def test_submitting_when_every_milestone_is_released_is_refused(session: Session) -> None:
    contract_id = active_contract(session, amounts=("100",))
    fund(session, contract_id)
    submit(session, contract_id)
    approve(session, contract_id)

    message = refuse(
        session,
        InvalidTransition,
        services.submit_work,
        contract_id=contract_id,
        actor_id=FREELANCER,
        now=NOW,
    )
    assert message == "There is no milestone waiting for work."


def test_custom_review_period_sets_the_automatic_release_time(session: Session) -> None:
    contract_id = funded_contract(session)

    submit(session, contract_id, policy=Policy(auto_release_period=timedelta(seconds=43)))

    assert milestone(session, contract_id, 1)["auto_release_at"] == "2026-11-02T10:00:43Z"


# --- approving -------------------------------------------------------------------


@pytest.mark.parametrize("agency", [False, True])
def test_client_approves_submitted_work_and_escrow_is_released(
    session: Session, agency: bool
) -> None:
    contract_id = submitted_contract(session, agency=agency)

    outcome = approve(session, contract_id, now=later(days=2))

    assert outcome.summary == (
        "Approved milestone 1: $1,500.00 released. "
        "Recorded as paid — the client pays the provider directly."
    )
    shown = milestone(session, contract_id, 1)
    assert (shown["status"], shown["released_at"], shown["released_automatically"]) == (
        "released",
        "2026-11-04T10:00:00Z",
        False,
    )
    entries = ledger_entries(session, contract_id)
    assert [(e.kind, e.amount_minor, e.actor) for e in entries] == [
        (LedgerKind.FUND, 150000, CLIENT),
        (LedgerKind.RELEASE, 150000, CLIENT),
    ]
    assert exported(session, contract_id)["escrow"] == {
        "funded_minor": 150000,
        "released_minor": 150000,
        "refunded_minor": 0,
        "balance_minor": 0,
    }
    released = events(session, contract_id)[-1]
    assert (released.kind, released.actor, released.data["automatic"]) == (
        "milestone_released",
        CLIENT,
        False,
    )


@pytest.mark.parametrize(("actor", "agency", "error"), NOT_CLIENT)
def test_only_the_client_approves(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    contract_id = submitted_contract(session, agency=agency)

    message = refuse(
        session, error, services.approve_work, contract_id=contract_id, actor_id=actor, now=NOW
    )
    assert message.endswith(f"Only the client, @{CLIENT}, can approve work.")


@pytest.mark.parametrize("contract", [active_contract, funded_contract])
def test_approval_applies_to_submitted_work_only(
    session: Session, contract: Callable[[Session], int]
) -> None:
    contract_id = contract(session)

    message = refuse(
        session,
        InvalidTransition,
        services.approve_work,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
    )
    assert message == "There is no submitted work to approve: approval applies to submitted work."


def test_approving_a_stale_submission_card_is_refused(session: Session) -> None:
    contract_id = submitted_contract(session)
    first = milestone_id(session, contract_id, 1)
    approve(session, contract_id)
    fund(session, contract_id)
    submit(session, contract_id)

    outcome = approve(session, contract_id, milestone_id=first)

    assert outcome.already_done
    assert statuses(session, contract_id) == {1: "released", 2: "submitted"}


# --- requesting changes ------------------------------------------------------------


def test_requesting_changes_stops_the_review_clock(session: Session) -> None:
    contract_id = submitted_contract(session)

    outcome = send_back(session, contract_id, note="Fix the header", now=later(days=1))

    assert outcome.summary == "Asked for changes to milestone 1; the review clock stopped."
    shown = milestone(session, contract_id, 1)
    assert (shown["status"], shown["auto_release_at"]) == ("funded", None)
    loaded = load(session, contract_id).milestone(1)
    assert loaded is not None
    assert loaded.changes_requested_note == "Fix the header"
    assert queries.due_auto_releases(session, now=later(days=100)) == []
    session.rollback()
    assert escrow(session, contract_id).balance_minor == 150000


def test_resubmission_restarts_the_clock_from_the_new_submission(session: Session) -> None:
    contract_id = submitted_contract(session)
    send_back(session, contract_id, now=later(days=3))

    submit(session, contract_id, now=later(days=5))

    shown = milestone(session, contract_id, 1)
    assert shown["status"] == "submitted"
    assert shown["submitted_at"] == "2026-11-07T10:00:00Z"
    assert shown["auto_release_at"] == "2026-11-21T10:00:00Z"
    loaded = load(session, contract_id).milestone(1)
    assert loaded is not None
    assert loaded.submission_count == 2


@pytest.mark.parametrize("note", ["", "   "])
def test_requesting_changes_needs_a_note(session: Session, note: str) -> None:
    contract_id = submitted_contract(session)

    message = refuse(
        session,
        InvalidInput,
        services.request_changes,
        contract_id=contract_id,
        actor_id=CLIENT,
        note=note,
        now=NOW,
    )
    assert message == "The note can't be empty."


@pytest.mark.parametrize(("actor", "agency", "error"), NOT_CLIENT)
def test_only_the_client_requests_changes(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    contract_id = submitted_contract(session, agency=agency)

    message = refuse(
        session,
        error,
        services.request_changes,
        contract_id=contract_id,
        actor_id=actor,
        note="x",
        now=NOW,
    )
    assert message.endswith(f"Only the client, @{CLIENT}, can request changes.")


def test_requesting_changes_without_submitted_work_is_refused(session: Session) -> None:
    contract_id = active_contract(session)

    message = refuse(
        session,
        InvalidTransition,
        services.request_changes,
        contract_id=contract_id,
        actor_id=CLIENT,
        note="x",
        now=NOW,
    )
    assert message == "There is no submitted work to send back."


# --- automatic release -------------------------------------------------------------


def test_auto_release_before_the_deadline_does_nothing(session: Session) -> None:
    contract_id = submitted_contract(session)
    target = milestone_id(session, contract_id, 1)

    outcome = repeat_writes_nothing(
        session, services.auto_release, milestone_id=target, now=NOW + REVIEW - timedelta(seconds=1)
    )

    assert outcome.summary == "Milestone 1 is not due for automatic release."
    assert statuses(session, contract_id)[1] == "submitted"


def test_auto_release_after_the_deadline_releases_as_the_system(session: Session) -> None:
    contract_id = submitted_contract(session)
    target = milestone_id(session, contract_id, 1)
    assert queries.due_auto_releases(session, now=NOW + REVIEW) == [target]
    session.rollback()

    outcome = services.auto_release(session, milestone_id=target, now=later(days=20))

    assert not outcome.already_done
    assert outcome.summary == (
        "Released milestone 1 automatically: $1,500.00. "
        "Recorded as paid — the client pays the provider directly."
    )
    shown = milestone(session, contract_id, 1)
    assert (shown["status"], shown["released_automatically"], shown["released_at"]) == (
        "released",
        True,
        "2026-11-22T10:00:00Z",
    )
    assert exported(session, contract_id)["ledger"][-1]["actor"] == "system"
    assert exported(session, contract_id)["ledger"][-1]["kind"] == "release"
    released = events(session, contract_id)[-1]
    assert (released.kind, released.actor, released.data["automatic"]) == (
        "milestone_released",
        "system",
        True,
    )
    assert queries.due_auto_releases(session, now=later(days=30)) == []
    session.rollback()


def test_auto_release_twice_releases_once(session: Session) -> None:
    contract_id = submitted_contract(session)
    target = milestone_id(session, contract_id, 1)
    services.auto_release(session, milestone_id=target, now=later(days=15))

    repeat_writes_nothing(session, services.auto_release, milestone_id=target, now=later(days=16))

    releases = [e for e in ledger_entries(session, contract_id) if e.kind == LedgerKind.RELEASE]
    assert len(releases) == 1


def test_approve_after_automatic_release_is_already_done(session: Session) -> None:
    contract_id = submitted_contract(session)
    target = milestone_id(session, contract_id, 1)
    services.auto_release(session, milestone_id=target, now=later(days=15))

    outcome = repeat_writes_nothing(
        session,
        services.approve_work,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=later(days=15),
        milestone_id=target,
    )
    assert outcome.summary == "Milestone 1 was automatically released."


def test_auto_release_after_changes_were_requested_does_nothing(session: Session) -> None:
    contract_id = submitted_contract(session)
    target = milestone_id(session, contract_id, 1)
    send_back(session, contract_id)

    repeat_writes_nothing(session, services.auto_release, milestone_id=target, now=later(days=30))


def test_auto_release_uses_the_restarted_clock_after_resubmission(session: Session) -> None:
    contract_id = submitted_contract(session)
    target = milestone_id(session, contract_id, 1)
    send_back(session, contract_id, now=later(days=10))
    submit(session, contract_id, now=later(days=12))

    repeat_writes_nothing(session, services.auto_release, milestone_id=target, now=later(days=15))
    outcome = services.auto_release(session, milestone_id=target, now=later(days=26))

    assert not outcome.already_done


def test_auto_release_of_an_ended_contract_does_nothing(session: Session) -> None:
    contract_id = submitted_contract(session)
    target = milestone_id(session, contract_id, 1)
    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)

    repeat_writes_nothing(session, services.auto_release, milestone_id=target, now=later(days=30))


def test_due_auto_releases_lists_only_overdue_submissions_oldest_first(session: Session) -> None:
    older = submitted_contract(session)
    newer = funded_contract(session)
    submit(session, newer, now=later(days=1))
    waiting = funded_contract(session)

    due = queries.due_auto_releases(session, now=later(days=16))
    session.rollback()

    assert due == [milestone_id(session, older, 1), milestone_id(session, newer, 1)]
    assert milestone_id(session, waiting, 1) not in due
    assert queries.due_auto_releases(session, now=later(days=14, hours=1)) == [due[0]]
    session.rollback()


# --- the ledger --------------------------------------------------------------------


def test_escrow_balance_is_funded_plus_top_ups_minus_released_and_refunded(
    session: Session,
) -> None:
    contract_id = active_contract(session, amounts=("100", "200", "300"))
    check_balance(session, contract_id)
    fund(session, contract_id)
    check_balance(session, contract_id)
    submit(session, contract_id)
    approve(session, contract_id)
    check_balance(session, contract_id)
    fund(session, contract_id)
    proposal = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[services.MilestoneEdit(2, amount="250")],
        now=NOW,
    )
    services.accept_request(session, actor_id=CLIENT, now=NOW, request_id=proposal.request_id)
    check_balance(session, contract_id)
    # The provider side ends: what is held goes back to the client at once.
    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)
    check_balance(session, contract_id)

    summary = escrow(session, contract_id)
    assert (summary.funded_minor, summary.released_minor, summary.refunded_minor) == (
        10000 + 25000,
        10000,
        25000,
    )
    assert summary.balance_minor == 0


def test_escrow_can_never_go_negative(session: Session) -> None:
    contract_id = funded_contract(session)
    target = milestone_id(session, contract_id, 1)

    with pytest.raises(LedgerInvariantError), write_transaction(session):
        ledger.record(
            session,
            contract_id=contract_id,
            milestone_id=target,
            kind=LedgerKind.RELEASE,
            amount_minor=150001,
            actor=CLIENT,
            at=NOW,
            key="release:test",
        )

    assert escrow(session, contract_id).balance_minor == 150000


@pytest.mark.parametrize("amount", [0, -1])
def test_ledger_amounts_are_positive(session: Session, amount: int) -> None:
    contract_id = funded_contract(session)
    target = milestone_id(session, contract_id, 1)

    with pytest.raises(LedgerInvariantError), write_transaction(session):
        ledger.record(
            session,
            contract_id=contract_id,
            milestone_id=target,
            kind=LedgerKind.FUND,
            amount_minor=amount,
            actor=CLIENT,
            at=NOW,
            key="fund:test",
        )


def test_a_second_release_of_one_milestone_is_impossible_whoever_calls(session: Session) -> None:
    contract_id = submitted_contract(session)
    approve(session, contract_id)
    target = milestone_id(session, contract_id, 1)
    # Put money back in (as a top-up) so only the unique key can stop a second release.
    with write_transaction(session):
        ledger.record(
            session,
            contract_id=contract_id,
            milestone_id=target,
            kind=LedgerKind.TOP_UP,
            amount_minor=1,
            actor=CLIENT,
            at=NOW,
            key="top_up:test",
        )

    with pytest.raises(Exception, match="(?i)unique|duplicate"), write_transaction(session):
        ledger.record(
            session,
            contract_id=contract_id,
            milestone_id=target,
            kind=LedgerKind.RELEASE,
            amount_minor=1,
            actor=CLIENT,
            at=NOW,
            key=f"release:{target}",
        )
    session.rollback()


def test_ledger_entries_are_never_rewritten(session: Session) -> None:
    contract_id = submitted_contract(session)
    first = [(e.id, e.kind, e.amount_minor, e.at) for e in ledger_entries(session, contract_id)]

    approve(session, contract_id)
    fund(session, contract_id)
    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=later(days=1))

    now_entries = ledger_entries(session, contract_id)
    assert [(e.id, e.kind, e.amount_minor, e.at) for e in now_entries][: len(first)] == first
    assert [e.kind for e in now_entries] == [
        LedgerKind.FUND,
        LedgerKind.RELEASE,
        LedgerKind.FUND,
        LedgerKind.REFUND,
    ]
    with session.begin():
        assert (
            session.scalar(
                select(Milestone.status).where(Milestone.id == now_entries[-1].milestone_id)
            )
            == "pending"
        )
