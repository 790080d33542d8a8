"""Loading and locking: a service reads its facts in a few statements, under the lock.

A service locks the contract row (the aggregate root) with its parties; then (a
statement of its own, so PostgreSQL reads it after the lock is granted) its
milestones; then, where it needs them, the change requests with their changes.
Parties come with the locking statement: that statement reads joined rows as of its
start, so if it had to wait for the lock they could be older than the contract row;
but a contract's parties are written once, with the contract, and never change after
(only `team_id` is filled in later, and no service reads it). Milestones and requests
do change, so they are never joined to the locking select.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from domain.errors import ContractClosed, NotFound, WrongPhase
from domain.model import ChangeRequest, Contract, ContractStatus, Milestone, RequestStatus
from domain.text import Command, Said, said


def lock_contract(session: Session, contract_id: int) -> Contract:
    """Lock the contract row (the aggregate root) and load parties and milestones."""
    contract = select_contract_for_update(session, Contract.id == contract_id)
    if contract is None:
        raise NotFound(f"There is no contract {contract_id}.")
    return contract


def select_contract_for_update(
    session: Session,
    where: ColumnElement[bool],
    *,
    via: type[ChangeRequest] | type[Milestone] | None = None,
    skip_locked: bool = False,
) -> Contract | None:
    """The contract `where` names (through the request or milestone `via`, whose
    `contract_id` never changes), locked: `FOR UPDATE OF contract` on PostgreSQL (the
    outer join to its parties can't be locked); SQLite's `BEGIN IMMEDIATE` already
    serialises writers. `skip_locked`: None when another transaction holds the row."""
    query = select(Contract)
    if via is not None:
        query = query.join(via, via.contract_id == Contract.id)
    return (
        session.scalars(
            query.where(where)
            .options(joinedload(Contract.parties), selectinload(Contract.milestones))
            .with_for_update(of=Contract, skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        .unique()
        .one_or_none()
    )


def requests_of(
    session: Session,
    contract: Contract,
    *,
    pending: bool = True,
    also: ColumnElement[bool] | None = None,
) -> list[ChangeRequest]:
    """The contract's pending change requests and/or the one `also` names (whatever its
    status), with their changes, in one statement."""
    wanted = [ChangeRequest.status == RequestStatus.PENDING] if pending else []
    if also is not None:
        wanted.append(also)
    return list(
        session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.contract_id == contract.id, or_(*wanted))
            .options(joinedload(ChangeRequest.changes))
            .order_by(ChangeRequest.number)
            .execution_options(populate_existing=True)
        ).unique()
    )


def pending_requests(session: Session, contract: Contract) -> list[ChangeRequest]:
    return requests_of(session, contract)


def pending_requests_of(
    session: Session, contract_ids: Sequence[int]
) -> dict[int, list[ChangeRequest]]:
    """The pending change requests of several contracts, with their changes."""
    if not contract_ids:
        return {}
    found: dict[int, list[ChangeRequest]] = {}
    for request in session.scalars(
        select(ChangeRequest)
        .where(
            ChangeRequest.contract_id.in_(contract_ids),
            ChangeRequest.status == RequestStatus.PENDING,
        )
        .options(joinedload(ChangeRequest.changes))
        .order_by(ChangeRequest.contract_id, ChangeRequest.number)
        .execution_options(populate_existing=True)
    ).unique():
        found.setdefault(request.contract_id, []).append(request)
    return found


def contract_id_of_milestone(session: Session, milestone_id: int) -> int:
    contract_id = session.scalar(select(Milestone.contract_id).where(Milestone.id == milestone_id))
    if contract_id is None:
        raise NotFound(f"There is no milestone with id {milestone_id}.")
    return contract_id


def milestone_numbered(contract: Contract, number: int) -> Milestone:
    milestone = contract.milestone(number)
    if milestone is None:
        raise NotFound(f"Contract {contract.id} has no milestone {number}.")
    return milestone


def milestone_by_id(contract: Contract, milestone_id: int) -> Milestone:
    for m in contract.milestones:
        if m.id == milestone_id:
            return m
    raise NotFound(f"That milestone is not part of contract {contract.id}.")


def require_open(contract: Contract) -> None:
    if contract.status == ContractStatus.CLOSED:
        raise ContractClosed(
            f"Contract {contract.id} ({contract.title}) has ended; it is read-only now."
        )


def require_active(contract: Contract, doing: str) -> None:
    require_open(contract)
    if contract.status == ContractStatus.ENDING:
        raise WrongPhase(ending_refusal(contract, doing))
    disputed = contract.disputed
    if disputed is not None:
        raise WrongPhase(
            f"Milestone {disputed.number} ({disputed.title}) is disputed: its escrow is "
            f"frozen until the dispute is settled, so you can't {doing} now.",
            milestone=disputed.number,
        )
    if contract.status != ContractStatus.ACTIVE:
        raise WrongPhase(
            said(
                f"Contract {contract.id} is still being negotiated, so you can't {doing} yet. "
                "It becomes active once the client and the provider both type ",
                Command("start"),
                ".",
            )
        )


def require_not_ending(contract: Contract, doing: str) -> None:
    """While a contract is ending nothing is funded or proposed (nor changed directly)."""
    if contract.status == ContractStatus.ENDING:
        raise WrongPhase(ending_refusal(contract, doing))


def ending_refusal(contract: Contract, doing: str) -> Said:
    """Why nothing is funded, proposed or delivered while a contract is ending."""
    disputed = contract.disputed
    if disputed is not None:
        return said(
            f"Contract {contract.id} is ending and milestone {disputed.number}'s refund is "
            f"disputed, so you can't {doing}. Either side proposes a split with ",
            Command(f"settle {disputed.number} <amount-to-provider>"),
            ".",
        )
    until = contract.ending_deadline_at
    when = f" until {until:%Y-%m-%d %H:%M} UTC" if until is not None else ""
    return said(
        f"Contract {contract.id} is ending: the client ended it, and the provider side has"
        f"{when} to accept the refund or dispute it, so you can't {doing}.",
    )
