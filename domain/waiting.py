"""What waits for a person: every item they owe an answer or a step on, across their
open contracts — not one "next action" per contract (submitted work and a pending
request on the same contract are two items).

One query answers it for App Home, direct messages and the morning digest:
`waiting_for(session, user_id, now=...)`. Each kind of item is found by one *finder*
in `FINDERS`: a function of one contract's facts that yields the items some people
owe. A new kind (an ending notice, a split to agree, an extension ask, a counter-offer
to answer) is one more finder appended there, and one more `WaitingKind`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from domain.model import (
    ChangeRequest,
    Contract,
    ContractStatus,
    Dispute,
    Milestone,
    MilestoneStatus,
    Party,
    RequestStatus,
    Role,
)
from domain.rules import PROVIDER_SPEAKERS


class WaitingKind(StrEnum):
    """What a person is waiting to do (the handlers word and button each kind)."""

    ADD_MILESTONES = "add_milestones"  # negotiating, no milestone yet: either side
    AGREE = "agree"  # negotiating: this side's agreement to the terms
    ANSWER_REQUEST = "answer_request"  # a pending change request to accept or decline
    REVIEW = "review"  # submitted work to approve or send back
    FUND = "fund"  # the next milestone to fund
    WORK = "work"  # a funded milestone to deliver
    ENDING_NOTICE = "ending_notice"  # the client ended: accept the refund or dispute it
    EXTENSION_ASK = "extension_ask"  # the client asks for more time to review
    SPLIT_TO_AGREE = "split_to_agree"  # the other side proposed a split of a dispute


@dataclass(frozen=True)
class WaitingItem:
    """One thing `user_id` owes on a contract.

    `milestone` / `request`: what it is about; `due_at`: the instant something happens
    by itself if nobody acts (the automatic release, an ending window's end); `since`:
    when it started waiting (for ordering and "waiting 3 days").
    """

    kind: WaitingKind
    contract: Contract
    owed_by: tuple[str, ...]
    milestone: Milestone | None = None
    request: ChangeRequest | None = None
    due_at: datetime | None = None
    since: datetime | None = None
    dispute: Dispute | None = None

    @property
    def key(self) -> str:
        """Stable identity of the item (e.g. `review:milestone:12:2`): the same item
        found twice has the same key, a new round of it (another submission) a new one."""
        if self.request is not None:
            return f"{self.kind.value}:request:{self.request.id}"
        if self.dispute is not None:
            return f"{self.kind.value}:dispute:{self.dispute.id}:{self.dispute.proposal_number}"
        if self.milestone is not None:
            round_ = self.milestone.submission_count if self.kind == WaitingKind.REVIEW else 0
            return f"{self.kind.value}:milestone:{self.milestone.id}:{round_}"
        return f"{self.kind.value}:contract:{self.contract.id}:{self.contract.version}"


@dataclass(frozen=True)
class ContractFacts:
    """What the finders read of one open contract (loaded once for all of them)."""

    contract: Contract
    pending_requests: Sequence[ChangeRequest]
    now: datetime
    open_disputes: Sequence[Dispute] = ()

    @property
    def client(self) -> tuple[str, ...]:
        return (self.contract.client_id,)

    @property
    def provider(self) -> tuple[str, ...]:
        """Who speaks for the provider side: the freelancer, or the agency's managers."""
        return tuple(self.contract.provider_ids)

    @property
    def workers(self) -> tuple[str, ...]:
        return tuple(self.contract.ids_with_role(Role.FREELANCER, Role.MANAGER, Role.MEMBER))

    def deciders_of(self, request: ChangeRequest) -> tuple[str, ...]:
        """Who answers a request: the other side from its proposer (the client answers
        the provider's requests; the provider side answers the client's counter-offers)."""
        if self.contract.role_of(request.proposed_by) in PROVIDER_SPEAKERS:
            return self.client
        return self.provider


Finder = Callable[[ContractFacts], Iterable[WaitingItem]]


def _add_milestones(facts: ContractFacts) -> Iterable[WaitingItem]:
    contract = facts.contract
    if contract.status == ContractStatus.NEGOTIATING and not contract.live_milestones:
        yield WaitingItem(
            WaitingKind.ADD_MILESTONES,
            contract,
            facts.client + facts.provider,
            since=contract.created_at,
        )


def _agree(facts: ContractFacts) -> Iterable[WaitingItem]:
    contract = facts.contract
    if contract.status != ContractStatus.NEGOTIATING or not contract.live_milestones:
        return
    since = max((m.created_at for m in contract.live_milestones), default=contract.created_at)
    if contract.client_agreed_at is None:
        yield WaitingItem(WaitingKind.AGREE, contract, facts.client, since=since)
    if contract.provider_agreed_by is None:
        yield WaitingItem(WaitingKind.AGREE, contract, facts.provider, since=since)


def _answer_requests(facts: ContractFacts) -> Iterable[WaitingItem]:
    for request in facts.pending_requests:
        yield WaitingItem(
            WaitingKind.ANSWER_REQUEST,
            facts.contract,
            facts.deciders_of(request),
            request=request,
            since=request.proposed_at,
        )


def _review(facts: ContractFacts) -> Iterable[WaitingItem]:
    for milestone in facts.contract.milestones:
        if milestone.status == MilestoneStatus.SUBMITTED:
            yield WaitingItem(
                WaitingKind.REVIEW,
                facts.contract,
                facts.client,
                milestone=milestone,
                due_at=milestone.auto_release_at,
                since=milestone.submitted_at,
            )


def _work(facts: ContractFacts) -> Iterable[WaitingItem]:
    if facts.contract.status != ContractStatus.ACTIVE:
        return
    for milestone in facts.contract.milestones:
        if milestone.status == MilestoneStatus.FUNDED:
            yield WaitingItem(
                WaitingKind.WORK,
                facts.contract,
                facts.workers,
                milestone=milestone,
                since=milestone.changes_requested_at or milestone.funded_at,
            )


def _fund(facts: ContractFacts) -> Iterable[WaitingItem]:
    contract = facts.contract
    if contract.status != ContractStatus.ACTIVE or contract.in_progress is not None:
        return
    upcoming = contract.next_to_fund
    if upcoming is None:
        return
    released = [m.released_at for m in contract.milestones if m.released_at is not None]
    yield WaitingItem(
        WaitingKind.FUND,
        contract,
        facts.client,
        milestone=upcoming,
        since=max(released, default=contract.activated_at),
    )


def _ending_notice(facts: ContractFacts) -> Iterable[WaitingItem]:
    contract = facts.contract
    if contract.status == ContractStatus.ENDING and contract.ending_deadline_at is not None:
        yield WaitingItem(
            WaitingKind.ENDING_NOTICE,
            contract,
            facts.provider,
            milestone=contract.in_progress,
            due_at=contract.ending_deadline_at,
            since=contract.ending_started_at,
        )


def _extension_ask(facts: ContractFacts) -> Iterable[WaitingItem]:
    for milestone in facts.contract.milestones:
        if milestone.extension_waiting is not None:
            yield WaitingItem(
                WaitingKind.EXTENSION_ASK,
                facts.contract,
                facts.provider,
                milestone=milestone,
                due_at=milestone.auto_release_at,
                since=milestone.extension_asked_at,
            )


def _split_to_agree(facts: ContractFacts) -> Iterable[WaitingItem]:
    for dispute in facts.open_disputes:
        if dispute.proposed_by is None or dispute.proposed_to_provider_minor is None:
            continue
        proposer_is_client = facts.contract.role_of(dispute.proposed_by) == Role.CLIENT
        milestone = next(
            (m for m in facts.contract.milestones if m.id == dispute.milestone_id), None
        )
        yield WaitingItem(
            WaitingKind.SPLIT_TO_AGREE,
            facts.contract,
            facts.provider if proposer_is_client else facts.client,
            milestone=milestone,
            since=dispute.proposed_at,
            dispute=dispute,
        )


# Every kind of waiting item, one finder each, in the order a contract lists them.
FINDERS: list[Finder] = [
    _add_milestones,
    _agree,
    _ending_notice,
    _split_to_agree,
    _answer_requests,
    _review,
    _extension_ask,
    _fund,
    _work,
]


def items_of(facts: ContractFacts) -> list[WaitingItem]:
    """Everything anyone owes on one contract, in `FINDERS` order."""
    return [item for finder in FINDERS for item in finder(facts)]


def waiting_on(
    contract: Contract,
    pending_requests: Sequence[ChangeRequest],
    *,
    now: datetime,
    open_disputes: Sequence[Dispute] = (),
) -> list[WaitingItem]:
    """Everything anyone owes on one contract loaded with its parties and milestones
    (nothing on a closed one)."""
    if contract.status == ContractStatus.CLOSED:
        return []
    return items_of(
        ContractFacts(
            contract=contract,
            pending_requests=pending_requests,
            now=now,
            open_disputes=open_disputes,
        )
    )


def waiting_in(
    session: Session, contracts: Sequence[Contract], *, now: datetime
) -> dict[int, list[WaitingItem]]:
    """`waiting_on` of several loaded contracts (two queries in all), by id."""
    ids = [c.id for c in contracts]
    pending, disputes = pending_requests_of(session, ids), open_disputes_of(session, ids)
    return {
        c.id: waiting_on(c, pending[c.id], now=now, open_disputes=disputes[c.id]) for c in contracts
    }


def waiting_for(session: Session, user_id: str, *, now: datetime) -> list[WaitingItem]:
    """Every item `user_id` owes across their open contracts: those with a deadline
    first (soonest first), then the rest, oldest waiting first."""
    return waiting_for_users(session, [user_id], now=now)[user_id]


def waiting_for_users(
    session: Session, user_ids: Sequence[str], *, now: datetime
) -> dict[str, list[WaitingItem]]:
    """`waiting_for` of several people at once (a digest run): four queries in all."""
    users = list(dict.fromkeys(user_ids))
    found: dict[str, list[WaitingItem]] = {user: [] for user in users}
    if not users:
        return found
    contracts = list(
        session.scalars(
            select(Contract)
            .where(
                Contract.id.in_(select(Party.contract_id).where(Party.user_id.in_(users))),
                Contract.status != ContractStatus.CLOSED,
            )
            .options(joinedload(Contract.parties), selectinload(Contract.milestones))
            .order_by(Contract.id)
        ).unique()
    )
    by_id = waiting_in(session, contracts, now=now)
    wanted = set(users)
    for contract in contracts:
        for item in by_id[contract.id]:
            for user in dict.fromkeys(item.owed_by):
                if user in wanted:
                    found[user].append(item)
    for items in found.values():
        items.sort(key=_urgency)
    return found


_FAR = datetime.max.replace(tzinfo=UTC)


def _urgency(item: WaitingItem) -> tuple[bool, datetime, datetime, int]:
    far = _FAR
    return (
        item.due_at is None,
        item.due_at or far,
        item.since or far,
        item.contract.id,
    )


def pending_requests_of(
    session: Session, contract_ids: Sequence[int]
) -> dict[int, list[ChangeRequest]]:
    """The pending change requests of several contracts, with their changes, by contract."""
    found: dict[int, list[ChangeRequest]] = defaultdict(list)
    if not contract_ids:
        return found
    for request in session.scalars(
        select(ChangeRequest)
        .where(
            ChangeRequest.contract_id.in_(set(contract_ids)),
            ChangeRequest.status == RequestStatus.PENDING,
        )
        .options(joinedload(ChangeRequest.changes))
        .order_by(ChangeRequest.contract_id, ChangeRequest.number)
    ).unique():
        found[request.contract_id].append(request)
    return found


def open_disputes_of(session: Session, contract_ids: Sequence[int]) -> dict[int, list[Dispute]]:
    """The open disputes of several contracts, by contract."""
    found: dict[int, list[Dispute]] = defaultdict(list)
    if not contract_ids:
        return found
    for dispute in session.scalars(
        select(Dispute)
        .where(Dispute.contract_id.in_(set(contract_ids)), Dispute.settled_at.is_(None))
        .order_by(Dispute.contract_id, Dispute.id)
    ):
        found[dispute.contract_id].append(dispute)
    return found
