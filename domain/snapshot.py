"""Read models: a contract as a card shows it, and what happens next and who owes it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String, cast, func, null, select, union_all
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.sql import Executable

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
    PaymentState,
    ProviderPayment,
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
    # `PAYMENTS=stripe`, by milestone id: the state of its fund payment through the
    # provider, and the state of a top-up the client still owes (pending or failed).
    payments: Mapping[int, PaymentState] = field(default_factory=dict)
    top_ups_owed: Mapping[int, PaymentState] = field(default_factory=dict)

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
    escrows, paid = money_of(session, contracts)
    return [
        ContractSnapshot(
            contract=contract,
            pending_requests=pending[contract.id],
            escrow=escrows[contract.id],
            next_action=next_action(contract, pending[contract.id]),
            payments=paid[contract.id][0],
            top_ups_owed=paid[contract.id][1],
        )
        for contract in contracts
    ]


def snapshot(session: Session, contract_id: int) -> ContractSnapshot:
    contract = queries.load_contract(session, contract_id)
    pending = queries.pending_requests(session, contract_id)
    escrows, paid = money_of(session, [contract])
    fund_payments, top_ups_owed = paid[contract_id]
    return ContractSnapshot(
        contract=contract,
        pending_requests=pending,
        escrow=escrows[contract_id],
        next_action=next_action(contract, pending),
        payments=fund_payments,
        top_ups_owed=top_ups_owed,
    )


_OPEN = (MilestoneStatus.PENDING, MilestoneStatus.FUNDED, MilestoneStatus.SUBMITTED)
_OWED = (PaymentState.PENDING, PaymentState.FAILED)
# By milestone id: the state of its fund payment through the provider, and of a top-up
# the client still owes.
Payments = tuple[dict[int, PaymentState], dict[int, PaymentState]]


def money_of(
    session: Session, contracts: Sequence[Contract]
) -> tuple[dict[int, Escrow], dict[int, Payments]]:
    """Of contracts loaded with their milestones, by contract id: the escrow
    (`ledger.escrow_of`, summed by the database; empty for a contract without entries)
    and the payments through the provider of the open milestones — in one statement."""
    contract_ids = {c.id for c in contracts}
    sums: dict[int, dict[LedgerKind, int]] = {i: defaultdict(int) for i in contract_ids}
    paid: dict[int, Payments] = {i: ({}, {}) for i in contract_ids}
    sums_part = (
        select(
            LedgerEntry.contract_id,
            LedgerEntry.kind,
            func.sum(LedgerEntry.amount_minor).label("amount_minor"),
            cast(null(), Integer).label("milestone_id"),
            cast(null(), String).label("state"),
        )
        .where(LedgerEntry.contract_id.in_(contract_ids))
        .group_by(LedgerEntry.contract_id, LedgerEntry.kind)
    )
    open_ids = [
        m.id
        for c in contracts
        if c.status != ContractStatus.CLOSED
        for m in c.milestones
        if m.status in _OPEN
    ]
    statement: Executable = sums_part
    if open_ids:  # else no milestone can owe a payment: no second part at all
        statement = union_all(
            sums_part,
            select(
                ProviderPayment.contract_id,
                ProviderPayment.kind,
                ProviderPayment.amount_minor,
                ProviderPayment.milestone_id,
                ProviderPayment.state,
            ).where(ProviderPayment.milestone_id.in_(open_ids)),
        )
    for contract_id, kind, amount, milestone_id, state in session.execute(statement):
        if milestone_id is None:
            sums[contract_id][LedgerKind(kind)] += int(amount)
            continue
        fund, top_up = paid[contract_id]
        if LedgerKind(kind) == LedgerKind.FUND:
            fund[milestone_id] = PaymentState(state)
        elif PaymentState(state) in _OWED and top_up.get(milestone_id) != PaymentState.PENDING:
            top_up[milestone_id] = PaymentState(state)
    escrows = {
        contract_id: Escrow(
            funded_minor=sum(by_kind[k] for k in INFLOWS),
            released_minor=by_kind[LedgerKind.RELEASE],
            refunded_minor=by_kind[LedgerKind.REFUND],
            bonus_minor=by_kind[LedgerKind.BONUS],
        )
        for contract_id, by_kind in sums.items()
    }
    return escrows, paid
