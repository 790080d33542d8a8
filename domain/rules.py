"""The rules as data: transition tables and who may do what.

The model's transitions (`Milestone.fund`, `ChangeRequest.decide`, `Contract.end`, …)
consult these tables instead of branching on status by hand, so the whole state
machine can be read (and tested) in one place.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from domain.errors import InvalidTransition, NotAllowed, NotAParty, RequestNotPending
from domain.states import ContractStatus, MilestoneStatus, RequestStatus, Role
from domain.text import Person, Said, joined, said


class Parties(Protocol):
    """What the permission rules read of a contract (domain.model.Contract)."""

    id: int
    title: str
    status: ContractStatus

    def role_of(self, user_id: str) -> Role | None: ...

    def ids_with_role(self, *roles: Role) -> list[str]: ...

    @property
    def client_id(self) -> str: ...

    @property
    def freelancer_id(self) -> str | None: ...

    @property
    def is_agency(self) -> bool: ...


class MilestoneAction(StrEnum):
    FUND = "fund"
    SUBMIT = "submit"
    APPROVE = "approve"
    AUTO_RELEASE = "auto_release"
    REQUEST_CHANGES = "request_changes"
    DELETE = "delete"
    REFUND = "refund"
    RELEASE_PART = "release_part"
    ASK_FOR_TIME = "ask_for_time"
    EXTEND_REVIEW = "extend_review"
    DISPUTE = "dispute"
    SETTLE = "settle"  # a dispute ends with money to the provider (the rest refunded)


class RequestAction(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    WITHDRAW = "withdraw"
    CANCEL = "cancel"
    COUNTER = "counter"  # the answering side suggests changes: a new request replaces it


class ContractAction(StrEnum):
    ACTIVATE = "activate"
    END = "end"
    BEGIN_ENDING = "begin_ending"  # the client ends with escrow held: the provider's window


MILESTONE_TRANSITIONS: dict[tuple[MilestoneStatus, MilestoneAction], MilestoneStatus] = {
    (MilestoneStatus.PENDING, MilestoneAction.FUND): MilestoneStatus.FUNDED,
    (MilestoneStatus.PENDING, MilestoneAction.DELETE): MilestoneStatus.DELETED,
    (MilestoneStatus.FUNDED, MilestoneAction.SUBMIT): MilestoneStatus.SUBMITTED,
    (MilestoneStatus.SUBMITTED, MilestoneAction.APPROVE): MilestoneStatus.RELEASED,
    (MilestoneStatus.SUBMITTED, MilestoneAction.AUTO_RELEASE): MilestoneStatus.RELEASED,
    # Requesting changes stops the review clock; the next submission starts a new one.
    (MilestoneStatus.SUBMITTED, MilestoneAction.REQUEST_CHANGES): MilestoneStatus.FUNDED,
    # Ending a contract refunds held escrow; the milestone is no longer funded.
    (MilestoneStatus.FUNDED, MilestoneAction.REFUND): MilestoneStatus.PENDING,
    (MilestoneStatus.SUBMITTED, MilestoneAction.REFUND): MilestoneStatus.PENDING,
    # Part of the escrow released early: the milestone stays in progress for the rest.
    (MilestoneStatus.FUNDED, MilestoneAction.RELEASE_PART): MilestoneStatus.FUNDED,
    (MilestoneStatus.SUBMITTED, MilestoneAction.RELEASE_PART): MilestoneStatus.SUBMITTED,
    # More time to review, asked for and given (or not) while the work waits for review.
    (MilestoneStatus.SUBMITTED, MilestoneAction.ASK_FOR_TIME): MilestoneStatus.SUBMITTED,
    (MilestoneStatus.SUBMITTED, MilestoneAction.EXTEND_REVIEW): MilestoneStatus.SUBMITTED,
    # A dispute freezes the escrow: the client's over submitted work, the provider's
    # over an end-refund. It ends by a split (released, the rest refunded) or with all
    # of it refunded.
    (MilestoneStatus.SUBMITTED, MilestoneAction.DISPUTE): MilestoneStatus.DISPUTED,
    (MilestoneStatus.FUNDED, MilestoneAction.DISPUTE): MilestoneStatus.DISPUTED,
    (MilestoneStatus.DISPUTED, MilestoneAction.SETTLE): MilestoneStatus.RELEASED,
    (MilestoneStatus.DISPUTED, MilestoneAction.REFUND): MilestoneStatus.PENDING,
}

# More time to review: the days a plain `extend` asks for, the most one ask or grant
# may add, and how many times the client may ask during one submission.
MORE_TIME_DEFAULT_DAYS = 7
MORE_TIME_MAX_DAYS = 30
MORE_TIME_ASKS_PER_SUBMISSION = 2

REQUEST_TRANSITIONS: dict[tuple[RequestStatus, RequestAction], RequestStatus] = {
    (RequestStatus.PENDING, RequestAction.ACCEPT): RequestStatus.ACCEPTED,
    (RequestStatus.PENDING, RequestAction.DECLINE): RequestStatus.DECLINED,
    (RequestStatus.PENDING, RequestAction.WITHDRAW): RequestStatus.WITHDRAWN,
    (RequestStatus.PENDING, RequestAction.CANCEL): RequestStatus.CANCELLED,
    (RequestStatus.PENDING, RequestAction.COUNTER): RequestStatus.COUNTERED,
}

CONTRACT_TRANSITIONS: dict[tuple[ContractStatus, ContractAction], ContractStatus] = {
    (ContractStatus.NEGOTIATING, ContractAction.ACTIVATE): ContractStatus.ACTIVE,
    (ContractStatus.NEGOTIATING, ContractAction.END): ContractStatus.CLOSED,
    (ContractStatus.ACTIVE, ContractAction.END): ContractStatus.CLOSED,
    (ContractStatus.ACTIVE, ContractAction.BEGIN_ENDING): ContractStatus.ENDING,
    (ContractStatus.ENDING, ContractAction.END): ContractStatus.CLOSED,
}

# The request state an action would have led to: a repeat of it is "already done".
REQUEST_TARGET: dict[RequestAction, RequestStatus] = {
    RequestAction.ACCEPT: RequestStatus.ACCEPTED,
    RequestAction.DECLINE: RequestStatus.DECLINED,
    RequestAction.WITHDRAW: RequestStatus.WITHDRAWN,
    RequestAction.CANCEL: RequestStatus.CANCELLED,
    RequestAction.COUNTER: RequestStatus.COUNTERED,
}


def milestone_next(status: MilestoneStatus, action: MilestoneAction) -> MilestoneStatus:
    try:
        return MILESTONE_TRANSITIONS[(status, action)]
    except KeyError:
        raise InvalidTransition(f"A {status.value} milestone can't be {_PAST[action]}.") from None


def request_next(status: RequestStatus, action: RequestAction, number: int) -> RequestStatus:
    try:
        return REQUEST_TRANSITIONS[(status, action)]
    except KeyError:
        raise RequestNotPending(
            f"Change request #{number} is already {status.value}, so it can't be {_PAST[action]}."
        ) from None


def contract_next(status: ContractStatus, action: ContractAction) -> ContractStatus:
    try:
        return CONTRACT_TRANSITIONS[(status, action)]
    except KeyError:
        raise InvalidTransition(f"This contract is {status.value}.") from None


_PAST: dict[StrEnum, str] = {
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


class Act(StrEnum):
    """Everything a person can try, for the permission table."""

    EDIT_NEGOTIATING = "change milestones"
    AGREE = "agree to the terms"
    EDIT_DIRECTLY = "change milestones directly"
    PROPOSE = "propose changes"
    ACCEPT = "accept"
    DECLINE = "decline"
    WITHDRAW = "withdraw"
    COUNTER = "suggest changes"
    FUND = "fund milestones"
    SUBMIT = "submit work"
    APPROVE = "approve work"
    REQUEST_CHANGES = "request changes"
    END = "end the contract"
    RELEASE_PART = "release part of a milestone's escrow"
    PAY_BONUS = "pay a bonus"
    ASK_FOR_TIME = "ask for more time to review"
    GIVE_TIME = "give more time to review"
    ACCEPT_REFUND = "accept the refund"
    DISPUTE = "dispute"
    SETTLE = "settle a dispute"


PROVIDER_SPEAKERS = frozenset({Role.FREELANCER, Role.MANAGER})

PERMISSIONS: dict[Act, frozenset[Role]] = {
    Act.EDIT_NEGOTIATING: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
    Act.AGREE: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
    Act.EDIT_DIRECTLY: frozenset({Role.CLIENT}),
    Act.PROPOSE: PROVIDER_SPEAKERS,
    Act.ACCEPT: frozenset({Role.CLIENT}),
    Act.DECLINE: frozenset({Role.CLIENT}),
    Act.WITHDRAW: PROVIDER_SPEAKERS,
    Act.COUNTER: frozenset({Role.CLIENT}),
    Act.FUND: frozenset({Role.CLIENT}),
    Act.SUBMIT: PROVIDER_SPEAKERS | {Role.MEMBER},
    Act.APPROVE: frozenset({Role.CLIENT}),
    Act.REQUEST_CHANGES: frozenset({Role.CLIENT}),
    Act.END: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
    Act.RELEASE_PART: frozenset({Role.CLIENT}),
    Act.PAY_BONUS: frozenset({Role.CLIENT}),
    Act.ASK_FOR_TIME: frozenset({Role.CLIENT}),
    Act.GIVE_TIME: PROVIDER_SPEAKERS,
    Act.ACCEPT_REFUND: PROVIDER_SPEAKERS,
    # The client disputes submitted work; the provider side an end-refund.
    Act.DISPUTE: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
    Act.SETTLE: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
}


class Side(StrEnum):
    """The two sides of a contract: one proposes a change request, the other answers it."""

    CLIENT = "client"
    PROVIDER = "provider"


SIDE_SPEAKERS: dict[Side, frozenset[Role]] = {
    Side.CLIENT: frozenset({Role.CLIENT}),
    Side.PROVIDER: PROVIDER_SPEAKERS,
}

# Who may act on a change request, by the side that proposed it: the other side answers
# it (accepts, declines, or suggests changes: a counter-offer, which the first side
# answers in turn); its own side may withdraw or revise it. PERMISSIONS holds the usual
# case, a request from the provider side.
REQUEST_PERMISSIONS: dict[tuple[Act, Side], frozenset[Role]] = {
    (Act.ACCEPT, Side.PROVIDER): SIDE_SPEAKERS[Side.CLIENT],
    (Act.DECLINE, Side.PROVIDER): SIDE_SPEAKERS[Side.CLIENT],
    (Act.COUNTER, Side.PROVIDER): SIDE_SPEAKERS[Side.CLIENT],
    (Act.WITHDRAW, Side.PROVIDER): SIDE_SPEAKERS[Side.PROVIDER],
    (Act.ACCEPT, Side.CLIENT): SIDE_SPEAKERS[Side.PROVIDER],
    (Act.DECLINE, Side.CLIENT): SIDE_SPEAKERS[Side.PROVIDER],
    (Act.COUNTER, Side.CLIENT): SIDE_SPEAKERS[Side.PROVIDER],
    (Act.WITHDRAW, Side.CLIENT): SIDE_SPEAKERS[Side.CLIENT],
}


def side_of(role: Role | None) -> Side:
    return Side.CLIENT if role == Role.CLIENT else Side.PROVIDER


def request_roles(contract: Parties, act: Act, proposed_by: str) -> frozenset[Role]:
    """Who may `act` (accept, decline, suggest changes, withdraw or revise) on a change
    request that `proposed_by` made."""
    return REQUEST_PERMISSIONS[(act, side_of(contract.role_of(proposed_by)))]


def answering_ids(contract: Parties, proposed_by: str) -> list[str]:
    """Who answers a change request that `proposed_by` made: the other side's speakers."""
    return contract.ids_with_role(*sorted(request_roles(contract, Act.ACCEPT, proposed_by)))


def who_can(contract: Parties, act: Act, *, roles: frozenset[Role] | None = None) -> Said:
    """'the client, @alice' / 'the freelancer, @bob' / 'an agency manager (@c or @d)',
    joined with "or"; each name closed by a comma when more follows ("the client, @alice,
    or the freelancer, @bob"). `roles`: who may, when not `PERMISSIONS[act]` (a change
    request's sides, `request_roles`).
    """
    roles = PERMISSIONS[act] if roles is None else roles
    parts: list[Said] = []
    if Role.CLIENT in roles:
        parts.append(said("the client, ", Person(contract.client_id)))
    if Role.FREELANCER in roles and contract.freelancer_id:
        parts.append(said("the freelancer, ", Person(contract.freelancer_id)))
    if Role.MANAGER in roles and contract.is_agency:
        managers = joined([Person(u) for u in contract.ids_with_role(Role.MANAGER)], " or ", " or ")
        parts.append(said("an agency manager (", managers, ")"))
    if Role.MEMBER in roles and contract.ids_with_role(Role.MEMBER):
        parts.append(said("an agency member"))
    if not parts:
        return said("nobody")
    return joined([mid_sentence(p) for p in parts[:-1]] + [parts[-1]], " or ", " or ")


def mid_sentence(phrase: Said) -> Said:
    """Close an appositive name ("the client, @alice") when the sentence goes on after it."""
    return said(phrase, ",") if phrase.parts and isinstance(phrase.parts[-1], Person) else phrase


def require(
    contract: Parties,
    actor_id: str,
    act: Act,
    what: str | None = None,
    *,
    roles: frozenset[Role] | None = None,
) -> Role:
    """The actor's role, if it may do `act`; otherwise a refusal naming who can.
    `roles`: who may, when not `PERMISSIONS[act]` (see `request_roles`)."""
    role = contract.role_of(actor_id)
    doing = what or act.value
    allowed = PERMISSIONS[act] if roles is None else roles
    if role is None:
        raise NotAParty(
            said(
                f"You're not a party to contract {contract.id} ({contract.title}). Only ",
                mid_sentence(who_can(contract, act, roles=allowed)),
                f" can {doing}.",
            )
        )
    if role not in allowed:
        raise NotAllowed(
            said("Only ", mid_sentence(who_can(contract, act, roles=allowed)), f" can {doing}.")
        )
    return role


def changes_apply_directly(contract: Parties, user_id: str) -> bool:
    """Whether this person's milestone changes apply at once (the client, or anyone while
    negotiating) rather than becoming a change request (the provider on an active contract)."""
    return contract.status != ContractStatus.ACTIVE or contract.role_of(user_id) == Role.CLIENT
