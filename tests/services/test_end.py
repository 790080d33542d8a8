"""Ending a contract: who may, refunds, cancelled requests, read-only afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from domain import queries, services
from domain.errors import ContractClosed, DomainError, InvalidTransition, NotAllowed, NotAParty
from domain.model import LedgerKind
from domain.services import MilestoneEdit, NewMilestone
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
    add,
    funded_contract,
    later,
    new_contract,
    submitted_contract,
)
from tests.services.support import (
    escrow,
    event_kinds,
    events,
    exported,
    ledger_entries,
    load,
    milestone,
    refuse,
    repeat_writes_nothing,
    request,
)

ENDERS = [
    pytest.param(CLIENT, False, id="client"),
    pytest.param(FREELANCER, False, id="freelancer"),
    pytest.param(CLIENT, True, id="agency-client"),
    pytest.param(MANAGER, True, id="manager"),
    pytest.param(MANAGER_2, True, id="second-manager"),
]


def end(session: Session, contract_id: int, actor: str = CLIENT, **kwargs: Any) -> services.Outcome:
    kwargs.setdefault("now", later(days=1))
    return services.end_contract(session, contract_id=contract_id, actor_id=actor, **kwargs)


@pytest.mark.parametrize(("actor", "agency"), ENDERS)
def test_either_side_ends_an_active_contract(session: Session, actor: str, agency: bool) -> None:
    contract_id = active_contract(session, agency=agency)

    outcome = end(session, contract_id, actor)

    assert outcome.summary == f"Contract {contract_id} ended."
    assert exported(session, contract_id)["status"] == "closed"
    contract = load(session, contract_id)
    assert (contract.closed_by, contract.closed_at) == (actor, later(days=1))
    ended = events(session, contract_id)[-1]
    assert (ended.kind, ended.actor, ended.data["refunded_minor"]) == ("contract_ended", actor, 0)
    assert ledger_entries(session, contract_id) == []


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER])
def test_a_contract_can_be_ended_while_still_negotiating(session: Session, actor: str) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)

    end(session, contract_id, actor)

    assert exported(session, contract_id)["status"] == "closed"


@pytest.mark.parametrize(
    ("actor", "error"),
    [
        pytest.param(MEMBER, NotAllowed, id="member"),
        pytest.param(OUTSIDER, NotAParty, id="outsider"),
    ],
)
def test_member_and_outsider_cannot_end(
    session: Session, actor: str, error: type[DomainError]
) -> None:
    contract_id = funded_contract(session, agency=True)

    message = refuse(
        session, error, services.end_contract, contract_id=contract_id, actor_id=actor, now=NOW
    )
    assert message.endswith(
        f"Only the client, @{CLIENT}, or an agency manager (@{MANAGER} or @{MANAGER_2}) "
        "can end the contract."
    )


@pytest.mark.parametrize("agency", [False, True])
def test_client_cannot_end_while_work_is_submitted(session: Session, agency: bool) -> None:
    contract_id = submitted_contract(session, agency=agency)

    message = refuse(
        session,
        InvalidTransition,
        services.end_contract,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
    )
    assert message == (
        "Milestone 1 has submitted work waiting for your review: approve it or request "
        "changes before ending the contract."
    )


def test_client_may_end_once_changes_were_requested(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.request_changes(
        session, contract_id=contract_id, actor_id=CLIENT, note="Not this", now=NOW
    )

    end(session, contract_id)

    assert exported(session, contract_id)["status"] == "closed"
    assert escrow(session, contract_id).refunded_minor == 150000


@pytest.mark.parametrize(("actor", "agency"), [(FREELANCER, False), (MANAGER, True)])
def test_provider_may_end_while_work_is_submitted_and_escrow_goes_back_to_the_client(
    session: Session, actor: str, agency: bool
) -> None:
    contract_id = submitted_contract(session, agency=agency)

    outcome = end(session, contract_id, actor)

    assert outcome.summary == f"Contract {contract_id} ended. $1,500.00 refunded to the client."
    shown = milestone(session, contract_id, 1)
    assert (shown["status"], shown["auto_release_at"], shown["refunded_at"]) == (
        "pending",
        None,
        "2026-11-03T10:00:00Z",
    )
    assert queries.due_auto_releases(session, now=later(days=30)) == []
    session.rollback()


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER])
def test_ending_refunds_held_escrow_to_the_client(session: Session, actor: str) -> None:
    contract_id = funded_contract(session)

    outcome = end(session, contract_id, actor)

    assert outcome.summary.endswith("$1,500.00 refunded to the client.")
    entries = ledger_entries(session, contract_id)
    assert [(e.kind, e.amount_minor, e.actor) for e in entries] == [
        (LedgerKind.FUND, 150000, CLIENT),
        (LedgerKind.REFUND, 150000, actor),
    ]
    shown = exported(session, contract_id)
    assert shown["ledger"][-1]["kind"] == "refund"
    assert shown["ledger"][-1]["milestone_number"] == 1
    assert shown["escrow"] == {
        "funded_minor": 150000,
        "released_minor": 0,
        "refunded_minor": 150000,
        "balance_minor": 0,
    }
    assert events(session, contract_id)[-1].data["refunded_minor"] == 150000


def test_ending_refunds_a_top_up_too_and_keeps_released_money_paid(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    proposal = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, amount="3000")],
        now=NOW,
    )
    services.accept_request(session, actor_id=CLIENT, now=NOW, request_id=proposal.request_id)

    end(session, contract_id)

    summary = escrow(session, contract_id)
    assert (summary.released_minor, summary.refunded_minor, summary.balance_minor) == (
        150000,
        300000,
        0,
    )
    assert milestone(session, contract_id, 1)["status"] == "released"


def test_pending_requests_are_cancelled_because_the_contract_ended(session: Session) -> None:
    contract_id = funded_contract(session)
    services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[NewMilestone("More", "10", DUE)],
        now=NOW,
    )

    end(session, contract_id)

    shown = request(session, contract_id, 1)
    assert (shown["status"], shown["cancel_reason"]) == ("cancelled", "the contract ended")
    assert event_kinds(session, contract_id)[-2:] == ["request_cancelled", "contract_ended"]


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER])
def test_ending_twice_is_already_done(session: Session, actor: str) -> None:
    contract_id = funded_contract(session)
    end(session, contract_id)

    outcome = repeat_writes_nothing(
        session, services.end_contract, contract_id=contract_id, actor_id=actor, now=later(days=2)
    )

    assert outcome.summary == f"Contract {contract_id} has already ended."
    assert len([e for e in ledger_entries(session, contract_id) if e.kind == "refund"]) == 1


def closed_contract(session: Session) -> tuple[int, int, int]:
    """A closed contract (ended by the freelancer with work submitted), its first
    milestone's id, and the id of a request that was pending when it ended."""
    contract_id = submitted_contract(session)
    proposal = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="x")],
        now=NOW,
    )
    end(session, contract_id, FREELANCER)
    first = load(session, contract_id).milestone(1)
    assert first is not None and proposal.request_id is not None
    return contract_id, first.id, proposal.request_id


ACTIONS: dict[str, tuple[Callable[..., Any], str, dict[str, Any]]] = {
    "add": (services.change_milestones, CLIENT, {"changes": [NewMilestone("x", "1", DUE)]}),
    "edit": (services.change_milestones, FREELANCER, {"changes": [MilestoneEdit(2, title="y")]}),
    "propose": (services.propose_changes, FREELANCER, {"changes": [MilestoneEdit(2, title="y")]}),
    "agree": (services.agree_to_terms, CLIENT, {}),
    "fund": (services.fund_milestone, CLIENT, {}),
    "submit": (services.submit_work, FREELANCER, {}),
    "approve": (services.approve_work, CLIENT, {}),
    "request_changes": (services.request_changes, CLIENT, {"note": "x"}),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_closed_contract_is_read_only_for_every_action(session: Session, action: str) -> None:
    contract_id, _, _ = closed_contract(session)
    call, actor, extra = ACTIONS[action]

    message = refuse(
        session, ContractClosed, call, contract_id=contract_id, actor_id=actor, now=NOW, **extra
    )
    assert message == f"Contract {contract_id} (Website redesign) has ended; it is read-only now."


@pytest.mark.parametrize(
    ("service", "actor"),
    [
        (services.accept_request, CLIENT),
        (services.decline_request, CLIENT),
        (services.withdraw_request, FREELANCER),
    ],
)
def test_a_request_of_a_closed_contract_cannot_be_decided(
    session: Session, service: Callable[..., Any], actor: str
) -> None:
    _, _, request_id = closed_contract(session)

    refuse(session, ContractClosed, service, actor_id=actor, now=NOW, request_id=request_id)


def test_a_stale_fund_button_on_a_closed_contract_is_refused(session: Session) -> None:
    contract_id, first, _ = closed_contract(session)

    refuse(
        session,
        ContractClosed,
        services.fund_milestone,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
        milestone_id=first,
    )
