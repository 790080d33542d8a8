"""Read-side queries for cards, App Home, `status`, `history` and `export`.

Everything here only reads; rendering code calls these after a service committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from domain import rules
from domain.errors import InvalidInput, NotFound, RequestNotPending
from domain.model import (
    ChangeRequest,
    Contract,
    ContractStatus,
    Event,
    Milestone,
    MilestoneStatus,
    Party,
    RequestStatus,
)


def load_contract(session: Session, contract_id: int) -> Contract:
    contract = session.scalars(
        select(Contract)
        .where(Contract.id == contract_id)
        .options(selectinload(Contract.parties), selectinload(Contract.milestones))
        .execution_options(populate_existing=True)
    ).one_or_none()
    if contract is None:
        raise NotFound(f"There is no contract {contract_id}.")
    return contract


def load_request(session: Session, request_id: int) -> ChangeRequest:
    request = session.scalars(
        select(ChangeRequest)
        .where(ChangeRequest.id == request_id)
        .options(selectinload(ChangeRequest.changes))
        .execution_options(populate_existing=True)
    ).one_or_none()
    if request is None:
        raise NotFound(f"There is no change request with id {request_id}.")
    return request


def load_milestone(session: Session, milestone_id: int) -> Milestone:
    milestone = session.get(Milestone, milestone_id, populate_existing=True)
    if milestone is None:
        raise NotFound(f"There is no milestone with id {milestone_id}.")
    return milestone


def requests_of(
    session: Session, contract_id: int, statuses: Sequence[RequestStatus] | None = None
) -> list[ChangeRequest]:
    query = (
        select(ChangeRequest)
        .where(ChangeRequest.contract_id == contract_id)
        .options(selectinload(ChangeRequest.changes))
        .order_by(ChangeRequest.number)
    )
    if statuses is not None:
        query = query.where(ChangeRequest.status.in_(statuses))
    return list(session.scalars(query))


def pending_requests(session: Session, contract_id: int) -> list[ChangeRequest]:
    return requests_of(session, contract_id, [RequestStatus.PENDING])


def history(session: Session, contract_id: int, *, limit: int | None = None) -> list[Event]:
    """The newest `limit` events, oldest first."""
    query = select(Event).where(Event.contract_id == contract_id).order_by(Event.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(session.scalars(query).all()))


def load_event(session: Session, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound(f"There is no event {event_id}.")
    return event


def open_contracts_in_channel(session: Session, channel_id: str) -> list[Contract]:
    return list(
        session.scalars(
            select(Contract)
            .where(Contract.channel_id == channel_id, Contract.status != ContractStatus.CLOSED)
            .options(selectinload(Contract.parties), selectinload(Contract.milestones))
            .order_by(Contract.id)
        )
    )


def resolve_contract(session: Session, *, channel_id: str, contract_id: int | None) -> Contract:
    """The contract a command means: the one named, or the channel's only open one."""
    if contract_id is not None:
        contract = load_contract(session, contract_id)
        if contract.channel_id != channel_id:
            raise NotFound(f"Contract {contract_id} is not in this channel.")
        return contract
    contracts = open_contracts_in_channel(session, channel_id)
    if not contracts:
        raise NotFound(
            "There is no open contract in this channel. Create one with "
            '`/milestone new "<title>" client=@client freelancer=@freelancer`.'
        )
    if len(contracts) > 1:
        listed = ", ".join(f"{c.id} ({c.title})" for c in contracts)
        raise InvalidInput(
            f"This channel has several open contracts: {listed}. Add `contract=<id>`."
        )
    return contracts[0]


def contracts_of_user(session: Session, user_id: str, *, limit: int = 20) -> list[Contract]:
    ids = select(Party.contract_id).where(Party.user_id == user_id)
    return list(
        session.scalars(
            select(Contract)
            .where(Contract.id.in_(ids))
            .options(selectinload(Contract.parties), selectinload(Contract.milestones))
            .order_by((Contract.status == ContractStatus.CLOSED), Contract.id.desc())
            .limit(limit)
        )
    )


def recent_events_for_user(session: Session, user_id: str, *, limit: int = 10) -> list[Event]:
    ids = select(Party.contract_id).where(Party.user_id == user_id)
    return list(
        session.scalars(
            select(Event).where(Event.contract_id.in_(ids)).order_by(Event.id.desc()).limit(limit)
        )
    )


def decidable_request(
    session: Session, *, contract_id: int, request_id: int, actor_id: str
) -> tuple[Contract, ChangeRequest]:
    """The request a person is about to decline in a form: refused up front (so nobody
    fills in a form only to be refused) unless it is pending and the person may decide."""
    contract = load_contract(session, contract_id)
    request = load_request(session, request_id)
    if request.contract_id != contract.id:
        raise NotFound("That request is not part of this contract.")
    rules.require(contract, actor_id, rules.Act.DECLINE, f"decline request {request.number}")
    if request.status != RequestStatus.PENDING:
        raise RequestNotPending(f"Request {request.number} is already {request.status.value}.")
    return contract, request


def reviewable_milestone(
    session: Session, *, contract_id: int, milestone_id: int, actor_id: str
) -> tuple[Contract, Milestone]:
    """The submitted work a person is about to send back with a note, checked up front."""
    contract = load_contract(session, contract_id)
    rules.require(contract, actor_id, rules.Act.REQUEST_CHANGES)
    milestone = next((m for m in contract.milestones if m.id == milestone_id), None)
    if milestone is None or milestone.status != MilestoneStatus.SUBMITTED:
        raise RequestNotPending("That submission is no longer waiting for review.")
    return contract, milestone
