"""The rules as data: transition tables and who may do what.

Services consult these tables instead of branching on status by hand, so the whole
state machine can be read (and tested) in one place.
"""

from __future__ import annotations

from enum import StrEnum

from domain.errors import InvalidTransition, NotAllowed, NotAParty, RequestNotPending
from domain.model import (
    Contract,
    ContractStatus,
    MilestoneStatus,
    RequestStatus,
    Role,
)


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
            f"Request {number} is already {status.value}, so it can't be {_PAST[action]}."
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


def mention(user_id: str) -> str:
    """How a person is referred to in messages (chat surfaces render it as a name)."""
    return f"<@{user_id}>"


def mid_sentence(phrase: str) -> str:
    """Close an appositive name ("the client, @alice") when the sentence goes on after it."""
    return f"{phrase}," if phrase.endswith(">") else phrase


def who_can(contract: Contract, act: Act) -> str:
    """'the client, @alice' / 'the freelancer, @bob' / 'an agency manager (@c or @d)'.

    Joined with "or", each name closed by a comma when more follows ("the client,
    @alice, or the freelancer, @bob"); wrap in `mid_sentence` when the sentence goes on.
    """
    roles = PERMISSIONS[act]
    parts: list[str] = []
    if Role.CLIENT in roles:
        parts.append(f"the client, {mention(contract.client_id)}")
    if Role.FREELANCER in roles and contract.freelancer_id:
        parts.append(f"the freelancer, {mention(contract.freelancer_id)}")
    if Role.MANAGER in roles and contract.is_agency:
        managers = " or ".join(mention(u) for u in contract.ids_with_role(Role.MANAGER))
        parts.append(f"an agency manager ({managers})")
    if Role.MEMBER in roles and contract.ids_with_role(Role.MEMBER):
        parts.append("an agency member")
    if not parts:
        return "nobody"
    return " or ".join([*(mid_sentence(p) for p in parts[:-1]), parts[-1]])


def require(contract: Contract, actor_id: str, act: Act, what: str | None = None) -> Role:
    """The actor's role, if it may do `act`; otherwise a refusal naming who can."""
    role = contract.role_of(actor_id)
    doing = what or act.value
    if role is None:
        raise NotAParty(
            f"You're not a party to contract {contract.id} ({contract.title}). "
            f"Only {mid_sentence(who_can(contract, act))} can {doing}."
        )
    if role not in PERMISSIONS[act]:
        raise NotAllowed(f"Only {mid_sentence(who_can(contract, act))} can {doing}.")
    return role


def changes_apply_directly(contract: Contract, user_id: str) -> bool:
    """Whether this person's milestone changes apply at once (the client, or anyone while
    negotiating) rather than becoming a change request (the provider on an active contract)."""
    return contract.status != ContractStatus.ACTIVE or contract.role_of(user_id) == Role.CLIENT
