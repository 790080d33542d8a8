"""The rules as data: transition tables, the permission table and its wording. No database."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from domain.errors import InvalidTransition, NotAllowed, NotAParty, RequestNotPending
from domain.model import Contract, ContractStatus, MilestoneStatus, Party, RequestStatus, Role
from domain.rules import (
    CONTRACT_TRANSITIONS,
    MILESTONE_TRANSITIONS,
    PERMISSIONS,
    REQUEST_PERMISSIONS,
    REQUEST_TARGET,
    REQUEST_TRANSITIONS,
    Act,
    ContractAction,
    MilestoneAction,
    RequestAction,
    Side,
    answering_ids,
    contract_next,
    mid_sentence,
    milestone_next,
    request_next,
    request_roles,
    require,
    who_can,
)
from domain.text import Person, Said, said
from tests.factories import CLIENT, FREELANCER, MANAGER, MANAGER_2, MEMBER, OUTSIDER

M = MilestoneStatus
R = RequestStatus
C = ContractStatus

# The state machines of product.md, written out independently of domain/rules.py.
EXPECTED_MILESTONE = {
    (M.PENDING, MilestoneAction.FUND): M.FUNDED,
    (M.PENDING, MilestoneAction.DELETE): M.DELETED,
    (M.FUNDED, MilestoneAction.SUBMIT): M.SUBMITTED,
    (M.SUBMITTED, MilestoneAction.APPROVE): M.RELEASED,
    (M.SUBMITTED, MilestoneAction.AUTO_RELEASE): M.RELEASED,
    (M.SUBMITTED, MilestoneAction.REQUEST_CHANGES): M.FUNDED,
    (M.FUNDED, MilestoneAction.REFUND): M.PENDING,
    (M.SUBMITTED, MilestoneAction.REFUND): M.PENDING,
    # Partial release and more time to review keep the milestone where it is.
    (M.FUNDED, MilestoneAction.RELEASE_PART): M.FUNDED,
    (M.SUBMITTED, MilestoneAction.RELEASE_PART): M.SUBMITTED,
    (M.SUBMITTED, MilestoneAction.ASK_FOR_TIME): M.SUBMITTED,
    (M.SUBMITTED, MilestoneAction.EXTEND_REVIEW): M.SUBMITTED,
    # A dispute freezes escrow until it is settled (a split) or all of it refunded.
    (M.SUBMITTED, MilestoneAction.DISPUTE): M.DISPUTED,
    (M.FUNDED, MilestoneAction.DISPUTE): M.DISPUTED,
    (M.DISPUTED, MilestoneAction.SETTLE): M.RELEASED,
    (M.DISPUTED, MilestoneAction.REFUND): M.PENDING,
}
EXPECTED_REQUEST = {
    (R.PENDING, RequestAction.ACCEPT): R.ACCEPTED,
    (R.PENDING, RequestAction.DECLINE): R.DECLINED,
    (R.PENDING, RequestAction.WITHDRAW): R.WITHDRAWN,
    (R.PENDING, RequestAction.CANCEL): R.CANCELLED,
    # The answering side suggests changes: a counter-offer takes the request's place.
    (R.PENDING, RequestAction.COUNTER): R.COUNTERED,
}
EXPECTED_CONTRACT = {
    (C.NEGOTIATING, ContractAction.ACTIVATE): C.ACTIVE,
    (C.NEGOTIATING, ContractAction.END): C.CLOSED,
    (C.ACTIVE, ContractAction.END): C.CLOSED,
    (C.ACTIVE, ContractAction.BEGIN_ENDING): C.ENDING,
    (C.ENDING, ContractAction.END): C.CLOSED,
}
PAST = {
    MilestoneAction.FUND: "funded",
    MilestoneAction.SUBMIT: "submitted",
    MilestoneAction.APPROVE: "approved",
    MilestoneAction.AUTO_RELEASE: "released",
    MilestoneAction.REQUEST_CHANGES: "sent back for changes",
    MilestoneAction.DELETE: "deleted",
    MilestoneAction.REFUND: "refunded",
    MilestoneAction.RELEASE_PART: "partly released",
    MilestoneAction.ASK_FOR_TIME: "given more review time",
    MilestoneAction.EXTEND_REVIEW: "given more review time",
    MilestoneAction.DISPUTE: "disputed",
    MilestoneAction.SETTLE: "settled",
    RequestAction.ACCEPT: "accepted",
    RequestAction.DECLINE: "declined",
    RequestAction.WITHDRAW: "withdrawn",
    RequestAction.CANCEL: "cancelled",
    RequestAction.COUNTER: "countered",
}

ALL_MILESTONE_PAIRS = list(itertools.product(M, MilestoneAction))
ALL_REQUEST_PAIRS = list(itertools.product(R, RequestAction))
ALL_CONTRACT_PAIRS = list(itertools.product(C, ContractAction))


def pair_id(pair: tuple[object, object]) -> str:
    return "-".join(str(p) for p in pair)


# --- milestones ------------------------------------------------------------------


def test_milestone_table_is_exactly_the_product_state_machine() -> None:
    assert MILESTONE_TRANSITIONS == EXPECTED_MILESTONE


@pytest.mark.parametrize(("status", "action"), list(EXPECTED_MILESTONE), ids=pair_id)
def test_allowed_milestone_transition(status: M, action: MilestoneAction) -> None:
    assert milestone_next(status, action) == EXPECTED_MILESTONE[(status, action)]


@pytest.mark.parametrize(
    ("status", "action"),
    [p for p in ALL_MILESTONE_PAIRS if p not in EXPECTED_MILESTONE],
    ids=pair_id,
)
def test_every_other_milestone_transition_is_refused(status: M, action: MilestoneAction) -> None:
    with pytest.raises(InvalidTransition) as caught:
        milestone_next(status, action)
    assert caught.value.message == f"A {status.value} milestone can't be {PAST[action]}."


def test_released_and_deleted_milestones_are_final() -> None:
    for status in (M.RELEASED, M.DELETED):
        assert not [a for (s, a) in MILESTONE_TRANSITIONS if s == status]


def test_nothing_leads_to_released_but_approval_automatic_release_or_a_settled_dispute() -> None:
    into_released = {a for (s, a), to in MILESTONE_TRANSITIONS.items() if to == M.RELEASED}
    assert into_released == {
        MilestoneAction.APPROVE,
        MilestoneAction.AUTO_RELEASE,
        MilestoneAction.SETTLE,  # only from disputed: a split both sides (or an operator) set
    }
    assert {s for (s, a) in MILESTONE_TRANSITIONS if a == MilestoneAction.SETTLE} == {M.DISPUTED}


# --- requests --------------------------------------------------------------------


def test_request_table_is_exactly_the_product_state_machine() -> None:
    assert REQUEST_TRANSITIONS == EXPECTED_REQUEST


@pytest.mark.parametrize(("status", "action"), list(EXPECTED_REQUEST), ids=pair_id)
def test_allowed_request_transition(status: R, action: RequestAction) -> None:
    assert request_next(status, action, 3) == EXPECTED_REQUEST[(status, action)]


@pytest.mark.parametrize(
    ("status", "action"),
    [p for p in ALL_REQUEST_PAIRS if p not in EXPECTED_REQUEST],
    ids=pair_id,
)
def test_every_other_request_transition_is_refused(status: R, action: RequestAction) -> None:
    with pytest.raises(RequestNotPending) as caught:
        request_next(status, action, 3)
    assert caught.value.message == (
        f"Change request #3 is already {status.value}, so it can't be {PAST[action]}."
    )


def test_request_not_pending_is_an_invalid_transition() -> None:
    assert issubclass(RequestNotPending, InvalidTransition)


def test_repeating_a_decision_targets_the_state_it_led_to() -> None:
    assert {
        action: REQUEST_TRANSITIONS[(R.PENDING, action)] for action in RequestAction
    } == REQUEST_TARGET


# --- contracts ---------------------------------------------------------------------


def test_contract_table_is_exactly_the_product_state_machine() -> None:
    assert CONTRACT_TRANSITIONS == EXPECTED_CONTRACT


@pytest.mark.parametrize(("status", "action"), list(EXPECTED_CONTRACT), ids=pair_id)
def test_allowed_contract_transition(status: C, action: ContractAction) -> None:
    assert contract_next(status, action) == EXPECTED_CONTRACT[(status, action)]


@pytest.mark.parametrize(
    ("status", "action"),
    [p for p in ALL_CONTRACT_PAIRS if p not in EXPECTED_CONTRACT],
    ids=pair_id,
)
def test_every_other_contract_transition_is_refused(status: C, action: ContractAction) -> None:
    with pytest.raises(InvalidTransition) as caught:
        contract_next(status, action)
    assert caught.value.message == f"This contract is {status.value}."


# --- permissions -------------------------------------------------------------------

CL, FR, MA, ME = Role.CLIENT, Role.FREELANCER, Role.MANAGER, Role.MEMBER
# Who may do what (product.md, "Parties and roles" and the phases).
EXPECTED_PERMISSIONS = {
    Act.EDIT_NEGOTIATING: {CL, FR, MA},
    Act.AGREE: {CL, FR, MA},
    Act.EDIT_DIRECTLY: {CL},
    Act.PROPOSE: {FR, MA},
    Act.ACCEPT: {CL},
    Act.DECLINE: {CL},
    Act.WITHDRAW: {FR, MA},
    Act.COUNTER: {CL},
    Act.FUND: {CL},
    Act.SUBMIT: {FR, MA, ME},
    Act.APPROVE: {CL},
    Act.REQUEST_CHANGES: {CL},
    Act.END: {CL, FR, MA},
    Act.RELEASE_PART: {CL},
    Act.PAY_BONUS: {CL},
    Act.ASK_FOR_TIME: {CL},
    Act.GIVE_TIME: {FR, MA},
    Act.ACCEPT_REFUND: {FR, MA},
    Act.DISPUTE: {CL, FR, MA},
    Act.SETTLE: {CL, FR, MA},
}


def test_permission_table_covers_every_act() -> None:
    assert set(PERMISSIONS) == set(Act)
    assert {act: set(roles) for act, roles in PERMISSIONS.items()} == EXPECTED_PERMISSIONS


def test_members_may_only_submit_work() -> None:
    assert [act for act, roles in PERMISSIONS.items() if ME in roles] == [Act.SUBMIT]


def test_client_and_provider_side_never_share_a_decision() -> None:
    for act in (Act.PROPOSE, Act.WITHDRAW, Act.SUBMIT):
        assert CL not in PERMISSIONS[act]
    for act in (Act.ACCEPT, Act.DECLINE, Act.FUND, Act.APPROVE, Act.REQUEST_CHANGES):
        assert PERMISSIONS[act] == {CL}


def individual() -> Contract:
    return Contract(
        id=7,
        title="Logo",
        agency_name=None,
        parties=[Party(user_id=CLIENT, role=CL), Party(user_id=FREELANCER, role=FR)],
    )


def agency(*, members: bool = True) -> Contract:
    parties = [
        Party(user_id=CLIENT, role=CL),
        Party(user_id=MANAGER, role=MA),
        Party(user_id=MANAGER_2, role=MA),
    ]
    if members:
        parties.append(Party(user_id=MEMBER, role=ME))
    return Contract(id=8, title="Site", agency_name="Pixel & Co", parties=parties)


PEOPLE = [
    pytest.param(individual, CLIENT, CL, id="client"),
    pytest.param(individual, FREELANCER, FR, id="freelancer"),
    pytest.param(agency, CLIENT, CL, id="agency-client"),
    pytest.param(agency, MANAGER, MA, id="manager"),
    pytest.param(agency, MANAGER_2, MA, id="second-manager"),
    pytest.param(agency, MEMBER, ME, id="member"),
]


@pytest.mark.parametrize("act", list(Act))
@pytest.mark.parametrize(("make", "user", "role"), PEOPLE)
def test_require_allows_exactly_the_permitted_roles(
    make: Callable[[], Contract], user: str, role: Role, act: Act
) -> None:
    contract = make()
    if role in EXPECTED_PERMISSIONS[act]:
        assert require(contract, user, act) == role
        return
    with pytest.raises(NotAllowed) as caught:
        require(contract, user, act)
    assert caught.value.message == f"Only {mid_sentence(who_can(contract, act))} can {act.value}."


@pytest.mark.parametrize("act", list(Act))
@pytest.mark.parametrize("make", [individual, agency])
def test_outsider_is_never_allowed_and_told_who_can(make: Callable[[], Contract], act: Act) -> None:
    contract = make()

    with pytest.raises(NotAParty) as caught:
        require(contract, OUTSIDER, act)

    assert caught.value.message == (
        f"You're not a party to contract {contract.id} ({contract.title}). "
        f"Only {mid_sentence(who_can(contract, act))} can {act.value}."
    )


def test_refusal_names_the_client_when_only_the_client_can_act() -> None:
    with pytest.raises(NotAllowed) as caught:
        require(individual(), FREELANCER, Act.ACCEPT, "accept change request #1")
    assert caught.value.message == f"Only the client, @{CLIENT}, can accept change request #1."


def test_refusal_names_both_speakers_when_either_can_act() -> None:
    with pytest.raises(NotAllowed) as caught:
        require(agency(), MEMBER, Act.END)
    assert caught.value.message == (
        f"Only the client, @{CLIENT}, or an agency manager (@{MANAGER} or @{MANAGER_2}) "
        "can end the contract."
    )


# --- wording -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "act", "expected"),
    [
        (individual, Act.FUND, f"the client, @{CLIENT}"),
        (individual, Act.PROPOSE, f"the freelancer, @{FREELANCER}"),
        (individual, Act.SUBMIT, f"the freelancer, @{FREELANCER}"),
        (individual, Act.END, f"the client, @{CLIENT}, or the freelancer, @{FREELANCER}"),
        (agency, Act.ACCEPT, f"the client, @{CLIENT}"),
        (agency, Act.PROPOSE, f"an agency manager (@{MANAGER} or @{MANAGER_2})"),
        (
            agency,
            Act.SUBMIT,
            f"an agency manager (@{MANAGER} or @{MANAGER_2}) or an agency member",
        ),
        (
            agency,
            Act.AGREE,
            f"the client, @{CLIENT}, or an agency manager (@{MANAGER} or @{MANAGER_2})",
        ),
    ],
)
def test_who_can_names_the_people_who_can_act(
    make: Callable[[], Contract], act: Act, expected: str
) -> None:
    assert str(who_can(make(), act)) == expected


def test_who_can_leaves_out_members_when_the_agency_has_none() -> None:
    assert str(who_can(agency(members=False), Act.SUBMIT)) == (
        f"an agency manager (@{MANAGER} or @{MANAGER_2})"
    )


def test_who_can_names_people_as_facts_not_chat_markup() -> None:
    named = who_can(individual(), Act.AGREE)
    assert named.people() == [CLIENT, FREELANCER]
    assert "<" not in str(named)


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        (said("the client, ", Person("U1")), "the client, @U1,"),
        (said("an agency manager (", Person("U1"), ")"), "an agency manager (@U1)"),
        (said("an agency member"), "an agency member"),
    ],
)
def test_mid_sentence_closes_an_appositive_name(phrase: Said, expected: str) -> None:
    assert str(mid_sentence(phrase)) == expected


# --- who acts on a change request: the side that did not propose it answers ----------


@pytest.mark.parametrize("act", [Act.ACCEPT, Act.DECLINE, Act.COUNTER, Act.WITHDRAW])
def test_a_provider_request_keeps_the_usual_permissions(act: Act) -> None:
    assert request_roles(individual(), act, FREELANCER) == PERMISSIONS[act]
    assert request_roles(agency(), act, MANAGER_2) == PERMISSIONS[act]


@pytest.mark.parametrize("act", [Act.ACCEPT, Act.DECLINE, Act.COUNTER])
def test_the_clients_counter_offer_is_answered_by_the_provider_side(act: Act) -> None:
    assert set(request_roles(individual(), act, CLIENT)) == {FR, MA}
    assert set(REQUEST_PERMISSIONS[(act, Side.CLIENT)]) == {FR, MA}
    assert answering_ids(agency(), CLIENT) == [MANAGER, MANAGER_2]
    assert answering_ids(individual(), FREELANCER) == [CLIENT]


def test_the_clients_counter_offer_is_withdrawn_or_revised_by_the_client_alone() -> None:
    assert set(request_roles(agency(), Act.WITHDRAW, CLIENT)) == {CL}
    with pytest.raises(NotAllowed) as caught:
        require(
            individual(),
            FREELANCER,
            Act.WITHDRAW,
            "revise change request #2",
            roles=request_roles(individual(), Act.WITHDRAW, CLIENT),
        )
    assert caught.value.message == f"Only the client, @{CLIENT}, can revise change request #2."


def test_the_two_sides_never_share_a_decision_on_a_request() -> None:
    for side in Side:
        answer = REQUEST_PERMISSIONS[(Act.ACCEPT, side)]
        assert answer == REQUEST_PERMISSIONS[(Act.DECLINE, side)]
        assert answer == REQUEST_PERMISSIONS[(Act.COUNTER, side)]
        assert not answer & REQUEST_PERMISSIONS[(Act.WITHDRAW, side)]
        assert ME not in answer | REQUEST_PERMISSIONS[(Act.WITHDRAW, side)]
