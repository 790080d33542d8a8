"""An active contract: the client changes future milestones, the provider side proposes."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from domain import queries, services
from domain.errors import (
    ContractClosed,
    DomainError,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    MilestoneLocked,
    NotAllowed,
    NotAParty,
    NotFound,
    RequestNotPending,
    RequestPending,
)
from domain.model import LedgerKind, Milestone, MilestoneStatus
from domain.services import ChangeInput, MilestoneDeletion, MilestoneEdit, NewMilestone
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
    new_contract,
    provider_of,
    submitted_contract,
)
from tests.services.support import (
    escrow,
    event_kinds,
    events,
    exported,
    ledger_entries,
    milestone,
    refuse,
    request,
    snapshot,
    statuses,
)

PROPOSERS = [
    pytest.param(FREELANCER, False, id="freelancer"),
    pytest.param(MANAGER, True, id="manager"),
    pytest.param(MANAGER_2, True, id="second-manager"),
]
NOT_CLIENT = [
    pytest.param(FREELANCER, False, NotAllowed, id="freelancer"),
    pytest.param(MANAGER, True, NotAllowed, id="manager"),
    pytest.param(MEMBER, True, NotAllowed, id="member"),
    pytest.param(OUTSIDER, False, NotAParty, id="outsider"),
]
AGENCY_MANAGERS = f"an agency manager (@{MANAGER} or @{MANAGER_2})"


def change(
    session: Session,
    contract_id: int,
    actor: str,
    *changes: ChangeInput,
    message: str = "",
    now: datetime = NOW,
) -> services.Outcome:
    return services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=actor,
        changes=list(changes),
        message=message,
        now=now,
    )


def propose(
    session: Session,
    contract_id: int,
    *changes: ChangeInput,
    actor: str = FREELANCER,
    message: str = "",
    revises: int | None = None,
) -> services.Outcome:
    return services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=actor,
        changes=list(changes),
        message=message,
        now=NOW,
        revises_request_id=revises,
    )


def accept(session: Session, request_id: int | None, actor: str = CLIENT) -> services.Outcome:
    return services.accept_request(session, actor_id=actor, now=NOW, request_id=request_id)


def decline(
    session: Session, request_id: int | None, actor: str = CLIENT, reason: str = ""
) -> services.Outcome:
    return services.decline_request(
        session, actor_id=actor, now=NOW, reason=reason, request_id=request_id
    )


def withdraw(session: Session, request_id: int | None, actor: str = FREELANCER) -> services.Outcome:
    return services.withdraw_request(session, actor_id=actor, now=NOW, request_id=request_id)


def approve(session: Session, contract_id: int) -> services.Outcome:
    return services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)


def fund(session: Session, contract_id: int) -> services.Outcome:
    return services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)


def submit(session: Session, contract_id: int, actor: str = FREELANCER) -> services.Outcome:
    return services.submit_work(session, contract_id=contract_id, actor_id=actor, now=NOW)


def pending_request(session: Session, *, agency: bool = False) -> tuple[int, services.Outcome]:
    """An active contract (milestones 1, 2) with request 1 editing milestone 2's title."""
    contract_id = active_contract(session, agency=agency)
    outcome = propose(
        session, contract_id, MilestoneEdit(2, title="Build v2"), actor=provider_of(agency)
    )
    return contract_id, outcome


# --- the client changes future milestones directly ----------------------------------


def test_client_adds_milestone_directly_on_active_contract(session: Session) -> None:
    contract_id = active_contract(session)

    outcome = change(
        session, contract_id, CLIENT, NewMilestone("Extra", "300", DUE), message="bonus"
    )

    assert not outcome.became_request
    assert outcome.milestone_number == 3
    assert statuses(session, contract_id) == {1: "pending", 2: "pending", 3: "pending"}
    added = events(session, contract_id)[-1]
    assert (added.kind, added.actor, added.data["message"]) == ("milestone_added", CLIENT, "bonus")


def test_client_edits_future_milestone_directly(session: Session) -> None:
    contract_id = funded_contract(session)

    outcome = change(session, contract_id, CLIENT, MilestoneEdit(2, amount="2000", title="Launch"))

    assert not outcome.became_request
    shown = milestone(session, contract_id, 2)
    assert (shown["title"], shown["amount_minor"]) == ("Launch", 200000)
    assert exported(session, contract_id)["change_requests"] == []


def test_client_deletes_future_milestone_directly(session: Session) -> None:
    contract_id = funded_contract(session)

    change(session, contract_id, CLIENT, MilestoneDeletion(2))

    assert statuses(session, contract_id) == {1: "funded", 2: "deleted"}


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(NewMilestone("Extra", "300", DUE), id="add"),
        pytest.param(MilestoneEdit(1, title="Other"), id="edit-untouched-milestone"),
        pytest.param(MilestoneEdit(2, title="Mine"), id="edit-requested-milestone"),
        pytest.param(MilestoneDeletion(1), id="delete"),
    ],
)
def test_client_cannot_change_milestones_while_request_pending(
    session: Session, attempt: ChangeInput
) -> None:
    contract_id, _ = pending_request(session)

    message = refuse(
        session,
        RequestPending,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[attempt],
        now=NOW,
    )
    assert message == (
        f"Change request #1 from @{FREELANCER} is waiting for your answer: accept or "
        "decline it before changing milestones directly."
    )


def test_client_is_told_every_pending_request_to_answer_first(session: Session) -> None:
    contract_id = active_contract(session, agency=True, amounts=("100", "200", "300"))
    propose(session, contract_id, MilestoneEdit(2, title="Two+"), actor=MANAGER)
    propose(session, contract_id, MilestoneEdit(3, title="Three+"), actor=MANAGER_2)

    message = refuse(
        session,
        RequestPending,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1, title="One+")],
        now=NOW,
    )
    assert message == (
        "Change requests 1 and 2 are waiting for your answer: accept or decline them before "
        "changing milestones directly."
    )


def test_client_can_change_milestones_again_once_the_request_is_answered(
    session: Session,
) -> None:
    contract_id, outcome = pending_request(session)
    decline(session, outcome.request_id)

    change(session, contract_id, CLIENT, MilestoneEdit(2, title="Client's title"))

    assert milestone(session, contract_id, 2)["title"] == "Client's title"


@pytest.mark.parametrize("state", ["funded", "submitted"])
@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(MilestoneEdit(1, title="Other"), id="edit-title"),
        pytest.param(MilestoneEdit(1, amount="9000"), id="edit-amount"),
        pytest.param(MilestoneDeletion(1), id="delete"),
    ],
)
def test_funded_or_submitted_milestone_is_locked_for_the_client(
    session: Session, state: str, attempt: ChangeInput
) -> None:
    contract_id = (funded_contract if state == "funded" else submitted_contract)(session)

    message = refuse(
        session,
        MilestoneLocked,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[attempt],
        now=NOW,
    )
    assert message.startswith(f"Milestone 1 is {state}")


def test_released_milestone_cannot_change_any_more(session: Session) -> None:
    contract_id = submitted_contract(session)
    approve(session, contract_id)

    message = refuse(
        session,
        InvalidTransition,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1, title="Retro")],
        now=NOW,
    )
    assert message == "Milestone 1 was already released; it can't change any more."


# --- the provider side proposes --------------------------------------------------


@pytest.mark.parametrize(("actor", "agency"), PROPOSERS)
@pytest.mark.parametrize(
    ("attempt", "kind", "number"),
    [
        pytest.param(NewMilestone("Extra", "300", DUE), "add", None, id="add"),
        pytest.param(MilestoneEdit(2, amount="2,600"), "edit", 2, id="edit"),
        pytest.param(MilestoneDeletion(2), "delete", 2, id="delete"),
    ],
)
def test_provider_change_on_active_contract_becomes_a_change_request(
    session: Session,
    actor: str,
    agency: bool,
    attempt: ChangeInput,
    kind: str,
    number: int | None,
) -> None:
    contract_id = active_contract(session, agency=agency)
    before = exported(session, contract_id)["milestones"]

    outcome = change(session, contract_id, actor, attempt, message="please")

    assert outcome.became_request
    assert outcome.request_number == 1
    assert outcome.summary == f"Sent change request #1 to @{CLIENT} for a decision."
    assert exported(session, contract_id)["milestones"] == before
    shown = request(session, contract_id, 1)
    assert shown["status"] == "pending"
    assert shown["proposed_by"] == actor
    assert shown["decided_by"] is None
    assert shown["message"] == "please"
    assert [(c["kind"], c["milestone_number"]) for c in shown["changes"]] == [(kind, number)]
    proposed = events(session, contract_id)[-1]
    assert (proposed.kind, proposed.actor, proposed.request_number) == (
        "request_proposed",
        actor,
        1,
    )


@pytest.mark.parametrize(
    ("actor", "error", "expected"),
    [
        pytest.param(
            MEMBER, NotAllowed, f"Only {AGENCY_MANAGERS} can propose changes.", id="member"
        ),
        pytest.param(
            OUTSIDER,
            NotAParty,
            f"Only the client, @{CLIENT}, can change milestones directly.",
            id="outsider",
        ),
    ],
)
def test_member_and_outsider_cannot_change_an_active_contract(
    session: Session, actor: str, error: type[DomainError], expected: str
) -> None:
    contract_id = active_contract(session, agency=True)

    for attempt in (
        NewMilestone("Extra", "1", DUE),
        MilestoneEdit(2, title="x"),
        MilestoneDeletion(2),
    ):
        message = refuse(
            session,
            error,
            services.change_milestones,
            contract_id=contract_id,
            actor_id=actor,
            changes=[attempt],
            now=NOW,
        )
        assert message.endswith(expected)


@pytest.mark.parametrize(
    ("actor", "agency", "error", "expected"),
    [
        pytest.param(
            CLIENT, False, NotAllowed, f"Only the freelancer, @{FREELANCER}, can", id="client"
        ),
        pytest.param(MEMBER, True, NotAllowed, f"Only {AGENCY_MANAGERS} can", id="member"),
        pytest.param(OUTSIDER, False, NotAParty, "You're not a party", id="outsider"),
    ],
)
def test_only_the_provider_side_may_propose(
    session: Session, actor: str, agency: bool, error: type[DomainError], expected: str
) -> None:
    contract_id = active_contract(session, agency=agency)

    message = refuse(
        session,
        error,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=actor,
        changes=[MilestoneEdit(2, title="x")],
        now=NOW,
    )
    assert expected in message
    assert message.endswith("propose changes.")


def test_request_without_changes_is_refused(session: Session) -> None:
    contract_id = active_contract(session)

    refuse(
        session,
        InvalidInput,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[],
        now=NOW,
    )


def test_a_request_may_name_each_milestone_only_once(session: Session) -> None:
    contract_id = active_contract(session)

    message = refuse(
        session,
        InvalidInput,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="x"), MilestoneDeletion(2)],
        now=NOW,
    )
    assert message == "Each milestone can appear only once in a change request."


@pytest.mark.parametrize("state", ["funded", "submitted"])
def test_provider_may_propose_title_description_and_due_date_of_an_active_milestone(
    session: Session, state: str
) -> None:
    contract_id = (funded_contract if state == "funded" else submitted_contract)(session)

    outcome = propose(
        session,
        contract_id,
        MilestoneEdit(1, title="Design+", description="More", due_date=date(2027, 1, 5)),
    )
    accept(session, outcome.request_id)

    shown = milestone(session, contract_id, 1)
    assert (shown["title"], shown["description"], shown["due_date"], shown["status"]) == (
        "Design+",
        "More",
        "2027-01-05",
        state,
    )
    assert [e.kind for e in ledger_entries(session, contract_id)] == [LedgerKind.FUND]


@pytest.mark.parametrize("state", ["funded", "submitted"])
def test_amount_of_an_active_milestone_may_not_decrease(session: Session, state: str) -> None:
    contract_id = (funded_contract if state == "funded" else submitted_contract)(session)

    message = refuse(
        session,
        MilestoneLocked,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, amount="1499.99")],
        now=NOW,
    )
    assert message == (
        "The amount of milestone 1 is funded, so it can only increase (it is $1,500.00)."
    )


def test_amount_of_a_future_milestone_may_decrease_through_a_request(session: Session) -> None:
    contract_id = funded_contract(session)

    outcome = propose(session, contract_id, MilestoneEdit(2, amount="100"))
    accept(session, outcome.request_id)

    assert milestone(session, contract_id, 2)["amount_minor"] == 10000


@pytest.mark.parametrize("state", ["funded", "submitted"])
def test_provider_cannot_propose_deleting_an_active_milestone(session: Session, state: str) -> None:
    contract_id = (funded_contract if state == "funded" else submitted_contract)(session)

    message = refuse(
        session,
        MilestoneLocked,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneDeletion(1)],
        now=NOW,
    )
    assert "can't be deleted: escrow is held for it" in message


@pytest.mark.parametrize("state", ["funded", "submitted"])
def test_accepted_increase_tops_up_escrow_by_the_difference_at_once(
    session: Session, state: str
) -> None:
    contract_id = (funded_contract if state == "funded" else submitted_contract)(session)
    outcome = propose(session, contract_id, MilestoneEdit(1, amount="1,750.25"))

    accepted = accept(session, outcome.request_id)

    assert accepted.summary == (
        "Accepted change request #1. Escrow topped up by $250.25. "
        "Recorded as funded — move the money yourselves."
    )
    assert milestone(session, contract_id, 1)["amount_minor"] == 175025
    entries = ledger_entries(session, contract_id)
    assert [(e.kind, e.amount_minor, e.actor) for e in entries] == [
        (LedgerKind.FUND, 150000, CLIENT),
        (LedgerKind.TOP_UP, 25025, CLIENT),
    ]
    assert entries[1].request_id == outcome.request_id
    shown = exported(session, contract_id)
    top_up = shown["ledger"][1]
    assert (top_up["kind"], top_up["milestone_number"], top_up["amount_minor"]) == (
        "fund",
        1,
        25025,
    )
    assert (top_up["actor"], top_up["at"]) == (CLIENT, "2026-11-02T10:00:00Z")
    assert shown["escrow"] == {
        "funded_minor": 175025,
        "released_minor": 0,
        "refunded_minor": 0,
        "balance_minor": 175025,
    }
    assert "escrow_topped_up" in event_kinds(session, contract_id)


def test_topped_up_milestone_releases_its_whole_new_amount(session: Session) -> None:
    contract_id = submitted_contract(session)
    accept(session, propose(session, contract_id, MilestoneEdit(1, amount="2000")).request_id)

    assert approve(session, contract_id).summary == (
        "Approved milestone 1: $2,000.00 released. "
        "Recorded as paid — the client pays the provider directly."
    )

    assert escrow(session, contract_id).balance_minor == 0
    assert exported(session, contract_id)["escrow"]["released_minor"] == 200000


def test_accepted_increase_of_a_future_milestone_moves_no_money(session: Session) -> None:
    contract_id = funded_contract(session)

    accepted = accept(
        session, propose(session, contract_id, MilestoneEdit(2, amount="3000")).request_id
    )

    assert accepted.summary == "Accepted change request #1."
    assert len(ledger_entries(session, contract_id)) == 1


# --- accepting ---------------------------------------------------------------------


def test_multi_change_request_applies_every_change_on_accept(session: Session) -> None:
    contract_id = active_contract(session, amounts=("100", "200", "300"))
    outcome = propose(
        session,
        contract_id,
        NewMilestone("Extra", "50", DUE, "More work"),
        MilestoneEdit(2, title="Two+", amount="250"),
        MilestoneDeletion(3),
        message="Rescope",
    )
    assert request(session, contract_id, 1)["changes"][0]["milestone_number"] is None

    accepted = accept(session, outcome.request_id)

    assert not accepted.already_done
    assert statuses(session, contract_id) == {
        1: "pending",
        2: "pending",
        3: "deleted",
        4: "pending",
    }
    assert milestone(session, contract_id, 4)["description"] == "More work"
    assert (
        milestone(session, contract_id, 2)["title"],
        milestone(session, contract_id, 2)["amount_minor"],
    ) == (
        "Two+",
        25000,
    )
    shown = request(session, contract_id, 1)
    assert shown["status"] == "accepted"
    assert shown["decided_by"] == CLIENT
    assert [c["milestone_number"] for c in shown["changes"]] == [4, 2, 3]
    applied = [e for e in events(session, contract_id) if e.request_number == 1]
    assert [(e.kind, e.actor, e.milestone_number) for e in applied] == [
        ("request_proposed", FREELANCER, None),
        ("milestone_added", FREELANCER, 4),
        ("milestone_edited", FREELANCER, 2),
        ("milestone_deleted", FREELANCER, 3),
        ("request_accepted", CLIENT, None),
    ]


def test_accept_applies_nothing_when_one_change_no_longer_applies(session: Session) -> None:
    contract_id = active_contract(session, amounts=("100", "200", "300"))
    outcome = propose(
        session,
        contract_id,
        MilestoneEdit(2, title="Two+"),
        MilestoneDeletion(3),
    )
    # The services cancel requests that stop applying as soon as that happens, so
    # make milestone 3 inapplicable behind their back to test accept's own re-check.
    with session.begin():
        session.execute(
            update(Milestone)
            .where(Milestone.contract_id == contract_id, Milestone.number == 3)
            .values(status=MilestoneStatus.RELEASED)
        )

    message = refuse(
        session,
        InvalidTransition,
        services.accept_request,
        actor_id=CLIENT,
        now=NOW,
        request_id=outcome.request_id,
    )
    assert message == "Milestone 3 was already released; it can't change any more."
    assert milestone(session, contract_id, 2)["title"] == "Milestone 2"
    assert request(session, contract_id, 1)["status"] == "pending"


def test_accept_by_request_number_within_the_contract(session: Session) -> None:
    contract_id, _ = pending_request(session)

    outcome = services.accept_request(
        session, actor_id=CLIENT, now=NOW, contract_id=contract_id, number=1
    )

    assert outcome.request_number == 1
    assert milestone(session, contract_id, 2)["title"] == "Build v2"


def test_unknown_request_number_is_refused(session: Session) -> None:
    contract_id, _ = pending_request(session)

    message = refuse(
        session,
        NotFound,
        services.accept_request,
        actor_id=CLIENT,
        now=NOW,
        contract_id=contract_id,
        number=5,
    )
    assert message == f"Contract {contract_id} has no change request #5."


def test_request_of_another_contract_is_refused(session: Session) -> None:
    contract_id, outcome = pending_request(session)
    other = active_contract(session)

    refuse(
        session,
        NotFound,
        services.accept_request,
        actor_id=CLIENT,
        now=NOW,
        contract_id=other,
        request_id=outcome.request_id,
    )


@pytest.mark.parametrize(("actor", "agency", "error"), NOT_CLIENT)
def test_only_the_client_accepts(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    _, outcome = pending_request(session, agency=agency)

    message = refuse(
        session,
        error,
        services.accept_request,
        actor_id=actor,
        now=NOW,
        request_id=outcome.request_id,
    )
    assert message.endswith(f"Only the client, @{CLIENT}, can accept change request #1.")


@pytest.mark.parametrize(("actor", "agency", "error"), NOT_CLIENT)
def test_only_the_client_declines(
    session: Session, actor: str, agency: bool, error: type[DomainError]
) -> None:
    _, outcome = pending_request(session, agency=agency)

    message = refuse(
        session,
        error,
        services.decline_request,
        actor_id=actor,
        now=NOW,
        request_id=outcome.request_id,
    )
    assert message.endswith(f"Only the client, @{CLIENT}, can decline change request #1.")


# --- declining, withdrawing, revising ---------------------------------------------


@pytest.mark.parametrize("reason", ["", "Too expensive"])
def test_client_declines_with_an_optional_reason(session: Session, reason: str) -> None:
    contract_id, outcome = pending_request(session)

    declined = decline(session, outcome.request_id, reason=reason)

    assert declined.summary == "Declined change request #1."
    shown = request(session, contract_id, 1)
    assert (shown["status"], shown["decided_by"]) == ("declined", CLIENT)
    assert shown["decline_reason"] == (reason or None)
    assert milestone(session, contract_id, 2)["title"] == "Milestone 2"
    last = events(session, contract_id)[-1]
    assert (last.kind, last.actor, last.data["reason"]) == ("request_declined", CLIENT, reason)


@pytest.mark.parametrize(
    ("proposer", "withdrawer"), [(FREELANCER, FREELANCER), (MANAGER, MANAGER), (MANAGER, MANAGER_2)]
)
def test_proposer_or_any_agency_manager_withdraws(
    session: Session, proposer: str, withdrawer: str
) -> None:
    agency = proposer == MANAGER
    contract_id = active_contract(session, agency=agency)
    outcome = propose(session, contract_id, MilestoneDeletion(2), actor=proposer)

    withdrawn = withdraw(session, outcome.request_id, withdrawer)

    assert withdrawn.summary == "Withdrew change request #1."
    shown = request(session, contract_id, 1)
    assert (shown["status"], shown["decided_by"]) == ("withdrawn", withdrawer)
    assert statuses(session, contract_id)[2] == "pending"


@pytest.mark.parametrize(
    ("actor", "agency", "error", "expected"),
    [
        pytest.param(
            CLIENT, False, NotAllowed, f"Only the freelancer, @{FREELANCER}, can", id="client"
        ),
        pytest.param(CLIENT, True, NotAllowed, f"Only {AGENCY_MANAGERS} can", id="agency-client"),
        pytest.param(MEMBER, True, NotAllowed, f"Only {AGENCY_MANAGERS} can", id="member"),
        pytest.param(OUTSIDER, False, NotAParty, "You're not a party", id="outsider"),
    ],
)
def test_others_cannot_withdraw_a_request(
    session: Session, actor: str, agency: bool, error: type[DomainError], expected: str
) -> None:
    _, outcome = pending_request(session, agency=agency)

    message = refuse(
        session,
        error,
        services.withdraw_request,
        actor_id=actor,
        now=NOW,
        request_id=outcome.request_id,
    )
    assert expected in message
    assert message.endswith("withdraw change request #1.")


DECISIONS = {"accept": accept, "decline": decline, "withdraw": withdraw}


@pytest.mark.parametrize(
    ("first", "then", "actor", "status", "action"),
    [
        ("accept", "decline", CLIENT, "accepted", "declined"),
        ("accept", "withdraw", FREELANCER, "accepted", "withdrawn"),
        ("decline", "accept", CLIENT, "declined", "accepted"),
        ("decline", "withdraw", FREELANCER, "declined", "withdrawn"),
        ("withdraw", "accept", CLIENT, "withdrawn", "accepted"),
        ("withdraw", "decline", CLIENT, "withdrawn", "declined"),
    ],
)
def test_a_decided_request_cannot_be_decided_again(
    session: Session, first: str, then: str, actor: str, status: str, action: str
) -> None:
    _, outcome = pending_request(session)
    DECISIONS[first](session, outcome.request_id)
    service = {
        "accept": services.accept_request,
        "decline": services.decline_request,
        "withdraw": services.withdraw_request,
    }[then]

    message = refuse(
        session, RequestNotPending, service, actor_id=actor, now=NOW, request_id=outcome.request_id
    )
    assert message == f"Change request #1 is already {status}, so it can't be {action}."


def test_revise_withdraws_the_old_request_and_sends_the_new_one_in_one_step(
    session: Session,
) -> None:
    contract_id, first = pending_request(session)

    revised = propose(
        session,
        contract_id,
        MilestoneEdit(2, title="Build v3", amount="2600"),
        message="better",
        revises=first.request_id,
    )

    assert revised.became_request
    assert revised.request_number == 2
    assert revised.summary == (
        f"Sent change request #2 to @{CLIENT} for a decision. It replaces change request #1."
    )
    assert request(session, contract_id, 1)["status"] == "withdrawn"
    assert request(session, contract_id, 2)["status"] == "pending"
    assert event_kinds(session, contract_id)[-2:] == ["request_withdrawn", "request_proposed"]
    accept(session, revised.request_id)
    assert milestone(session, contract_id, 2)["title"] == "Build v3"


def test_another_manager_may_revise_an_agency_request(session: Session) -> None:
    contract_id, first = pending_request(session, agency=True)

    propose(session, contract_id, MilestoneDeletion(2), actor=MANAGER_2, revises=first.request_id)

    assert request(session, contract_id, 1)["decided_by"] == MANAGER_2
    assert request(session, contract_id, 2)["proposed_by"] == MANAGER_2


def test_a_refused_revision_keeps_the_old_request_pending(session: Session) -> None:
    contract_id, first = pending_request(session)

    refuse(
        session,
        NotFound,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(9, title="x")],
        now=NOW,
        revises_request_id=first.request_id,
    )


def test_revising_a_decided_request_is_refused(session: Session) -> None:
    contract_id, first = pending_request(session)
    decline(session, first.request_id)

    message = refuse(
        session,
        RequestNotPending,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="again")],
        now=NOW,
        revises_request_id=first.request_id,
    )
    assert message == "Change request #1 is already declined, so it can't be withdrawn."


def test_revising_a_request_of_another_contract_is_refused(session: Session) -> None:
    _, first = pending_request(session)
    other = active_contract(session)

    refuse(
        session,
        NotFound,
        services.propose_changes,
        contract_id=other,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="again")],
        now=NOW,
        revises_request_id=first.request_id,
    )


def test_client_cannot_revise(session: Session) -> None:
    contract_id, first = pending_request(session)

    refuse(
        session,
        NotAllowed,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(2, title="again")],
        now=NOW,
        revises_request_id=first.request_id,
    )


def test_second_request_touching_the_same_milestone_is_refused(session: Session) -> None:
    contract_id, _ = pending_request(session)

    message = refuse(
        session,
        RequestPending,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneDeletion(2)],
        now=NOW,
    )
    assert message == (
        "Milestone 2 already has a pending change in change request #1; withdraw or revise that "
        "request instead."
    )


def test_second_request_touching_other_milestones_is_allowed(session: Session) -> None:
    contract_id, _ = pending_request(session)

    outcome = propose(
        session, contract_id, MilestoneEdit(1, title="One+"), NewMilestone("x", "1", DUE)
    )

    assert outcome.request_number == 2
    assert [r["status"] for r in exported(session, contract_id)["change_requests"]] == [
        "pending",
        "pending",
    ]


def test_request_numbers_are_stable_and_never_reused(session: Session) -> None:
    contract_id, first = pending_request(session)
    withdraw(session, first.request_id)
    second = propose(session, contract_id, MilestoneDeletion(2))
    decline(session, second.request_id)

    third = propose(session, contract_id, MilestoneEdit(1, title="x"))

    assert third.request_number == 3
    assert [
        (r["number"], r["status"]) for r in exported(session, contract_id)["change_requests"]
    ] == [
        (1, "withdrawn"),
        (2, "declined"),
        (3, "pending"),
    ]


def test_added_milestone_gets_its_number_when_accepted_not_when_proposed(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    proposed = propose(session, contract_id, NewMilestone("Late add", "10", DUE))
    decline(session, proposed.request_id)
    change(session, contract_id, CLIENT, NewMilestone("Client add", "10", DUE))

    second = propose(session, contract_id, NewMilestone("Accepted add", "10", DUE))
    assert request(session, contract_id, 2)["changes"][0]["milestone_number"] is None
    accept(session, second.request_id)

    assert request(session, contract_id, 1)["changes"][0]["milestone_number"] is None
    assert request(session, contract_id, 2)["changes"][0]["milestone_number"] == 4
    assert milestone(session, contract_id, 4)["title"] == "Accepted add"


def test_a_pending_request_never_expires(session: Session) -> None:
    contract_id, outcome = pending_request(session)
    a_year_later = later(days=400)
    before = snapshot(session)

    queries.due_auto_releases(session, now=a_year_later)
    session.rollback()

    assert snapshot(session) == before
    services.accept_request(
        session, actor_id=CLIENT, now=a_year_later, request_id=outcome.request_id
    )
    assert request(session, contract_id, 1)["status"] == "accepted"


# --- requests that can no longer apply are cancelled ------------------------------


def test_request_on_a_milestone_that_gets_released_is_cancelled_with_the_reason(
    session: Session,
) -> None:
    contract_id = submitted_contract(session)
    propose(session, contract_id, MilestoneEdit(1, title="Design+"))

    approve(session, contract_id)

    shown = request(session, contract_id, 1)
    assert shown["status"] == "cancelled"
    assert shown["cancel_reason"] == (
        "milestone 1 was released: Milestone 1 was already released; it can't change any more."
    )
    cancelled = events(session, contract_id)[-1]
    assert (cancelled.kind, cancelled.actor) == ("request_cancelled", "system")
    refuse(
        session,
        RequestNotPending,
        services.accept_request,
        actor_id=CLIENT,
        now=NOW,
        contract_id=contract_id,
        number=1,
    )


def test_request_on_a_milestone_released_automatically_is_cancelled(session: Session) -> None:
    contract_id = submitted_contract(session)
    propose(session, contract_id, MilestoneEdit(1, amount="2000"))
    milestone_id = queries.due_auto_releases(session, now=later(days=15))[0]
    session.rollback()

    services.auto_release(session, milestone_id=milestone_id, now=later(days=15))

    assert request(session, contract_id, 1)["status"] == "cancelled"
    assert "milestone 1 was released" in request(session, contract_id, 1)["cancel_reason"]
    assert escrow(session, contract_id).balance_minor == 0


def test_request_to_delete_a_milestone_that_gets_funded_is_cancelled(session: Session) -> None:
    contract_id = active_contract(session)
    propose(session, contract_id, MilestoneDeletion(1))

    fund(session, contract_id)

    shown = request(session, contract_id, 1)
    assert shown["status"] == "cancelled"
    assert shown["cancel_reason"].startswith("milestone 1 was funded: Milestone 1 is funded")


def test_request_to_lower_a_milestone_that_gets_funded_is_cancelled(session: Session) -> None:
    contract_id = active_contract(session)
    propose(session, contract_id, MilestoneEdit(1, amount="10"))

    fund(session, contract_id)

    assert request(session, contract_id, 1)["status"] == "cancelled"


def test_increase_proposed_before_funding_tops_up_when_accepted_after_funding(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    proposal = propose(session, contract_id, MilestoneEdit(1, title="Design+", amount="2000"))

    fund(session, contract_id)
    assert request(session, contract_id, 1)["status"] == "pending"
    accept(session, proposal.request_id)

    entries = ledger_entries(session, contract_id)
    assert [(e.kind, e.amount_minor) for e in entries] == [
        (LedgerKind.FUND, 150000),
        (LedgerKind.TOP_UP, 50000),
    ]
    assert escrow(session, contract_id).balance_minor == 200000


def test_add_request_beyond_the_milestone_limit_is_cancelled_when_another_fills_it(
    session: Session,
) -> None:
    contract_id = new_contract(session)
    change(
        session,
        contract_id,
        CLIENT,
        *[NewMilestone(f"M{i}", "1", DUE) for i in range(1, 50)],
    )
    services.agree_to_terms(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    services.agree_to_terms(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)
    first = propose(session, contract_id, NewMilestone("Fiftieth", "1", DUE))
    propose(session, contract_id, NewMilestone("Fifty-first", "1", DUE))

    accept(session, first.request_id)

    shown = request(session, contract_id, 2)
    assert shown["status"] == "cancelled"
    assert shown["cancel_reason"] == (
        "change request #1 was accepted: A contract can have at most 50 milestones."
    )


def test_pending_requests_are_cancelled_when_the_contract_ends(session: Session) -> None:
    contract_id, _ = pending_request(session)
    propose(session, contract_id, NewMilestone("x", "1", DUE))

    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)

    for number in (1, 2):
        shown = request(session, contract_id, number)
        assert (shown["status"], shown["cancel_reason"]) == ("cancelled", "the contract ended")


def test_changes_on_a_closed_contract_are_refused(session: Session) -> None:
    contract_id = active_contract(session)
    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)

    for actor in (CLIENT, FREELANCER, OUTSIDER):
        refuse(
            session,
            ContractClosed,
            services.change_milestones,
            contract_id=contract_id,
            actor_id=actor,
            changes=[NewMilestone("x", "1", DUE)],
            now=NOW,
        )
    refuse(
        session,
        ContractClosed,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[NewMilestone("x", "1", DUE)],
        now=NOW,
    )


def test_adding_beyond_fifty_milestones_directly_is_refused(session: Session) -> None:
    contract_id = active_contract(session)
    change(session, contract_id, CLIENT, *[NewMilestone(f"M{i}", "1", DUE) for i in range(3, 51)])

    message = refuse(
        session,
        LimitExceeded,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("51", "1", DUE)],
        now=NOW,
    )
    assert message == "A contract can have at most 50 milestones."
