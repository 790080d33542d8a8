"""Read-side queries for cards, App Home, `status`, `history` and `export`.

Everything here only reads; rendering code calls these after a service committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from domain import rules
from domain.errors import ContractChoice, NotFound, RequestNotPending
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
from domain.text import Command, said

# A contract comes with its parties (joined: a few rows) and its milestones (a second
# statement: joining both would repeat every milestone once per party).
_WITH_PARTIES_AND_MILESTONES = (joinedload(Contract.parties), selectinload(Contract.milestones))


def load_contract(session: Session, contract_id: int) -> Contract:
    contract = load_contracts(session, [contract_id]).get(contract_id)
    if contract is None:
        raise NotFound(f"There is no contract {contract_id}.")
    return contract


def load_request(session: Session, request_id: int) -> ChangeRequest:
    request = load_requests(session, [request_id]).get(request_id)
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
        .options(joinedload(ChangeRequest.changes))
        .order_by(ChangeRequest.number)
    )
    if statuses is not None:
        query = query.where(ChangeRequest.status.in_(statuses))
    return list(session.scalars(query).unique())


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
            .options(*_WITH_PARTIES_AND_MILESTONES)
            .order_by(Contract.id)
        ).unique()
    )


def resolve_contract(
    session: Session,
    *,
    channel_id: str,
    contract_id: int | None,
    user_id: str | None = None,
) -> Contract:
    """The contract a command means: the one named, or the channel's only open one, or
    — with several open — the only one `user_id` is a party to. Otherwise (a party to
    several of them, or to none) `ContractChoice` names the ones to choose from.

    The channel is the boundary: Slack signs which channel a command comes from, and
    only its members can type there, so a contract is seen from its own channel only
    (a Slack Connect partner who is no party sees the cards there anyway, and is told
    plainly who can act)."""
    if contract_id is not None:
        contract = load_contract(session, contract_id)
        if contract.channel_id != channel_id:
            raise NotFound(f"Contract {contract_id} is not in this channel.")
        return contract
    contracts = open_contracts_in_channel(session, channel_id)
    if not contracts:
        raise NotFound(
            said(
                "There is no open contract in this channel. Create one with ",
                Command('new "<title>" client=@client freelancer=@freelancer'),
                ".",
            )
        )
    if len(contracts) > 1:
        mine = [c for c in contracts if user_id is not None and c.role_of(user_id) is not None]
        if len(mine) == 1:
            return mine[0]
        choices = mine or contracts
        listed = ", ".join(f"{c.id} ({c.title})" for c in choices)
        raise ContractChoice(
            f"This channel has several open contracts: {listed}. Add contract=<id> to the command.",
            choices=tuple(c.id for c in choices),
        )
    return contracts[0]


def contracts_of_user(
    session: Session, user_id: str, *, limit: int = 20, offset: int = 0
) -> list[Contract]:
    """The person's contracts (any role), open ones first, newest first: `limit` of them
    from `offset` (a page of App Home or `/milestone list`)."""
    ids = select(Party.contract_id).where(Party.user_id == user_id)
    return list(
        session.scalars(
            select(Contract)
            .where(Contract.id.in_(ids))
            .options(*_WITH_PARTIES_AND_MILESTONES)
            .order_by((Contract.status == ContractStatus.CLOSED), Contract.id.desc())
            .offset(offset)
            .limit(limit)
        ).unique()
    )


def count_contracts_of_users(session: Session, user_ids: Sequence[str]) -> dict[str, int]:
    """How many contracts each person is a party to (every person gets a count)."""
    counts = dict.fromkeys(user_ids, 0)
    if not counts:
        return counts
    for user_id, count in session.execute(
        select(Party.user_id, func.count(Party.contract_id))
        .where(Party.user_id.in_(list(counts)))
        .group_by(Party.user_id)
    ):
        counts[user_id] = int(count)
    return counts


def recent_events_for_user(session: Session, user_id: str, *, limit: int = 10) -> list[Event]:
    ids = select(Party.contract_id).where(Party.user_id == user_id)
    return list(
        session.scalars(
            select(Event).where(Event.contract_id.in_(ids)).order_by(Event.id.desc()).limit(limit)
        )
    )


def decidable_request(
    session: Session,
    *,
    contract_id: int,
    request_id: int,
    actor_id: str,
    act: rules.Act = rules.Act.DECLINE,
    doing: str = "decline",
) -> tuple[Contract, ChangeRequest]:
    """The request a person is about to decline (or `act` on: suggest changes to it, or
    revise it with `act=WITHDRAW`) in a form: refused up front (so nobody fills in a
    form only to be refused) unless it is pending and the person may do that."""
    contract = load_contract(session, contract_id)
    request = load_request(session, request_id)
    if request.contract_id != contract.id:
        raise NotFound("That request is not part of this contract.")
    rules.require(
        contract,
        actor_id,
        act,
        f"{doing} change request #{request.number}",
        roles=rules.request_roles(contract, act, request.proposed_by),
    )
    if request.status != RequestStatus.PENDING:
        raise RequestNotPending(
            f"Change request #{request.number} is already {request.status.value}."
        )
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


# --- several at once, for delivery: one query per kind of row instead of one per row --


def load_contracts(session: Session, contract_ids: Sequence[int]) -> dict[int, Contract]:
    """`load_contract` of several contracts (those that exist), by id."""
    if not contract_ids:
        return {}
    return {
        contract.id: contract
        for contract in session.scalars(
            select(Contract)
            .where(Contract.id.in_(set(contract_ids)))
            .options(*_WITH_PARTIES_AND_MILESTONES)
            .execution_options(populate_existing=True)
        ).unique()
    }


def load_requests(session: Session, request_ids: Sequence[int]) -> dict[int, ChangeRequest]:
    """`load_request` of several change requests (those that exist), by id."""
    if not request_ids:
        return {}
    return {
        request.id: request
        for request in session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.id.in_(set(request_ids)))
            .options(joinedload(ChangeRequest.changes))
            .execution_options(populate_existing=True)
        ).unique()
    }


def load_events(session: Session, event_ids: Sequence[int]) -> dict[int, Event]:
    """`load_event` of several events (those that exist), by id."""
    if not event_ids:
        return {}
    return {
        event.id: event
        for event in session.scalars(select(Event).where(Event.id.in_(set(event_ids))))
    }


def contracts_of_users(
    session: Session, user_ids: Sequence[str], *, limit: int = 20
) -> dict[str, list[Contract]]:
    """`contracts_of_user` of several people in one query (and its two eager loads):
    each person's first `limit` contracts, open ones first, newest first."""
    users = list(dict.fromkeys(user_ids))
    if len(users) <= 1:
        return {user: contracts_of_user(session, user, limit=limit) for user in users}
    rank = (
        func.row_number()
        .over(
            partition_by=Party.user_id,
            order_by=((Contract.status == ContractStatus.CLOSED), Contract.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(Party.user_id, Party.contract_id, rank)
        .join(Contract, Contract.id == Party.contract_id)
        .where(Party.user_id.in_(users))
        .subquery()
    )
    rows = session.execute(
        select(Contract, ranked.c.user_id)
        .join(ranked, ranked.c.contract_id == Contract.id)
        .where(ranked.c.rank <= limit)
        .options(*_WITH_PARTIES_AND_MILESTONES)
        .order_by(ranked.c.user_id, ranked.c.rank)
    ).unique()
    found: dict[str, list[Contract]] = {user: [] for user in users}
    for contract, user in rows:
        found[user].append(contract)
    return found


def due_auto_releases(session: Session, *, now: datetime, limit: int = 100) -> list[int]:
    """Ids of submitted milestones whose automatic release is due."""
    return list(
        session.scalars(
            select(Milestone.id)
            .where(Milestone.status == MilestoneStatus.SUBMITTED, Milestone.auto_release_at <= now)
            .order_by(Milestone.auto_release_at)
            .limit(limit)
        )
    )
