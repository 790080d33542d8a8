"""Negotiating: either party changes milestones directly; both sides agree to start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from domain import services
from domain.errors import (
    ContractClosed,
    DomainError,
    InvalidInput,
    InvalidTransition,
    NotAllowed,
    NotAParty,
    NotFound,
    WrongPhase,
)
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from tests.factories import (
    CLIENT,
    DUE,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    MEMBER,
    NOW,
    OUTSIDER,
    add,
    later,
    new_contract,
)
from tests.services.support import (
    event_kinds,
    events,
    exported,
    load,
    milestone,
    refuse,
    repeat_writes_nothing,
    statuses,
)

# (actor, agency?) for the three people who speak in a negotiation.
SPEAKERS = [
    pytest.param(CLIENT, False, id="client"),
    pytest.param(FREELANCER, False, id="freelancer"),
    pytest.param(CLIENT, True, id="agency-client"),
    pytest.param(MANAGER, True, id="manager"),
]
# (actor, agency?, refusal) for people who may not change milestones.
SILENT = [
    pytest.param(MEMBER, True, NotAllowed, id="member"),
    pytest.param(OUTSIDER, False, NotAParty, id="outsider"),
    pytest.param(OUTSIDER, True, NotAParty, id="agency-outsider"),
]


def edit(session: Session, contract_id: int, actor: str, **fields: Any) -> services.Outcome:
    number = fields.pop("number", 1)
    return services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=actor,
        changes=[MilestoneEdit(number, **fields)],
        now=NOW,
    )


def delete(session: Session, contract_id: int, actor: str, number: int = 1) -> services.Outcome:
    return services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=actor,
        changes=[MilestoneDeletion(number)],
        now=NOW,
    )


def agree(session: Session, contract_id: int, actor: str) -> services.Outcome:
    return services.agree_to_terms(session, contract_id=contract_id, actor_id=actor, now=NOW)


# --- adding, editing, deleting directly ----------------------------------------------


@pytest.mark.parametrize(("actor", "agency"), SPEAKERS)
def test_party_adds_milestone_directly_while_negotiating(
    session: Session, actor: str, agency: bool
) -> None:
    contract_id = new_contract(session, agency=agency)

    outcome = add(session, contract_id, "Design", "1,500.50", actor=actor, description="Mockups")

    assert not outcome.became_request
    assert outcome.milestone_number == 1
    # the answer echoes the amount and the day as understood
    assert outcome.summary == "Milestone 1 (Design) added: $1,500.50, due Tue 1 Dec 2026."
    shown = milestone(session, contract_id, 1)
    assert {
        k: shown[k] for k in ("title", "description", "amount_minor", "due_date", "status")
    } == {
        "title": "Design",
        "description": "Mockups",
        "amount_minor": 150050,
        "due_date": DUE.isoformat(),
        "status": "pending",
    }
    assert exported(session, contract_id)["change_requests"] == []
    added = events(session, contract_id)[-1]
    assert (added.kind, added.actor, added.milestone_number) == ("milestone_added", actor, 1)


@pytest.mark.parametrize(("actor", "agency"), SPEAKERS)
def test_party_edits_milestone_directly_while_negotiating(
    session: Session, actor: str, agency: bool
) -> None:
    contract_id = new_contract(session, agency=agency)
    add(session, contract_id, "Design", "1500")

    outcome = edit(
        session,
        contract_id,
        actor,
        title="Design v2",
        amount="1750",
        due_date=later(days=40).date(),
    )

    assert not outcome.became_request
    assert outcome.summary == "Milestone 1 (Design v2) updated: $1,750.00, due Sat 12 Dec 2026."
    shown = milestone(session, contract_id, 1)
    assert (shown["title"], shown["amount_minor"], shown["due_date"]) == (
        "Design v2",
        175000,
        later(days=40).date().isoformat(),
    )
    edited = events(session, contract_id)[-1]
    assert edited.kind == "milestone_edited"
    assert edited.actor == actor
    assert edited.data["before"] == {
        "title": "Design",
        "amount_minor": 150000,
        "due_date": DUE.isoformat(),
    }
    assert edited.data["after"] == {
        "title": "Design v2",
        "amount_minor": 175000,
        "due_date": later(days=40).date().isoformat(),
    }


@pytest.mark.parametrize(("actor", "agency"), SPEAKERS)
def test_party_deletes_milestone_directly_while_negotiating(
    session: Session, actor: str, agency: bool
) -> None:
    contract_id = new_contract(session, agency=agency)
    add(session, contract_id, "Design")
    add(session, contract_id, "Build")

    outcome = delete(session, contract_id, actor, 1)

    assert outcome.summary == "Milestone 1 (Design) deleted."
    assert statuses(session, contract_id) == {1: "deleted", 2: "pending"}
    assert events(session, contract_id)[-1].kind == "milestone_deleted"


@pytest.mark.parametrize(("actor", "agency", "error"), SILENT)
def test_member_and_outsider_cannot_add_while_negotiating(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    contract_id = new_contract(session, agency=agency)

    message = refuse(
        session,
        error,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=actor,
        changes=[NewMilestone("Design", "1500", DUE)],
        now=NOW,
    )
    speakers = (
        f"the client, @{CLIENT}, or an agency manager (@{MANAGER} or @{MANAGER_2})"
        if agency
        else f"the client, @{CLIENT}, or the freelancer, @{FREELANCER},"
    )
    assert message.endswith(f"Only {speakers} can change milestones.")
    if error is NotAParty:
        assert message.startswith(f"You're not a party to contract {contract_id}")


@pytest.mark.parametrize(("actor", "agency", "error"), SILENT)
def test_member_and_outsider_cannot_edit_or_delete_while_negotiating(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    contract_id = new_contract(session, agency=agency)
    add(session, contract_id)

    for change in (MilestoneEdit(1, title="Mine"), MilestoneDeletion(1)):
        refuse(
            session,
            error,
            services.change_milestones,
            contract_id=contract_id,
            actor_id=actor,
            changes=[change],
            now=NOW,
        )


def test_propose_changes_while_negotiating_points_to_direct_changes(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)

    message = refuse(
        session,
        WrongPhase,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, title="Mine")],
        now=NOW,
    )
    assert "change the milestones directly" in message


def test_several_changes_in_one_call_apply_together(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id, "Design")

    outcome = services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[
            NewMilestone("Build", "2000", DUE),
            MilestoneEdit(1, description="Mockups"),
        ],
        message="two things",
        now=NOW,
    )

    assert outcome.summary == (
        "Milestone 2 (Build) added: $2,000.00, due Tue 1 Dec 2026. Milestone 1 (Design) updated."
    )
    assert milestone(session, contract_id, 1)["description"] == "Mockups"
    assert statuses(session, contract_id) == {1: "pending", 2: "pending"}
    assert [e.data["message"] for e in events(session, contract_id)[-2:]] == ["two things"] * 2


def test_a_refused_change_among_several_applies_none(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id, "Design")

    refuse(
        session,
        NotFound,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Build", "2000", DUE), MilestoneEdit(7, title="Nope")],
        now=NOW,
    )


def test_editing_a_milestone_that_does_not_exist_is_refused(session: Session) -> None:
    contract_id = new_contract(session)

    message = refuse(
        session,
        NotFound,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(3, title="Nope")],
        now=NOW,
    )
    assert message == f"Contract {contract_id} has no milestone 3."


def test_editing_a_deleted_milestone_is_refused(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)
    add(session, contract_id)
    delete(session, contract_id, CLIENT, 1)

    message = refuse(
        session,
        InvalidTransition,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1, title="Back")],
        now=NOW,
    )
    assert message == "Milestone 1 was deleted."


def test_edit_that_changes_nothing_is_refused(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id, "Design", "1500")

    message = refuse(
        session,
        InvalidInput,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1, title="Design", amount="1,500.00")],
        now=NOW,
    )
    assert message == "Milestone 1 already has those values."


def test_edit_without_fields_is_refused_naming_what_can_change(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)

    message = refuse(
        session,
        InvalidInput,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1)],
        now=NOW,
    )
    assert "title=, amount=, due= or description=" in message


def test_empty_list_of_changes_is_refused(session: Session) -> None:
    contract_id = new_contract(session)

    refuse(
        session,
        InvalidInput,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[],
        now=NOW,
    )


def test_unknown_contract_is_refused(session: Session) -> None:
    message = refuse(
        session,
        NotFound,
        services.change_milestones,
        contract_id=999,
        actor_id=CLIENT,
        changes=[NewMilestone("Design", "1500", DUE)],
        now=NOW,
    )
    assert message == "There is no contract 999."


# --- stable numbering -------------------------------------------------------------


def test_deleted_milestone_keeps_its_number_and_next_takes_next_free_number(
    session: Session,
) -> None:
    contract_id = new_contract(session)
    for title in ("One", "Two", "Three"):
        add(session, contract_id, title)
    delete(session, contract_id, CLIENT, 3)
    delete(session, contract_id, FREELANCER, 2)

    outcome = add(session, contract_id, "Four")

    assert outcome.milestone_number == 4
    shown = exported(session, contract_id)["milestones"]
    assert [(m["number"], m["title"], m["status"]) for m in shown] == [
        (1, "One", "pending"),
        (2, "Two", "deleted"),
        (3, "Three", "deleted"),
        (4, "Four", "pending"),
    ]


# --- agreeing to the terms ---------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "agency"),
    [
        pytest.param(CLIENT, FREELANCER, False, id="client-first"),
        pytest.param(FREELANCER, CLIENT, False, id="freelancer-first"),
        pytest.param(CLIENT, MANAGER, True, id="client-then-manager"),
        pytest.param(MANAGER_2, CLIENT, True, id="second-manager-then-client"),
    ],
)
def test_contract_becomes_active_when_both_sides_agree(
    session: Session, first: str, second: str, agency: bool
) -> None:
    contract_id = new_contract(session, agency=agency)
    add(session, contract_id)

    waiting = agree(session, contract_id, first)
    assert not waiting.contract_activated
    assert exported(session, contract_id)["status"] == "negotiating"

    done = services.agree_to_terms(
        session, contract_id=contract_id, actor_id=second, now=later(hours=1)
    )

    assert done.contract_activated
    assert done.summary == f"Contract {contract_id} is active. Next: the client funds milestone 1."
    assert exported(session, contract_id)["status"] == "active"
    contract = load(session, contract_id)
    assert contract.activated_at == later(hours=1)
    assert event_kinds(session, contract_id)[-3:] == [
        "terms_agreed",
        "terms_agreed",
        "contract_activated",
    ]


def test_client_agreeing_first_waits_for_the_freelancer_by_name(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)

    outcome = agree(session, contract_id, CLIENT)

    assert outcome.summary == (
        f"You agreed to the terms. Waiting for the freelancer, @{FREELANCER}, to agree."
    )
    contract = load(session, contract_id)
    assert contract.client_agreed_at == NOW
    assert contract.provider_agreed_by is None


def test_manager_agreeing_first_waits_for_the_client_by_name(session: Session) -> None:
    contract_id = new_contract(session, agency=True)
    add(session, contract_id)

    outcome = agree(session, contract_id, MANAGER)

    assert (
        outcome.summary == f"You agreed to the terms. Waiting for the client, @{CLIENT}, to agree."
    )
    assert load(session, contract_id).provider_agreed_by == MANAGER


def test_one_agency_manager_agreeing_is_enough_for_the_provider_side(session: Session) -> None:
    contract_id = new_contract(session, agency=True)
    add(session, contract_id)
    agree(session, contract_id, MANAGER)

    outcome = repeat_writes_nothing(
        session, services.agree_to_terms, contract_id=contract_id, actor_id=MANAGER_2, now=NOW
    )
    assert "already agreed" in outcome.summary

    assert agree(session, contract_id, CLIENT).contract_activated


@pytest.mark.parametrize(
    ("actor", "agency"),
    [(CLIENT, False), (FREELANCER, False), (MANAGER, True)],
)
def test_agreeing_twice_is_already_done(session: Session, actor: str, agency: bool) -> None:
    contract_id = new_contract(session, agency=agency)
    add(session, contract_id)
    agree(session, contract_id, actor)

    outcome = repeat_writes_nothing(
        session, services.agree_to_terms, contract_id=contract_id, actor_id=actor, now=later(1)
    )

    assert outcome.summary.startswith("Your side has already agreed; waiting for ")


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER])
def test_agreeing_on_an_active_contract_is_already_done(session: Session, actor: str) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)
    agree(session, contract_id, CLIENT)
    agree(session, contract_id, FREELANCER)

    outcome = repeat_writes_nothing(
        session, services.agree_to_terms, contract_id=contract_id, actor_id=actor, now=NOW
    )
    assert outcome.summary == f"Contract {contract_id} is already active."


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER])
def test_agreeing_without_milestones_is_refused(session: Session, actor: str) -> None:
    contract_id = new_contract(session)

    message = refuse(
        session,
        InvalidInput,
        services.agree_to_terms,
        contract_id=contract_id,
        actor_id=actor,
        now=NOW,
    )
    assert message == "Add at least one milestone before agreeing to the terms."


def test_agreeing_when_every_milestone_was_deleted_is_refused(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)
    delete(session, contract_id, CLIENT, 1)

    refuse(
        session,
        InvalidInput,
        services.agree_to_terms,
        contract_id=contract_id,
        actor_id=CLIENT,
        now=NOW,
    )


@pytest.mark.parametrize(("actor", "agency", "error"), SILENT)
def test_member_and_outsider_cannot_agree(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    contract_id = new_contract(session, agency=agency)
    add(session, contract_id)

    message = refuse(
        session,
        error,
        services.agree_to_terms,
        contract_id=contract_id,
        actor_id=actor,
        now=NOW,
    )
    assert message.endswith("can agree to the terms.")
    assert f"the client, @{CLIENT}" in message


@pytest.mark.parametrize(
    ("first", "editor", "change"),
    [
        pytest.param(CLIENT, FREELANCER, MilestoneEdit(1, amount="1800"), id="provider-edits"),
        pytest.param(FREELANCER, CLIENT, NewMilestone("Extra", "100", DUE), id="client-adds"),
        pytest.param(CLIENT, CLIENT, MilestoneDeletion(2), id="client-deletes-own"),
    ],
)
def test_a_change_between_agreements_clears_the_earlier_agreement(
    session: Session, first: str, editor: str, change: services.ChangeInput
) -> None:
    contract_id = new_contract(session)
    add(session, contract_id, "Design")
    add(session, contract_id, "Build")
    agree(session, contract_id, first)

    services.change_milestones(
        session, contract_id=contract_id, actor_id=editor, changes=[change], now=NOW
    )

    contract = load(session, contract_id)
    assert contract.client_agreed_at is None
    assert contract.provider_agreed_by is None
    assert event_kinds(session, contract_id)[-1] == "agreement_cleared"
    other = FREELANCER if first == CLIENT else CLIENT
    assert not agree(session, contract_id, other).contract_activated
    assert agree(session, contract_id, first).contract_activated


def test_a_refused_change_keeps_the_agreement(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)
    agree(session, contract_id, CLIENT)

    refuse(
        session,
        NotFound,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(9, title="x")],
        now=NOW,
    )

    assert agree(session, contract_id, FREELANCER).contract_activated


def test_agreeing_on_a_closed_contract_is_refused(session: Session) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)
    services.end_contract(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)

    message = refuse(
        session,
        ContractClosed,
        services.agree_to_terms,
        contract_id=contract_id,
        actor_id=FREELANCER,
        now=NOW,
    )
    assert message == f"Contract {contract_id} (Website redesign) has ended; it is read-only now."


@pytest.mark.parametrize("action", ["fund", "submit", "approve", "request_changes"])
def test_escrow_actions_wait_for_the_contract_to_start(session: Session, action: str) -> None:
    contract_id = new_contract(session)
    add(session, contract_id)
    actions: dict[str, tuple[Callable[..., Any], str, dict[str, str]]] = {
        "fund": (services.fund_milestone, CLIENT, {}),
        "submit": (services.submit_work, FREELANCER, {}),
        "approve": (services.approve_work, CLIENT, {}),
        "request_changes": (services.request_changes, CLIENT, {"note": "fix"}),
    }
    call, actor, extra = actions[action]

    message = refuse(
        session,
        WrongPhase,
        call,
        contract_id=contract_id,
        actor_id=actor,
        now=NOW,
        **extra,
    )
    assert message.startswith(f"Contract {contract_id} is still being negotiated")
    assert "/milestone start" in message
