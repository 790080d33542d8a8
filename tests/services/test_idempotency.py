"""Repeating an action that is already done: `already_done`, nothing written twice.

Double clicks, resent modals and scheduler re-runs all end up here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from domain import services
from domain.errors import RequestNotPending
from domain.model import LedgerKind
from domain.services import MilestoneEdit
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    NOW,
    active_contract,
    add,
    funded_contract,
    later,
    new_contract,
    submitted_contract,
)
from tests.services.support import (
    counts,
    events,
    ledger_entries,
    load,
    refuse,
    repeat_writes_nothing,
    statuses,
)

Call = tuple[Callable[..., services.Outcome], dict[str, Any]]


def first_milestone_id(session: Session, contract_id: int) -> int:
    found = load(session, contract_id).milestone(1)
    assert found is not None
    return found.id


def proposal(session: Session, contract_id: int, actor: str = FREELANCER) -> int:
    outcome = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=actor,
        changes=[MilestoneEdit(2, title="Build v2")],
        now=NOW,
    )
    assert outcome.request_id is not None
    return outcome.request_id


def agree_setup(session: Session) -> Call:
    contract_id = new_contract(session)
    add(session, contract_id)
    return services.agree_to_terms, {"contract_id": contract_id, "actor_id": CLIENT}


def activate_setup(session: Session) -> Call:
    contract_id = new_contract(session)
    add(session, contract_id)
    services.agree_to_terms(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    return services.agree_to_terms, {"contract_id": contract_id, "actor_id": FREELANCER}


def fund_setup(session: Session) -> Call:
    contract_id = active_contract(session)
    return services.fund_milestone, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "milestone_id": first_milestone_id(session, contract_id),
    }


def submit_setup(session: Session) -> Call:
    contract_id = funded_contract(session)
    return services.submit_work, {"contract_id": contract_id, "actor_id": FREELANCER}


def approve_setup(session: Session) -> Call:
    contract_id = submitted_contract(session)
    return services.approve_work, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "milestone_id": first_milestone_id(session, contract_id),
    }


def request_changes_setup(session: Session) -> Call:
    contract_id = submitted_contract(session)
    return services.request_changes, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "note": "Fix it",
        "milestone_id": first_milestone_id(session, contract_id),
    }


def request_changes_command_setup(session: Session) -> Call:
    contract_id = submitted_contract(session)
    return services.request_changes, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "note": "Fix it",
    }


def auto_release_setup(session: Session) -> Call:
    contract_id = submitted_contract(session)
    return services.auto_release, {"milestone_id": first_milestone_id(session, contract_id)}


def accept_setup(session: Session) -> Call:
    request_id = proposal(session, funded_contract(session))
    return services.accept_request, {"actor_id": CLIENT, "request_id": request_id}


def accept_by_number_setup(session: Session) -> Call:
    contract_id = funded_contract(session)
    proposal(session, contract_id)
    return services.accept_request, {"actor_id": CLIENT, "contract_id": contract_id, "number": 1}


def decline_setup(session: Session) -> Call:
    request_id = proposal(session, active_contract(session))
    return services.decline_request, {"actor_id": CLIENT, "request_id": request_id, "reason": "no"}


def withdraw_setup(session: Session) -> Call:
    request_id = proposal(session, active_contract(session))
    return services.withdraw_request, {"actor_id": FREELANCER, "request_id": request_id}


def agency_withdraw_setup(session: Session) -> Call:
    request_id = proposal(session, active_contract(session, agency=True), MANAGER)
    return services.withdraw_request, {"actor_id": MANAGER_2, "request_id": request_id}


def end_setup(session: Session) -> Call:
    contract_id = funded_contract(session)
    return services.end_contract, {"contract_id": contract_id, "actor_id": CLIENT}


SCENARIOS = {
    "agree": agree_setup,
    "agree-that-activates": activate_setup,
    "fund": fund_setup,
    "submit": submit_setup,
    "approve": approve_setup,
    "request-changes-button": request_changes_setup,
    "request-changes-command": request_changes_command_setup,
    "auto-release": auto_release_setup,
    "accept": accept_setup,
    "accept-by-number": accept_by_number_setup,
    "decline": decline_setup,
    "withdraw": withdraw_setup,
    "withdraw-by-another-manager": agency_withdraw_setup,
    "end": end_setup,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_repeating_an_action_is_already_done_and_writes_nothing(
    session: Session, scenario: str
) -> None:
    call, kwargs = SCENARIOS[scenario](session)
    first_time = later(days=15)  # late enough for the automatic release

    first = call(session, now=first_time, **kwargs)
    assert not first.already_done, first
    written = counts(session)

    for repeat_at in (first_time, later(days=16)):
        again = repeat_writes_nothing(session, call, now=repeat_at, **kwargs)
        assert again.contract_id == first.contract_id
        assert again.milestone_number == first.milestone_number
        assert again.request_number == first.request_number
    assert counts(session) == written


def test_double_fund_click_records_one_fund_entry(session: Session) -> None:
    call, kwargs = fund_setup(session)
    call(session, now=NOW, **kwargs)

    outcome = call(session, now=NOW, **kwargs)

    assert outcome.summary == "Milestone 1 is already funded."
    contract_id = kwargs["contract_id"]
    assert [e.kind for e in ledger_entries(session, contract_id)] == [LedgerKind.FUND]
    assert statuses(session, contract_id) == {1: "funded", 2: "pending"}


def test_double_approve_click_releases_once(session: Session) -> None:
    call, kwargs = approve_setup(session)
    call(session, now=NOW, **kwargs)

    outcome = call(session, now=NOW, **kwargs)

    assert outcome.summary == "Milestone 1 was already released."
    kinds = [e.kind for e in ledger_entries(session, kwargs["contract_id"])]
    assert kinds == [LedgerKind.FUND, LedgerKind.RELEASE]


def test_double_submit_keeps_the_first_review_clock(session: Session) -> None:
    call, kwargs = submit_setup(session)
    call(session, now=NOW, **kwargs)

    outcome = call(session, now=later(days=3), **kwargs)

    assert outcome.summary == "Milestone 1 is already submitted and waiting for review."
    milestone = load(session, kwargs["contract_id"]).milestone(1)
    assert milestone is not None
    assert milestone.auto_release_at == later(days=14)
    assert milestone.submission_count == 1


def test_repeated_request_for_changes_keeps_the_first_note(session: Session) -> None:
    call, kwargs = request_changes_setup(session)
    call(session, now=NOW, **kwargs)

    outcome = call(session, now=NOW, **{**kwargs, "note": "Another note"})

    assert outcome.already_done
    assert outcome.summary == (
        "Changes to milestone 1 were already requested; waiting for a new submission."
    )
    milestone = load(session, kwargs["contract_id"]).milestone(1)
    assert milestone is not None
    assert milestone.changes_requested_note == "Fix it"
    assert [e.kind for e in events(session, kwargs["contract_id"])].count("changes_requested") == 1


def test_changes_can_be_requested_again_after_a_new_submission(session: Session) -> None:
    call, kwargs = request_changes_setup(session)
    call(session, now=NOW, **kwargs)
    services.submit_work(
        session, contract_id=kwargs["contract_id"], actor_id=FREELANCER, now=later(hours=1)
    )

    outcome = call(session, now=later(hours=2), **kwargs)

    assert not outcome.already_done
    assert [e.kind for e in events(session, kwargs["contract_id"])].count("changes_requested") == 2


def test_a_click_after_another_person_decided_is_refused_not_repeated(session: Session) -> None:
    contract_id = active_contract(session, agency=True)
    request_id = proposal(session, contract_id, MANAGER)
    services.withdraw_request(session, actor_id=MANAGER, now=NOW, request_id=request_id)

    message = refuse(
        session,
        RequestNotPending,
        services.withdraw_request,
        actor_id=MANAGER_2,
        now=NOW,
        request_id=request_id,
    )
    assert message == "Change request #1 is already withdrawn, so it can't be withdrawn."
