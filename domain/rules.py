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


class RequestAction(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    WITHDRAW = "withdraw"
    CANCEL = "cancel"


class ContractAction(StrEnum):
    ACTIVATE = "activate"
    END = "end"


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
}

REQUEST_TRANSITIONS: dict[tuple[RequestStatus, RequestAction], RequestStatus] = {
    (RequestStatus.PENDING, RequestAction.ACCEPT): RequestStatus.ACCEPTED,
    (RequestStatus.PENDING, RequestAction.DECLINE): RequestStatus.DECLINED,
    (RequestStatus.PENDING, RequestAction.WITHDRAW): RequestStatus.WITHDRAWN,
    (RequestStatus.PENDING, RequestAction.CANCEL): RequestStatus.CANCELLED,
}

CONTRACT_TRANSITIONS: dict[tuple[ContractStatus, ContractAction], ContractStatus] = {
    (ContractStatus.NEGOTIATING, ContractAction.ACTIVATE): ContractStatus.ACTIVE,
    (ContractStatus.NEGOTIATING, ContractAction.END): ContractStatus.CLOSED,
    (ContractStatus.ACTIVE, ContractAction.END): ContractStatus.CLOSED,
}

# The request state an action would have led to: a repeat of it is "already done".
REQUEST_TARGET: dict[RequestAction, RequestStatus] = {
    RequestAction.ACCEPT: RequestStatus.ACCEPTED,
    RequestAction.DECLINE: RequestStatus.DECLINED,
    RequestAction.WITHDRAW: RequestStatus.WITHDRAWN,
    RequestAction.CANCEL: RequestStatus.CANCELLED,
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
    RequestAction.ACCEPT: "accepted",
    RequestAction.DECLINE: "declined",
    RequestAction.WITHDRAW: "withdrawn",
    RequestAction.CANCEL: "cancelled",
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
    FUND = "fund milestones"
    SUBMIT = "submit work"
    APPROVE = "approve work"
    REQUEST_CHANGES = "request changes"
    END = "end the contract"


PROVIDER_SPEAKERS = frozenset({Role.FREELANCER, Role.MANAGER})

PERMISSIONS: dict[Act, frozenset[Role]] = {
    Act.EDIT_NEGOTIATING: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
    Act.AGREE: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
    Act.EDIT_DIRECTLY: frozenset({Role.CLIENT}),
    Act.PROPOSE: PROVIDER_SPEAKERS,
    Act.ACCEPT: frozenset({Role.CLIENT}),
    Act.DECLINE: frozenset({Role.CLIENT}),
    Act.WITHDRAW: PROVIDER_SPEAKERS,
    Act.FUND: frozenset({Role.CLIENT}),
    Act.SUBMIT: PROVIDER_SPEAKERS | {Role.MEMBER},
    Act.APPROVE: frozenset({Role.CLIENT}),
    Act.REQUEST_CHANGES: frozenset({Role.CLIENT}),
    Act.END: frozenset({Role.CLIENT}) | PROVIDER_SPEAKERS,
}


def who_can(contract: Parties, act: Act) -> Said:
    """'the client, @alice' / 'the freelancer, @bob' / 'an agency manager (@c or @d)',
    joined with "or"; each name closed by a comma when more follows ("the client, @alice,
    or the freelancer, @bob").
    """
    roles = PERMISSIONS[act]
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


def require(contract: Parties, actor_id: str, act: Act, what: str | None = None) -> Role:
    """The actor's role, if it may do `act`; otherwise a refusal naming who can."""
    role = contract.role_of(actor_id)
    doing = what or act.value
    if role is None:
        raise NotAParty(
            said(
                f"You're not a party to contract {contract.id} ({contract.title}). Only ",
                mid_sentence(who_can(contract, act)),
                f" can {doing}.",
            )
        )
    if role not in PERMISSIONS[act]:
        raise NotAllowed(said("Only ", mid_sentence(who_can(contract, act)), f" can {doing}."))
    return role


def changes_apply_directly(contract: Parties, user_id: str) -> bool:
    """Whether this person's milestone changes apply at once (the client, or anyone while
    negotiating) rather than becoming a change request (the provider on an active contract)."""
    return contract.status != ContractStatus.ACTIVE or contract.role_of(user_id) == Role.CLIENT
