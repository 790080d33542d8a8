"""What waits for a person (domain.waiting): every item they owe, across their open
contracts — several on one contract are several items."""

from __future__ import annotations

from sqlalchemy.orm import Session

from domain import services
from domain.db import read_transaction
from domain.services import MilestoneEdit
from domain.waiting import WaitingItem, WaitingKind, waiting_for, waiting_for_users
from tests.factories import (
    CLIENT,
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


def waiting(session: Session, user_id: str) -> list[WaitingItem]:
    with read_transaction(session):
        return waiting_for(session, user_id, now=later(1))


def kinds(items: list[WaitingItem]) -> list[tuple[str, int]]:
    return [(item.kind.value, item.contract.id) for item in items]


def propose(session: Session, contract_id: int, *, number: int = 2) -> int:
    outcome = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(number, title="Renamed")],
        now=NOW,
    )
    assert outcome.request_id is not None
    return outcome.request_id


def test_submitted_work_and_a_pending_request_on_one_contract_are_two_items(
    session: Session,
) -> None:
    contract_id = submitted_contract(session)
    request_id = propose(session, contract_id)

    items = waiting(session, CLIENT)

    assert sorted(kinds(items)) == [("answer_request", contract_id), ("review", contract_id)]
    review = next(i for i in items if i.kind == WaitingKind.REVIEW)
    answer = next(i for i in items if i.kind == WaitingKind.ANSWER_REQUEST)
    assert review.milestone is not None and review.milestone.number == 1
    assert review.due_at == later(days=14)
    assert answer.request is not None and answer.request.id == request_id
    # The one with a deadline comes first.
    assert items[0] is review
    assert waiting(session, FREELANCER) == []


def test_every_pending_request_is_an_item_of_its_own(session: Session) -> None:
    contract_id = active_contract(session)
    first = propose(session, contract_id, number=1)
    second = propose(session, contract_id, number=2)

    items = waiting(session, CLIENT)

    requests = [i.request.id for i in items if i.request is not None]
    assert requests == [first, second]
    assert [i.kind for i in items] == [
        WaitingKind.ANSWER_REQUEST,
        WaitingKind.ANSWER_REQUEST,
        WaitingKind.FUND,
    ]


def test_items_across_contracts_with_who_owes_each(session: Session) -> None:
    negotiating = new_contract(session)
    add(session, negotiating, "Design", "100")
    to_fund = active_contract(session)
    in_progress = funded_contract(session, agency=True)

    client, freelancer = waiting(session, CLIENT), waiting(session, FREELANCER)

    assert sorted(kinds(client)) == sorted([("agree", negotiating), ("fund", to_fund)])
    assert sorted(kinds(freelancer)) == [("agree", negotiating)]
    for person in (MANAGER, MANAGER_2, MEMBER):
        assert kinds(waiting(session, person)) == [("work", in_progress)]
    assert waiting(session, OUTSIDER) == []


def test_nothing_waits_on_a_closed_contract(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))
    assert kinds(waiting(session, FREELANCER)) == [("work", contract_id)]
    services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=later(1))
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))

    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=later(2))

    assert waiting(session, CLIENT) == [] and waiting(session, FREELANCER) == []


def test_keys_are_stable_and_a_new_submission_is_a_new_item(session: Session) -> None:
    contract_id = submitted_contract(session)
    first = waiting(session, CLIENT)[0].key
    assert waiting(session, CLIENT)[0].key == first

    services.request_changes(
        session, contract_id=contract_id, actor_id=CLIENT, note="again", now=later(1)
    )
    services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=later(2))

    assert waiting(session, CLIENT)[0].key != first


def test_several_people_at_once_match_one_at_a_time(session: Session) -> None:
    submitted_contract(session)
    funded_contract(session, agency=True)
    people = [CLIENT, FREELANCER, MANAGER, MEMBER, OUTSIDER]

    with read_transaction(session):
        together = waiting_for_users(session, people, now=later(1))
        alone = {p: waiting_for(session, p, now=later(1)) for p in people}

    assert {p: [i.key for i in items] for p, items in together.items()} == {
        p: [i.key for i in items] for p, items in alone.items()
    }


# --- second-wave kinds ------------------------------------------------------------------


def test_an_ending_notice_waits_for_the_provider_until_its_window_ends(session: Session) -> None:
    contract_id = funded_contract(session)
    services.end_contract(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))

    items = waiting(session, FREELANCER)

    assert kinds(items) == [("ending_notice", contract_id)]
    assert items[0].due_at == later(1, days=7)
    assert waiting(session, CLIENT) == []


def test_an_ask_for_more_time_waits_for_the_provider(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.extend_review(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))

    items = waiting(session, FREELANCER)

    assert kinds(items) == [("extension_ask", contract_id)]
    assert items[0].milestone is not None and items[0].milestone.extension_waiting == 7
    assert [i.kind for i in waiting(session, CLIENT)] == [WaitingKind.REVIEW]


def test_a_counter_offer_waits_for_the_provider_side(session: Session) -> None:
    contract_id = active_contract(session)
    request_id = propose(session, contract_id)
    countered = services.counter_request(
        session,
        contract_id=contract_id,
        request_id=request_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(2, title="Renamed twice")],
        now=later(1),
    )

    items = waiting(session, FREELANCER)

    assert kinds(items) == [("answer_request", contract_id)]
    assert items[0].request is not None and items[0].request.id == countered.request_id
    assert [i.kind for i in waiting(session, CLIENT)] == [WaitingKind.FUND]


def test_a_proposed_split_waits_for_the_other_side(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.dispute_milestone(
        session, contract_id=contract_id, actor_id=CLIENT, reason="Not what we agreed", now=NOW
    )
    services.propose_split(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        milestone_number=1,
        to_provider="500",
        now=later(1),
    )

    items = waiting(session, FREELANCER)

    assert kinds(items) == [("split_to_agree", contract_id)]
    assert items[0].dispute is not None and items[0].dispute.proposed_to_provider_minor == 50000
    assert waiting(session, CLIENT) == []
