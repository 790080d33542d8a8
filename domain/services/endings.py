"""Ending a contract with consent.

Either side may end. With nothing in escrow the contract closes at once. When the
provider side ends, what is in escrow goes back to the client at once (the provider
gives it up). When the client ends while a funded milestone holds escrow, the contract
becomes `ending`: the provider side has `Policy.end_window` to accept the refund or to
dispute it (domain/services/disputes.py); if they do neither, the refund happens by
itself when the window ends (`refund_due`, swept like the automatic release) and the
contract closes. The client still cannot end while work is submitted.

`preview_end` says what ending would do, for the confirmation a typed `end` answers
with; only the confirmation's button calls `end_contract`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session, selectinload

from domain import ledger, queries, reminders
from domain.db import write_transaction
from domain.errors import InvalidTransition, WrongPhase
from domain.model import (
    SYSTEM_ACTOR,
    ChangeRequest,
    Contract,
    ContractStatus,
    EventKind,
    IntentKind,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    RequestStatus,
    Role,
)
from domain.payments import REFUNDED_NOTE, money_note
from domain.policy import DEFAULT_POLICY, Policy
from domain.rules import Act, RequestAction, require
from domain.services._locking import (
    lock_contract,
    pending_requests,
    pending_requests_of,
    require_open,
)
from domain.services._steps import close_request
from domain.services._validation import money
from domain.services._writes import Tx, Writes
from domain.services.inputs import Outcome
from domain.text import Command, Person, Said, said
from domain.waiting import WaitingKind


class EndHow(StrEnum):
    """What ending does, by who ends and what escrow holds."""

    CLOSE = "close"  # nothing in escrow: closed at once
    REFUND = "refund"  # the provider side ends: escrow back to the client at once
    WINDOW = "window"  # the client ends with escrow held: the provider side's window


@dataclass(frozen=True)
class EndPlan:
    how: EndHow
    held_minor: int = 0
    milestone_number: int | None = None


@dataclass(frozen=True)
class EndPreview:
    """What `end` would do now, for the confirmation (nothing has changed yet)."""

    contract_id: int
    title: str
    currency: str
    how: EndHow
    held_minor: int
    milestone_number: int | None
    window_ends_at: datetime | None
    client_id: str
    provider_ids: tuple[str, ...]


def _plan(contract: Contract, role: Role, held: Mapping[int, int]) -> EndPlan:
    """What ending by `role` does, or the refusal (`held`: escrow per active milestone)."""
    disputed = contract.disputed
    if disputed is not None:
        raise InvalidTransition(
            said(
                f"Milestone {disputed.number} is disputed: its escrow stays frozen until the "
                "dispute is settled, so the contract can't end yet. Either side proposes a "
                "split with ",
                Command(f"settle {disputed.number} <amount-to-provider>"),
                ".",
            )
        )
    current = contract.in_progress
    if role == Role.CLIENT and current and current.status == MilestoneStatus.SUBMITTED:
        raise InvalidTransition(
            f"Milestone {current.number} has submitted work waiting for your review: "
            "approve it or request changes before ending the contract."
        )
    total = sum(held.values())
    number = current.number if current is not None else None
    if total == 0:
        return EndPlan(EndHow.CLOSE)
    if role == Role.CLIENT:
        return EndPlan(EndHow.WINDOW, total, number)
    return EndPlan(EndHow.REFUND, total, number)


def _held(session: Session, contract: Contract) -> dict[int, int]:
    active = [m for m in contract.milestones if m.is_active]
    found = ledger.held_for_milestones(session, [m.id for m in active])
    return {m.id: found.get(m.id, 0) for m in active}


def preview_end(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> EndPreview:
    """What `end` by `actor_id` would do; the same refusals as `end_contract`."""
    contract = queries.load_contract(session, contract_id)
    role = require(contract, actor_id, Act.END)
    require_open(contract)
    if contract.status == ContractStatus.ENDING:
        if role == Role.CLIENT:
            raise WrongPhase(_already_ending(contract))
        plan = _plan(contract, Role.FREELANCER, _held(session, contract))  # = accept the refund
    else:
        plan = _plan(contract, role, _held(session, contract))
    return EndPreview(
        contract_id=contract.id,
        title=contract.title,
        currency=contract.currency,
        how=plan.how,
        held_minor=plan.held_minor,
        milestone_number=plan.milestone_number,
        window_ends_at=now + policy.end_window if plan.how == EndHow.WINDOW else None,
        client_id=contract.client_id,
        provider_ids=tuple(contract.provider_ids),
    )


def _already_ending(contract: Contract) -> Said:
    until = contract.ending_deadline_at
    if until is None:
        return said(f"Contract {contract.id} is already ending; its refund is disputed.")
    return said(
        f"Contract {contract.id} is already ending: the provider side has until "
        f"{until:%Y-%m-%d %H:%M} UTC to accept the refund or dispute it.",
    )


def end_contract(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """Either side ends the contract (the confirmation's button): closed at once with
    nothing in escrow or when the provider side ends (escrow back to the client); when
    the client ends with escrow held, the provider side's window opens."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        role = require(contract, actor_id, Act.END)
        if contract.status == ContractStatus.CLOSED:
            return tx.outcome(f"Contract {contract.id} has already ended.", already_done=True)
        if contract.status == ContractStatus.ENDING:
            if role == Role.CLIENT:
                return tx.outcome(_already_ending(contract), already_done=True)
            # The provider side ending now gives the refund up: it accepts it.
            return _accept_refund(tx, actor_id, policy)
        plan = _plan(contract, role, _held(session, contract))
        if plan.how != EndHow.WINDOW:
            refunded = close_contract(tx, actor=actor_id, closed_by=actor_id, how="ended")
            note = (
                f" {money(contract, refunded)} refunded to the client. "
                f"{money_note(REFUNDED_NOTE, policy)}"
                if refunded
                else ""
            )
            return tx.outcome(f"Contract {contract.id} ended.{note}")
        pending = pending_requests(session, contract)
        contract.begin_ending(by=actor_id, at=now, window=policy.end_window)
        for request in pending:
            close_request(
                tx, request, RequestAction.CANCEL, by=None, reason="the contract is ending"
            )
        reminders.on_contract_ended(tx.reminders, contract)  # nudges stop; the window runs
        held_by = contract.in_progress
        if held_by is not None:  # the provider side now owes an answer (domain.notify)
            for provider in contract.provider_ids:
                tx.reminders.awaits(
                    contract, provider, WaitingKind.ENDING_NOTICE, subject_id=held_by.id
                )
        deadline = contract.ending_deadline_at
        assert deadline is not None
        tx.event(
            EventKind.CONTRACT_ENDING,
            actor_id,
            milestone_number=plan.milestone_number,
            held_minor=plan.held_minor,
            window_ends_at=deadline,
            announce=False,  # the ending notice is the announcement
        )
        tx.intent(IntentKind.ENDING_CARD, subject_id=contract.id)
        tx.changed()
        return tx.outcome(
            said(
                f"Contract {contract.id} is ending. Milestone {plan.milestone_number} holds "
                f"{money(contract, plan.held_minor)} in escrow: the provider side has until "
                f"{deadline:%Y-%m-%d %H:%M} UTC to accept the refund or dispute it; if they "
                "do neither, it is refunded to you then and the contract closes."
            )
        )


def accept_refund(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The provider side accepts the end-refund: escrow goes back to the client and the
    contract closes."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.ACCEPT_REFUND)
        if contract.status == ContractStatus.CLOSED and contract.ending_started_at is not None:
            return tx.outcome(
                f"Contract {contract.id} is already closed; its refund was made.",
                already_done=True,
            )
        require_open(contract)
        if contract.status != ContractStatus.ENDING:
            raise InvalidTransition(
                f"Contract {contract.id} is not ending, so there is no refund to accept."
            )
        return _accept_refund(tx, actor_id, policy)


def _accept_refund(tx: Tx, actor_id: str, policy: Policy) -> Outcome:
    contract = tx.contract
    disputed = contract.disputed
    if disputed is not None:
        raise InvalidTransition(
            said(
                f"The refund of milestone {disputed.number} is disputed: its escrow stays "
                "frozen until a split is agreed (",
                Command(f"settle {disputed.number} <amount-to-provider>"),
                ") or an operator decides.",
            )
        )
    refunded = close_contract(
        tx, actor=actor_id, closed_by=contract.ending_by or actor_id, how="refund_accepted"
    )
    return tx.outcome(
        said(
            f"You accepted the refund: {money(contract, refunded)} goes back to ",
            Person(contract.client_id),
            f". Contract {contract.id} is closed. {money_note(REFUNDED_NOTE, policy)}",
        )
    )


def close_contract(
    tx: Tx,
    *,
    actor: str,
    closed_by: str,
    how: str,
    pending: Sequence[ChangeRequest] | None = None,
    held: Mapping[int, int] | None = None,
    announce: bool = True,
) -> int:
    """Close the contract: escrow held for its active milestones goes back to the client,
    pending requests are cancelled, every reminder stops. What was refunded. `pending`
    and `held`: read already by the caller (a batch reads them for many contracts)."""
    contract, session, now = tx.contract, tx.session, tx.now
    if pending is None:
        pending = pending_requests(session, contract)
    if held is None:
        held = _held(session, contract)
    was_ending = contract.status == ContractStatus.ENDING
    contract.end(by=closed_by, at=now)
    refunded = 0
    for milestone in [m for m in contract.milestones if m.is_active]:
        amount = held.get(milestone.id, 0)
        had_work_card = milestone.status == MilestoneStatus.SUBMITTED
        milestone.refund(at=now)
        if amount:
            ledger.record(
                session,
                contract_id=contract.id,
                milestone_id=milestone.id,
                kind=LedgerKind.REFUND,
                amount_minor=amount,
                actor=actor,
                at=now,
                key=f"refund:{milestone.id}",
                held_minor=amount,
                flush=False,
            )
            refunded += amount
        if had_work_card:
            tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
    for request in pending:
        if request.status == RequestStatus.PENDING:
            close_request(tx, request, RequestAction.CANCEL, by=None, reason="the contract ended")
    reminders.on_contract_ended(tx.reminders, contract)
    tx.event(EventKind.CONTRACT_ENDED, actor, refunded_minor=refunded, how=how, announce=announce)
    if was_ending:
        tx.intent(IntentKind.ENDING_CARD, subject_id=contract.id)
    tx.changed()
    return refunded


# --- the window runs out ---------------------------------------------------------------


def refund_at_window_end(session: Session, *, contract_id: int, now: datetime) -> Outcome:
    """Refund an ending contract whose window ran out (a timer for one contract). Safe to
    call any number of times from any number of processes."""
    [outcome] = _refund_due(session, Contract.id == contract_id, now=now, limit=1, one=contract_id)
    return outcome


def refund_due(session: Session, *, now: datetime, limit: int = 50) -> list[Outcome]:
    """Refund up to `limit` ending contracts whose window ran out, in one transaction;
    what was refunded (none: nothing more is due, or other sweepers hold them).

    Their rows are claimed `FOR UPDATE SKIP LOCKED` (several sweepers split the work;
    a contract a click is changing is left to a later sweep), re-checked under the lock,
    and closed through the step an accepted refund takes."""
    return _refund_due(session, _DUE(now), now=now, limit=limit)


def _DUE(now: datetime) -> ColumnElement[bool]:  # noqa: N802 - reads as a name
    return and_(Contract.status == ContractStatus.ENDING, Contract.ending_deadline_at <= now)


def _refund_due(
    session: Session,
    which: ColumnElement[bool],
    *,
    now: datetime,
    limit: int,
    one: int | None = None,
) -> list[Outcome]:
    with write_transaction(session):
        claimed = list(
            session.scalars(
                select(Contract.id)
                .where(which)
                .order_by(Contract.ending_deadline_at, Contract.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not claimed:
            if one is None:
                return []
            queries.load_contract(session, one)  # NotFound if there is none
            return [Outcome(one, said("The contract is busy; will retry."), already_done=True)]
        contracts = list(
            session.scalars(
                select(Contract)
                .where(Contract.id.in_(claimed))
                .options(selectinload(Contract.parties), selectinload(Contract.milestones))
                .order_by(Contract.id)
                .execution_options(populate_existing=True)
            )
        )
        due = [
            c
            for c in contracts
            if c.status == ContractStatus.ENDING
            and c.ending_deadline_at is not None
            and c.ending_deadline_at <= now
            and c.disputed is None
        ]
        pending = pending_requests_of(session, [c.id for c in due])
        active = [m.id for c in due for m in c.milestones if m.is_active]
        held = ledger.held_for_milestones(session, active)
        writes = Writes(session, now)
        refunded: list[tuple[Contract, int]] = []
        for contract in due:
            tx = Tx(session, contract, now, writes)
            amount = close_contract(
                tx,
                actor=SYSTEM_ACTOR,
                closed_by=contract.ending_by or SYSTEM_ACTOR,
                how="window_ran_out",
                pending=pending.get(contract.id, []),
                held=held,
            )
            refunded.append((contract, amount))
        written = writes.write()
        outcomes = [
            Outcome(
                contract.id,
                said(
                    f"Contract {contract.id}'s window ran out: {money(contract, amount)} "
                    "refunded to the client; it is closed."
                ),
                outbox_ids=tuple(written.get(contract.id, ())),
            )
            for contract, amount in refunded
        ]
        if one is not None and not refunded:
            ending = any(c.status == ContractStatus.ENDING for c in contracts)
            outcomes = [
                Outcome(
                    one,
                    said(
                        f"Contract {one} is not due for a refund."
                        if ending
                        else f"Contract {one} is not ending, so nothing is refunded."
                    ),
                    already_done=True,
                )
            ]
        return outcomes


def ending_milestone(contract: Contract) -> Milestone | None:
    """The milestone whose escrow an ending contract holds (funded, or disputed)."""
    return contract.in_progress
