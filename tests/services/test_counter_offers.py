"""Counter-offers and one-step revisions of change requests (product.md, "Counter-offers
and revising"): the side that answers a request may suggest changes instead (the
original becomes `countered`, the counter awaits the other side), and the proposing side
may revise its own request (the original becomes `withdrawn`, "revised as #N")."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import services, snapshot
from domain.db import read_transaction
from domain.errors import (
    DomainError,
    NotAllowed,
    NotAParty,
    NotFound,
    RequestNotPending,
    RequestPending,
)
from domain.model import LedgerKind, Reminder, ReminderKind, ReminderState
from domain.services import ChangeInput, MilestoneEdit, NewMilestone
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
    provider_of,
)
from tests.services.support import (
    escrow,
    event_kinds,
    events,
    ledger_entries,
    milestone,
    refuse,
    repeat_writes_nothing,
    request,
)


def propose(
    session: Session, contract_id: int, *changes: ChangeInput, actor: str = FREELANCER
) -> services.Outcome:
    return services.propose_changes(
        session, contract_id=contract_id, actor_id=actor, changes=list(changes), now=NOW
    )


def counter(
    session: Session,
    contract_id: int,
    request_id: int | None,
    *changes: ChangeInput,
    actor: str = CLIENT,
    message: str = "",
) -> services.Outcome:
    assert request_id is not None
    return services.counter_request(
        session,
        contract_id=contract_id,
        request_id=request_id,
        actor_id=actor,
        changes=list(changes),
        message=message,
        now=NOW,
    )


def revise(
    session: Session,
    contract_id: int,
    request_id: int | None,
    *changes: ChangeInput,
    actor: str = FREELANCER,
) -> services.Outcome:
    assert request_id is not None
    return services.revise_request(
        session,
        contract_id=contract_id,
        request_id=request_id,
        actor_id=actor,
        changes=list(changes),
        now=NOW,
    )


def accept(session: Session, request_id: int | None, actor: str) -> services.Outcome:
    return services.accept_request(session, actor_id=actor, now=NOW, request_id=request_id)


def asked_for_more(session: Session, *, agency: bool = False) -> tuple[int, services.Outcome]:
    """An active contract (milestones 1: $1,500 and 2: $2,500) and request #1 from the
    provider side: milestone 2 for $3,000."""
    contract_id = active_contract(session, agency=agency)
    first = propose(
        session, contract_id, MilestoneEdit(2, amount="3000"), actor=provider_of(agency)
    )
    return contract_id, first


def reminders_of(session: Session, request_id: int | None) -> dict[str, ReminderState]:
    with read_transaction(session):
        rows = session.scalars(
            select(Reminder).where(
                Reminder.kind == ReminderKind.REQUEST, Reminder.subject_id == request_id
            )
        ).all()
        return {r.recipient_id: r.state for r in rows}


# --- suggest changes: a counter-offer --------------------------------------------------


def test_client_counters_a_request_and_the_counter_awaits_the_freelancer(
    session: Session,
) -> None:
    contract_id, first = asked_for_more(session)

    countered = counter(
        session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"), message="Meet me"
    )

    assert countered.became_request and countered.request_number == 2
    assert countered.summary == (
        f"Sent change request #2 to @{FREELANCER} for a decision. "
        "It is a counter-offer to change request #1."
    )
    old, new = request(session, contract_id, 1), request(session, contract_id, 2)
    assert (old["status"], old["decided_by"], old["replaced_by"]) == ("countered", CLIENT, 2)
    assert (new["status"], new["proposed_by"], new["counter_of"]) == ("pending", CLIENT, 1)
    assert new["message"] == "Meet me"
    assert new["changes"] == [
        {"kind": "edit", "milestone_number": 2, "fields": {"amount_minor": 275_000}}
    ]
    assert milestone(session, contract_id, 2)["amount_minor"] == 250_000  # nothing applied yet
    assert event_kinds(session, contract_id)[-2:] == ["request_countered", "request_proposed"]
    countered_event, proposed_event = events(session, contract_id)[-2:]
    assert (countered_event.actor, countered_event.request_number) == (CLIENT, 1)
    assert countered_event.data["replaced_by"] == 2
    assert proposed_event.data["counters"] == 1


def test_freelancer_accepts_the_counter_and_its_changes_apply(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    accepted = accept(session, countered.request_id, FREELANCER)

    assert accepted.summary == "Accepted change request #2."
    shown = request(session, contract_id, 2)
    assert (shown["status"], shown["decided_by"]) == ("accepted", FREELANCER)
    assert milestone(session, contract_id, 2)["amount_minor"] == 275_000
    assert request(session, contract_id, 1)["status"] == "countered"


def test_the_client_cannot_accept_or_decline_its_own_counter(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    for call, verb in ((services.accept_request, "accept"), (services.decline_request, "decline")):
        message = refuse(
            session, NotAllowed, call, actor_id=CLIENT, now=NOW, request_id=countered.request_id
        )
        assert message == f"Only the freelancer, @{FREELANCER}, can {verb} change request #2."


def test_the_freelancer_declines_the_counter_with_a_reason(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    services.decline_request(
        session, actor_id=FREELANCER, now=NOW, reason="Too low", request_id=countered.request_id
    )

    shown = request(session, contract_id, 2)
    assert (shown["status"], shown["decided_by"], shown["decline_reason"]) == (
        "declined",
        FREELANCER,
        "Too low",
    )
    assert milestone(session, contract_id, 2)["amount_minor"] == 250_000


def test_a_counter_can_be_countered_and_then_accepted_by_the_client(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    second = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    third = counter(
        session, contract_id, second.request_id, MilestoneEdit(2, amount="2900"), actor=FREELANCER
    )

    assert third.summary == (
        f"Sent change request #3 to @{CLIENT} for a decision. "
        "It is a counter-offer to change request #2."
    )
    assert request(session, contract_id, 2)["status"] == "countered"
    assert request(session, contract_id, 3)["counter_of"] == 2
    accept(session, third.request_id, CLIENT)
    assert milestone(session, contract_id, 2)["amount_minor"] == 290_000


def test_any_agency_manager_answers_the_clients_counter_but_no_member(session: Session) -> None:
    contract_id, first = asked_for_more(session, agency=True)
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))
    assert countered.summary.startswith(
        f"Sent change request #2 to @{MANAGER} or @{MANAGER_2} for a decision."
    )

    message = refuse(
        session,
        NotAllowed,
        services.accept_request,
        actor_id=MEMBER,
        now=NOW,
        request_id=countered.request_id,
    )
    assert message == (
        f"Only an agency manager (@{MANAGER} or @{MANAGER_2}) can accept change request #2."
    )
    accept(session, countered.request_id, MANAGER_2)
    assert request(session, contract_id, 2)["decided_by"] == MANAGER_2


@pytest.mark.parametrize(
    ("actor", "error", "expected"),
    [
        pytest.param(
            FREELANCER,
            NotAllowed,
            f"Only the client, @{CLIENT}, can suggest changes to change request #1.",
            id="proposer",
        ),
        pytest.param(
            OUTSIDER,
            NotAParty,
            f"You're not a party to contract 1 (Website redesign). Only the client, "
            f"@{CLIENT}, can suggest changes to change request #1.",
            id="outsider",
        ),
    ],
)
def test_only_the_answering_side_suggests_changes(
    session: Session, actor: str, error: type[DomainError], expected: str
) -> None:
    contract_id, first = asked_for_more(session)

    message = refuse(
        session,
        error,
        services.counter_request,
        contract_id=contract_id,
        request_id=first.request_id,
        actor_id=actor,
        changes=[MilestoneEdit(2, amount="2750")],
        now=NOW,
    )
    assert message == expected


def test_the_client_cannot_counter_its_own_counter(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    message = refuse(
        session,
        NotAllowed,
        services.counter_request,
        contract_id=contract_id,
        request_id=countered.request_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(2, amount="2600")],
        now=NOW,
    )
    assert (
        message == f"Only the freelancer, @{FREELANCER}, can suggest changes to change request #2."
    )


def test_suggesting_changes_twice_is_already_done_and_writes_nothing(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    again = repeat_writes_nothing(
        session,
        services.counter_request,
        contract_id=contract_id,
        request_id=first.request_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(2, amount="2700")],
        now=NOW,
    )

    assert again.summary == "Change request #1 is already countered as change request #2."
    assert again.request_number == 2


@pytest.mark.parametrize(
    ("decision", "status"), [("accept", "accepted"), ("withdraw", "withdrawn")]
)
def test_a_stale_suggest_changes_is_refused_and_changes_nothing(
    session: Session, decision: str, status: str
) -> None:
    contract_id, first = asked_for_more(session)
    if decision == "accept":
        accept(session, first.request_id, CLIENT)
    else:
        services.withdraw_request(
            session, actor_id=FREELANCER, now=NOW, request_id=first.request_id
        )

    message = refuse(
        session,
        RequestNotPending,
        services.counter_request,
        contract_id=contract_id,
        request_id=first.request_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(2, amount="2750")],
        now=NOW,
    )
    assert message == f"Change request #1 is already {status}, so it can't be countered."


def test_a_countered_request_can_no_longer_be_accepted_or_withdrawn(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    message = refuse(
        session,
        RequestNotPending,
        services.accept_request,
        actor_id=CLIENT,
        now=NOW,
        request_id=first.request_id,
    )
    assert message == "Change request #1 is already countered, so it can't be accepted."
    message = refuse(
        session,
        RequestNotPending,
        services.withdraw_request,
        actor_id=FREELANCER,
        now=NOW,
        request_id=first.request_id,
    )
    assert message == "Change request #1 is already countered, so it can't be withdrawn."


def test_a_refused_counter_keeps_the_request_pending(session: Session) -> None:
    contract_id, first = asked_for_more(session)

    refuse(
        session,
        NotFound,
        services.counter_request,
        contract_id=contract_id,
        request_id=first.request_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(9, title="No such milestone")],
        now=NOW,
    )


def test_a_request_of_another_contract_cannot_be_countered(session: Session) -> None:
    _, first = asked_for_more(session)
    other = active_contract(session)

    refuse(
        session,
        NotFound,
        services.counter_request,
        contract_id=other,
        request_id=first.request_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(2, amount="2750")],
        now=NOW,
    )


def test_a_counter_that_raises_a_funded_milestone_tops_up_escrow_when_accepted(
    session: Session,
) -> None:
    contract_id = funded_contract(session)
    first = propose(session, contract_id, MilestoneEdit(1, amount="2000", title="Design v2"))
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(1, amount="1800"))

    accept(session, countered.request_id, FREELANCER)

    assert milestone(session, contract_id, 1)["amount_minor"] == 180_000
    assert milestone(session, contract_id, 1)["title"] == "Milestone 1"  # dropped in the counter
    top_ups = [e for e in ledger_entries(session, contract_id) if e.kind == LedgerKind.TOP_UP]
    assert [e.amount_minor for e in top_ups] == [30_000]
    assert [e.actor for e in top_ups] == [CLIENT]  # the client pays, though the provider accepted
    assert escrow(session, contract_id).balance_minor == 180_000


def test_the_counter_nudges_the_provider_side_and_stops_the_clients_nudges(
    session: Session,
) -> None:
    contract_id, first = asked_for_more(session, agency=True)
    assert reminders_of(session, first.request_id) == {CLIENT: ReminderState.PENDING}

    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    assert reminders_of(session, first.request_id) == {CLIENT: ReminderState.CANCELLED}
    assert reminders_of(session, countered.request_id) == {
        MANAGER: ReminderState.PENDING,
        MANAGER_2: ReminderState.PENDING,
    }


def test_the_next_step_of_a_counter_is_owed_by_the_provider_side(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    with read_transaction(session):
        action = snapshot.snapshot(session, contract_id).next_action
    assert action.owed_by == (FREELANCER,) and action.request is not None
    assert action.request.number == 2


def test_while_its_counter_waits_the_client_changes_nothing_directly(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    message = refuse(
        session,
        RequestPending,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Extra", "100", DUE)],
        now=NOW,
    )
    assert message == (
        f"Your change request #2 is waiting for an answer from @{FREELANCER}: withdraw or "
        "revise it before changing milestones directly."
    )


# --- revise: one's own request, in one step ---------------------------------------------


def test_the_freelancer_revises_its_request_in_one_step(session: Session) -> None:
    contract_id, first = asked_for_more(session)

    revised = revise(session, contract_id, first.request_id, MilestoneEdit(2, amount="2900"))

    assert revised.summary == (
        f"Sent change request #2 to @{CLIENT} for a decision. It replaces change request #1."
    )
    old, new = request(session, contract_id, 1), request(session, contract_id, 2)
    assert (old["status"], old["decided_by"], old["replaced_by"]) == ("withdrawn", FREELANCER, 2)
    assert (new["status"], new["revision_of"], new["counter_of"]) == ("pending", 1, None)
    assert event_kinds(session, contract_id)[-2:] == ["request_withdrawn", "request_proposed"]


def test_the_client_revises_its_counter_and_the_freelancer_still_answers(
    session: Session,
) -> None:
    contract_id, first = asked_for_more(session)
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    revised = revise(
        session, contract_id, countered.request_id, MilestoneEdit(2, amount="2800"), actor=CLIENT
    )

    assert revised.summary == (
        f"Sent change request #3 to @{FREELANCER} for a decision. It replaces change request #2."
    )
    assert request(session, contract_id, 2)["status"] == "withdrawn"
    assert (
        request(session, contract_id, 3)["proposed_by"],
        request(session, contract_id, 3)["revision_of"],
    ) == (CLIENT, 2)
    accept(session, revised.request_id, FREELANCER)
    assert milestone(session, contract_id, 2)["amount_minor"] == 280_000


def test_nobody_revises_the_other_sides_request(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    countered = counter(session, contract_id, first.request_id, MilestoneEdit(2, amount="2750"))

    message = refuse(
        session,
        NotAllowed,
        services.revise_request,
        contract_id=contract_id,
        request_id=countered.request_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, amount="2900")],
        now=NOW,
    )
    assert message == f"Only the client, @{CLIENT}, can revise change request #2."


def test_revising_twice_is_already_done_and_writes_nothing(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    revise(session, contract_id, first.request_id, MilestoneEdit(2, amount="2900"))

    again = repeat_writes_nothing(
        session,
        services.revise_request,
        contract_id=contract_id,
        request_id=first.request_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, amount="2950")],
        now=NOW,
    )
    assert again.summary == "Change request #1 is already revised as change request #2."


def test_a_plainly_withdrawn_request_cannot_be_revised(session: Session) -> None:
    contract_id, first = asked_for_more(session)
    services.withdraw_request(session, actor_id=FREELANCER, now=NOW, request_id=first.request_id)

    message = refuse(
        session,
        RequestNotPending,
        services.revise_request,
        contract_id=contract_id,
        request_id=first.request_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, amount="2950")],
        now=NOW,
    )
    assert message == "Change request #1 is already withdrawn, so it can't be withdrawn."


def test_a_revision_may_edit_a_milestones_description(session: Session) -> None:
    contract_id, first = asked_for_more(session)

    revise(
        session,
        contract_id,
        first.request_id,
        MilestoneEdit(2, amount="3000", description="Shop and checkout"),
    )
    services.accept_request(session, actor_id=CLIENT, now=NOW, contract_id=contract_id, number=2)

    assert milestone(session, contract_id, 2)["description"] == "Shop and checkout"
