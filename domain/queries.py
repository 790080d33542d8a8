"""Read-side queries for cards, App Home, `status`, `history` and `export`.

Everything here only reads; rendering code calls these after a service committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from domain.errors import InvalidInput, NotFound
from domain.model import (
    ChangeRequest,
    Contract,
    ContractStatus,
    Event,
    Milestone,
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
