"""Read models: a contract as a card shows it, and what happens next and who owes it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from domain import queries, rules
from domain.ledger import INFLOWS, Escrow
from domain.model import (
    ChangeRequest,
    Contract,
    ContractStatus,
    LedgerEntry,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    RequestStatus,
    Role,
)


class Next(StrEnum):
    ADD_MILESTONES = "add_milestones"
    AGREE = "agree"
    ANSWER_REQUEST = "answer_request"
    FUND = "fund"
    WORK = "work"
    REVIEW = "review"
    COMPLETE = "complete"
    CLOSED = "closed"
    ANSWER_ENDING = "answer_ending"  # the provider side accepts the refund or disputes it
    SETTLE_DISPUTE = "settle_dispute"  # either side proposes a split, the other agrees


@dataclass(frozen=True)
class NextAction:
    kind: Next
    owed_by: tuple[str, ...]  # user ids who can act
    milestone: Milestone | None = None
    request: ChangeRequest | None = None
    due_at: datetime | None = None  # automatic release, for REVIEW; refund, ANSWER_ENDING


@dataclass(frozen=True)
class ContractSnapshot:
    contract: Contract
    pending_requests: list[ChangeRequest]
    escrow: Escrow
    next_action: NextAction

    @property
    def client_agreed(self) -> bool:
        return self.contract.client_agreed_at is not None

    @property
    def provider_agreed(self) -> bool:
        return self.contract.provider_agreed_by is not None


def next_action(contract: Contract, pending: list[ChangeRequest]) -> NextAction:
    client = (contract.client_id,)
    provider = tuple(contract.provider_ids)
    if contract.status == ContractStatus.CLOSED:
        return NextAction(Next.CLOSED, ())
    if contract.status == ContractStatus.NEGOTIATING:
        if not contract.live_milestones:
            return NextAction(Next.ADD_MILESTONES, client + provider)
        owed: tuple[str, ...] = ()
        if contract.client_agreed_at is None:
            owed += client
        if contract.provider_agreed_by is None:
            owed += provider
        return NextAction(Next.AGREE, owed)
    current = contract.in_progress
    if current is not None and current.status == MilestoneStatus.DISPUTED:
        return NextAction(Next.SETTLE_DISPUTE, client + provider, milestone=current)
    if contract.status == ContractStatus.ENDING:
        return NextAction(
            Next.ANSWER_ENDING, provider, milestone=current, due_at=contract.ending_deadline_at
        )
    if current is not None and current.status == MilestoneStatus.SUBMITTED:
        return NextAction(Next.REVIEW, client, milestone=current, due_at=current.auto_release_at)
    if pending:  # answered by the side that did not propose it (a counter-offer: the provider)
        answering = tuple(rules.answering_ids(contract, pending[0].proposed_by))
        return NextAction(Next.ANSWER_REQUEST, answering, request=pending[0])
    if current is not None:
        workers = tuple(contract.ids_with_role(Role.FREELANCER, Role.MANAGER, Role.MEMBER))
        return NextAction(Next.WORK, workers, milestone=current)
    upcoming = contract.next_to_fund
    if upcoming is not None:
        return NextAction(Next.FUND, client, milestone=upcoming)
    return NextAction(Next.COMPLETE, ())


def snapshots(session: Session, contracts: Sequence[Contract]) -> list[ContractSnapshot]:
    """Snapshots of contracts loaded with their parties and milestones (App Home's list,
    a batch of cards), in two queries for all of them instead of four per contract."""
    ids = [c.id for c in contracts]
    if not ids:
        return []
    pending: dict[int, list[ChangeRequest]] = defaultdict(list)
    for request in session.scalars(
        select(ChangeRequest)
        .where(ChangeRequest.contract_id.in_(ids), ChangeRequest.status == RequestStatus.PENDING)
        .options(joinedload(ChangeRequest.changes))
        .order_by(ChangeRequest.contract_id, ChangeRequest.number)
    ).unique():
        pending[request.contract_id].append(request)
    escrows = escrows_of(session, ids)
    return [
        ContractSnapshot(
            contract=contract,
            pending_requests=pending[contract.id],
            escrow=escrows[contract.id],
            next_action=next_action(contract, pending[contract.id]),
        )
        for contract in contracts
    ]


def snapshot(session: Session, contract_id: int) -> ContractSnapshot:
    contract = queries.load_contract(session, contract_id)
    pending = queries.pending_requests(session, contract_id)
    return ContractSnapshot(
        contract=contract,
        pending_requests=pending,
        escrow=escrows_of(session, [contract_id])[contract_id],
        next_action=next_action(contract, pending),
    )


def escrows_of(session: Session, contract_ids: Sequence[int]) -> dict[int, Escrow]:
    """`ledger.escrow_of` of several contracts, summed by the database in one query
    (every id gets an `Escrow`, empty when its contract has no entries)."""
    sums: dict[int, dict[LedgerKind, int]] = {i: defaultdict(int) for i in contract_ids}
    for contract_id, kind, total in session.execute(
        select(LedgerEntry.contract_id, LedgerEntry.kind, func.sum(LedgerEntry.amount_minor))
        .where(LedgerEntry.contract_id.in_(set(contract_ids)))
        .group_by(LedgerEntry.contract_id, LedgerEntry.kind)
    ):
        sums[contract_id][kind] += int(total)
    return {
        contract_id: Escrow(
            funded_minor=sum(by_kind[k] for k in INFLOWS),
            released_minor=by_kind[LedgerKind.RELEASE],
            refunded_minor=by_kind[LedgerKind.REFUND],
            bonus_minor=by_kind[LedgerKind.BONUS],
        )
        for contract_id, by_kind in sums.items()
    }
