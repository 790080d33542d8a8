"""Ending a contract: who may, refunds, cancelled requests, read-only afterwards; the
client ending with escrow held gives the provider side a window (accept the refund, or
dispute it; the refund happens by itself when the window runs out)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import queries, services
from domain.errors import (
    ContractClosed,
    DomainError,
    InvalidTransition,
    NotAllowed,
    NotAParty,
    WrongPhase,
)
from domain.model import SYSTEM_ACTOR, LedgerKind, OutboxMessage
from domain.policy import Policy
from domain.services import MilestoneEdit, NewMilestone
from domain.verify import verify
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


def test_client_may_end_once_changes_were_requested_and_the_provider_gets_a_window(
    session: Session,
) -> None:
    contract_id = submitted_contract(session)
    services.request_changes(
        session, contract_id=contract_id, actor_id=CLIENT, note="Not this", now=NOW
    )

    end(session, contract_id)

    assert exported(session, contract_id)["status"] == "ending"
    assert escrow(session, contract_id).refunded_minor == 0


@pytest.mark.parametrize(("actor", "agency"), [(FREELANCER, False), (MANAGER, True)])
def test_provider_may_end_while_work_is_submitted_and_escrow_goes_back_to_the_client(
    session: Session, actor: str, agency: bool
) -> None:
    contract_id = submitted_contract(session, agency=agency)

    outcome = end(session, contract_id, actor)

    assert outcome.summary == (
        f"Contract {contract_id} ended. $1,500.00 refunded to the client. "
        "Recorded as refunded — settle it between yourselves."
    )
    shown = milestone(session, contract_id, 1)
    assert (shown["status"], shown["auto_release_at"], shown["refunded_at"]) == (
        "pending",
        None,
        "2026-11-03T10:00:00Z",
    )
    assert queries.due_auto_releases(session, now=later(days=30)) == []
    session.rollback()


@pytest.mark.parametrize("actor", [FREELANCER])
def test_the_provider_ending_refunds_held_escrow_to_the_client_at_once(
    session: Session, actor: str
) -> None:
    contract_id = funded_contract(session)

    outcome = end(session, contract_id, actor)

    assert "$1,500.00 refunded to the client." in outcome.summary
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

    end(session, contract_id, FREELANCER)

    summary = escrow(session, contract_id)
    assert (summary.released_minor, summary.refunded_minor, summary.balance_minor) == (
        150000,
        300000,
        0,
    )
    assert milestone(session, contract_id, 1)["status"] == "released"


@pytest.mark.parametrize(
    ("actor", "reason", "kind"),
    [
        (FREELANCER, "the contract ended", "contract_ended"),
        (CLIENT, "the contract is ending", "contract_ending"),
    ],
)
def test_pending_requests_are_cancelled_because_the_contract_ended(
    session: Session, actor: str, reason: str, kind: str
) -> None:
    contract_id = funded_contract(session)
    services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[NewMilestone("More", "10", DUE)],
        now=NOW,
    )

    end(session, contract_id, actor)

    shown = request(session, contract_id, 1)
    assert (shown["status"], shown["cancel_reason"]) == ("cancelled", reason)
    assert event_kinds(session, contract_id)[-2:] == ["request_cancelled", kind]


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER])
def test_ending_twice_is_already_done(session: Session, actor: str) -> None:
    contract_id = funded_contract(session)
    end(session, contract_id, FREELANCER)

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


# --------------------------------------------------------------------------------------
# The client ends with escrow held: the provider side's window


def ending_contract(session: Session, *, agency: bool = False) -> int:
    """Milestone 1 funded ($1,500.00 held); the client ended at NOW + 1 day."""
    contract_id = funded_contract(session, agency=agency)
    end(session, contract_id, CLIENT)
    return contract_id


def test_the_client_ending_with_escrow_held_opens_the_providers_window(session: Session) -> None:
    contract_id = funded_contract(session)

    outcome = end(session, contract_id, CLIENT)

    assert outcome.summary == (
        f"Contract {contract_id} is ending. Milestone 1 holds $1,500.00 in escrow: the "
        "provider side has until 2026-11-10 10:00 UTC to accept the refund or dispute it; "
        "if they do neither, it is refunded to you then and the contract closes."
    )
    shown = exported(session, contract_id)
    assert shown["status"] == "ending"
    assert shown["milestones"][0]["status"] == "funded"
    assert shown["escrow"]["balance_minor"] == 150000
    contract = load(session, contract_id)
    assert (contract.ending_by, contract.ending_started_at) == (CLIENT, later(days=1))
    assert contract.ending_deadline_at == later(days=8)
    assert contract.closed_at is None
    ending = events(session, contract_id)[-1]
    assert (ending.kind, ending.actor, ending.milestone_number) == ("contract_ending", CLIENT, 1)
    assert ending.data["held_minor"] == 150000
    assert [e.kind for e in ledger_entries(session, contract_id)] == [LedgerKind.FUND]
    with session.begin():
        kinds = [
            row.kind
            for row in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            if row.contract_id == contract_id
        ]
    assert "ending_card" in kinds


def test_the_window_is_as_long_as_the_policy_says(session: Session) -> None:
    contract_id = funded_contract(session)

    end(session, contract_id, CLIENT, policy=Policy(end_window=timedelta(hours=2)))

    assert load(session, contract_id).ending_deadline_at == later(days=1, hours=2)


@pytest.mark.parametrize(("agency", "actor"), [(False, FREELANCER), (True, MANAGER_2)])
def test_the_provider_accepts_the_refund_and_the_contract_closes(
    session: Session, agency: bool, actor: str
) -> None:
    contract_id = ending_contract(session, agency=agency)

    outcome = services.accept_refund(
        session, contract_id=contract_id, actor_id=actor, now=later(days=2)
    )

    assert outcome.summary == (
        f"You accepted the refund: $1,500.00 goes back to @{CLIENT}. "
        f"Contract {contract_id} is closed. Recorded as refunded — settle it between yourselves."
    )
    shown = exported(session, contract_id)
    assert shown["status"] == "closed"
    assert shown["escrow"]["refunded_minor"] == 150000
    assert shown["escrow"]["balance_minor"] == 0
    refund = ledger_entries(session, contract_id)[-1]
    assert (refund.kind, refund.amount_minor, refund.actor) == (LedgerKind.REFUND, 150000, actor)
    closed = events(session, contract_id)[-1]
    assert (closed.kind, closed.actor) == ("contract_ended", actor)
    assert closed.data["how"] == "refund_accepted"
    assert closed.data["refunded_minor"] == 150000
    assert load(session, contract_id).closed_by == CLIENT  # the client ended it
    with session.begin():
        assert verify(session) == []


def test_accepting_the_refund_twice_is_already_done(session: Session) -> None:
    contract_id = ending_contract(session)
    services.accept_refund(session, contract_id=contract_id, actor_id=FREELANCER, now=later(2))

    outcome = repeat_writes_nothing(
        session,
        services.accept_refund,
        contract_id=contract_id,
        actor_id=FREELANCER,
        now=later(3),
    )

    assert outcome.summary == f"Contract {contract_id} is already closed; its refund was made."


@pytest.mark.parametrize(
    ("actor", "error"),
    [
        pytest.param(CLIENT, NotAllowed, id="client"),
        pytest.param(MEMBER, NotAllowed, id="member"),
        pytest.param(OUTSIDER, NotAParty, id="outsider"),
    ],
)
def test_only_the_provider_side_accepts_the_refund(
    session: Session, actor: str, error: type[DomainError]
) -> None:
    contract_id = ending_contract(session, agency=True)

    message = refuse(
        session,
        error,
        services.accept_refund,
        contract_id=contract_id,
        actor_id=actor,
        now=later(2),
    )
    assert message.endswith(
        f"Only an agency manager (@{MANAGER} or @{MANAGER_2}) can accept the refund."
    )


def test_there_is_no_refund_to_accept_unless_the_contract_is_ending(session: Session) -> None:
    contract_id = funded_contract(session)

    message = refuse(
        session,
        InvalidTransition,
        services.accept_refund,
        contract_id=contract_id,
        actor_id=FREELANCER,
        now=later(2),
    )
    assert message == f"Contract {contract_id} is not ending, so there is no refund to accept."


def test_the_client_ending_again_is_already_done(session: Session) -> None:
    contract_id = ending_contract(session)

    outcome = repeat_writes_nothing(
        session, services.end_contract, contract_id=contract_id, actor_id=CLIENT, now=later(2)
    )

    assert outcome.summary == (
        f"Contract {contract_id} is already ending: the provider side has until "
        "2026-11-10 10:00 UTC to accept the refund or dispute it."
    )


def test_the_provider_ending_while_ending_accepts_the_refund(session: Session) -> None:
    contract_id = ending_contract(session)

    end(session, contract_id, FREELANCER, now=later(days=2))

    assert exported(session, contract_id)["status"] == "closed"
    assert events(session, contract_id)[-1].data["how"] == "refund_accepted"


def test_when_the_window_runs_out_the_refund_happens_by_itself_once(session: Session) -> None:
    contract_id = ending_contract(session)
    assert services.refund_due(session, now=later(days=8) - timedelta(seconds=1)) == []

    [outcome] = services.refund_due(session, now=later(days=8))

    assert outcome.contract_id == contract_id
    assert outcome.outbox_ids
    shown = exported(session, contract_id)
    assert shown["status"] == "closed"
    assert shown["escrow"]["refunded_minor"] == 150000
    refund = ledger_entries(session, contract_id)[-1]
    assert (refund.kind, refund.actor) == (LedgerKind.REFUND, SYSTEM_ACTOR)
    closed = events(session, contract_id)[-1]
    assert (closed.kind, closed.actor, closed.data["how"]) == (
        "contract_ended",
        SYSTEM_ACTOR,
        "window_ran_out",
    )
    assert services.refund_due(session, now=later(days=30)) == []
    again = repeat_writes_nothing(
        session, services.refund_at_window_end, contract_id=contract_id, now=later(days=30)
    )
    assert again.summary == f"Contract {contract_id} is not ending, so nothing is refunded."
    with session.begin():
        assert verify(session) == []


def test_a_window_not_run_out_is_not_refunded(session: Session) -> None:
    contract_id = ending_contract(session)

    outcome = repeat_writes_nothing(
        session, services.refund_at_window_end, contract_id=contract_id, now=later(days=5)
    )

    assert outcome.summary == f"Contract {contract_id} is not due for a refund."


def test_a_missed_window_is_caught_up_later(session: Session) -> None:
    first = ending_contract(session)
    second = ending_contract(session)

    done = services.refund_due(session, now=later(days=60))

    assert sorted(o.contract_id for o in done) == [first, second]


ENDING_ACTIONS: dict[str, tuple[Callable[..., Any], str, dict[str, Any], str]] = {
    "fund": (services.fund_milestone, CLIENT, {}, "fund milestones"),
    "submit": (services.submit_work, FREELANCER, {}, "submit work"),
    "propose": (
        services.propose_changes,
        FREELANCER,
        {"changes": [MilestoneEdit(2, title="y")]},
        "propose changes",
    ),
    "change": (
        services.change_milestones,
        CLIENT,
        {"changes": [MilestoneEdit(2, title="y")]},
        "change milestones",
    ),
}


@pytest.mark.parametrize("action", list(ENDING_ACTIONS))
def test_while_ending_nothing_is_funded_proposed_or_delivered(
    session: Session, action: str
) -> None:
    contract_id = ending_contract(session)
    call, actor, extra, doing = ENDING_ACTIONS[action]

    message = refuse(
        session, WrongPhase, call, contract_id=contract_id, actor_id=actor, now=later(2), **extra
    )
    assert message == (
        f"Contract {contract_id} is ending: the client ended it, and the provider side has "
        f"until 2026-11-10 10:00 UTC to accept the refund or dispute it, so you can't {doing}."
    )


@pytest.mark.parametrize(
    ("build", "actor", "how", "held"),
    [
        pytest.param(active_contract, CLIENT, "close", 0, id="nothing-held"),
        pytest.param(funded_contract, FREELANCER, "refund", 150000, id="provider"),
        pytest.param(funded_contract, CLIENT, "window", 150000, id="client"),
    ],
)
def test_the_preview_says_what_ending_would_do_and_changes_nothing(
    session: Session, build: Callable[..., int], actor: str, how: str, held: int
) -> None:
    contract_id = build(session)
    before = exported(session, contract_id)

    with session.begin():
        preview = services.preview_end(
            session, contract_id=contract_id, actor_id=actor, now=later(days=1)
        )

    assert (preview.how, preview.held_minor) == (how, held)
    assert preview.window_ends_at == (later(days=8) if how == "window" else None)
    assert exported(session, contract_id) == before


def test_the_preview_refuses_what_ending_would_refuse(session: Session) -> None:
    contract_id = submitted_contract(session)

    with session.begin(), pytest.raises(InvalidTransition) as refused:
        services.preview_end(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)

    assert refused.value.message.startswith("Milestone 1 has submitted work waiting")
