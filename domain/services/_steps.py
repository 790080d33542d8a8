"""Steps several use cases share: applying a change, closing a request, funding,
releasing, freezing a milestone under a dispute."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from domain import ledger, reminders
from domain.disputes import side_of
from domain.errors import DomainError
from domain.model import (
    SYSTEM_ACTOR,
    ChangeKind,
    ChangeRequest,
    ContractStatus,
    Dispute,
    EventKind,
    IntentKind,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    RequestStatus,
)
from domain.policy import Policy
from domain.rules import RequestAction
from domain.services._locking import milestone_numbered, pending_requests
from domain.services._validation import ValidChange, check_applicable
from domain.services._writes import Tx


def apply_change(
    tx: Tx,
    change: ValidChange,
    *,
    actor: str,
    request: ChangeRequest | None,
    message: str,
    accepted_by: str | None = None,
) -> Milestone:
    """Apply one validated, applicable change; write its history (and top-up). From a
    request, `actor` is its proposer and `accepted_by` the client who accepted it."""
    contract = tx.contract
    request_number = request.number if request else None
    if change.kind == ChangeKind.ADD:
        number = contract.next_milestone_number
        contract.next_milestone_number += 1
        milestone = Milestone(
            contract_id=contract.id,
            number=number,
            title=change.fields["title"],
            description=change.fields["description"],
            amount_minor=change.fields["amount_minor"],
            due_date=date.fromisoformat(change.fields["due_date"]),
            status=MilestoneStatus.PENDING,
            created_at=tx.now,
            submission_count=0,
            released_automatically=False,
        )
        tx.session.add(milestone)
        contract.milestones.append(milestone)
        tx.event(
            EventKind.MILESTONE_ADDED,
            actor,
            milestone_number=number,
            request_number=request_number,
            announce=request is None,
            after=milestone.fields(),
            message=message,
        )
        return milestone
    assert change.number is not None
    milestone = milestone_numbered(contract, change.number)
    before = milestone.fields()
    if change.kind == ChangeKind.DELETE:
        milestone.delete(at=tx.now)
        tx.event(
            EventKind.MILESTONE_DELETED,
            actor,
            milestone_number=milestone.number,
            request_number=request_number,
            announce=request is None,
            before=before,
            message=message,
        )
        return milestone
    old_amount = milestone.amount_minor
    for key, value in change.fields.items():
        setattr(milestone, key, date.fromisoformat(value) if key == "due_date" else value)
    after = milestone.fields()
    if "due_date" in change.fields:
        reminders.on_due_date_changed(tx.reminders, contract, milestone, now=tx.now)
    tx.event(
        EventKind.MILESTONE_EDITED,
        actor,
        milestone_number=milestone.number,
        request_number=request_number,
        announce=request is None,
        before={k: before[k] for k in change.fields},
        after={k: after[k] for k in change.fields},
        message=message,
    )
    if milestone.is_active and milestone.amount_minor > old_amount:
        # An accepted increase of a funded milestone tops escrow up at once.
        assert request is not None and accepted_by is not None
        difference = milestone.amount_minor - old_amount
        # The client pays the difference, whoever accepted (the provider side accepts a
        # client's counter-offer that raises the amount).
        ledger.record(
            tx.session,
            contract_id=contract.id,
            milestone_id=milestone.id,
            kind=LedgerKind.TOP_UP,
            amount_minor=difference,
            actor=contract.client_id,
            at=tx.now,
            key=f"top_up:{request.id}:{milestone.id}",
            request_id=request.id,
        )
        tx.event(  # the acceptance's own announcement says it: one click, one announcement
            EventKind.ESCROW_TOPPED_UP,
            accepted_by,
            milestone_number=milestone.number,
            request_number=request.number,
            amount_minor=difference,
            announce=False,
        )
    return milestone


def cancel_inapplicable(tx: Tx, pending: Sequence[ChangeRequest], *, because: str) -> None:
    """Requests that can no longer apply become `cancelled`, with the reason."""
    for request in pending:
        if request.status != RequestStatus.PENDING:
            continue
        reason: str | None = None
        added = 0
        for change in request.changes:
            try:
                check_applicable(
                    tx.contract,
                    ValidChange(change.kind, change.milestone_number, dict(change.fields)),
                    direct=False,
                    milestones_added=added,
                )
            except DomainError as refusal:
                reason = refusal.message
                break
            if change.kind == ChangeKind.ADD:
                added += 1
        if reason is not None:
            close_request(tx, request, RequestAction.CANCEL, by=None, reason=f"{because}: {reason}")


_CLOSED_AS = {
    RequestAction.ACCEPT: EventKind.REQUEST_ACCEPTED,
    RequestAction.DECLINE: EventKind.REQUEST_DECLINED,
    RequestAction.WITHDRAW: EventKind.REQUEST_WITHDRAWN,
    RequestAction.CANCEL: EventKind.REQUEST_CANCELLED,
    RequestAction.COUNTER: EventKind.REQUEST_COUNTERED,
}


def close_request(
    tx: Tx,
    request: ChangeRequest,
    action: RequestAction,
    *,
    by: str | None,
    reason: str | None = None,
    **data: Any,
) -> None:
    """A pending request decided (accepted, declined, withdrawn `by` someone) or
    cancelled (`by` nobody, with the `reason` it can no longer apply): its state, its
    reminders stop, its history, and its card shows the outcome."""
    request.decide(action, by=by, at=tx.now, reason=reason)
    reminders.on_request_closed(tx.reminders, request)
    if reason is not None:
        data["reason"] = reason
    tx.event(_CLOSED_AS[action], by or SYSTEM_ACTOR, request_number=request.number, **data)
    tx.intent(IntentKind.REQUEST_CARD, subject_id=request.id)


def release(
    tx: Tx,
    milestone: Milestone,
    *,
    actor: str,
    automatic: bool,
    policy: Policy,
    pending: Sequence[ChangeRequest] | None = None,
    held: int | None = None,
) -> int:
    """Release what is held for `milestone` to the provider. `pending` and `held`: the
    contract's pending requests and the escrow held for the milestone, when the caller
    read them already (for a whole batch at once)."""
    contract = tx.contract
    # Read before anything changes, so no read has to flush half-made changes first.
    if pending is None:
        pending = pending_requests(tx.session, contract)
    if held is None:
        held = ledger.held_for_milestone(tx.session, milestone.id)
    milestone.release(by=actor, at=tx.now, automatic=automatic)
    ledger.record(
        tx.session,
        contract_id=contract.id,
        milestone_id=milestone.id,
        kind=LedgerKind.RELEASE,
        amount_minor=held,
        actor=actor,
        at=tx.now,
        key=f"release:{milestone.id}",
        held_minor=held,
        flush=False,  # with the rest of the transaction (the unique key still holds)
    )
    tx.event(
        EventKind.MILESTONE_RELEASED,
        actor,
        milestone_number=milestone.number,
        amount_minor=held,
        automatic=automatic,
    )
    tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
    reminders.on_milestone_released(tx.reminders, contract, milestone, now=tx.now, policy=policy)
    cancel_inapplicable(tx, pending, because=f"milestone {milestone.number} was released")
    tx.changed()
    return held


def fund_step(tx: Tx, milestone: Milestone, *, actor_id: str, policy: Policy) -> None:
    """`milestone` is funded: its escrow recorded, the provider side told, requests it
    makes moot cancelled (a ledger-mode fund, or a provider's confirmed payment)."""
    session, contract, now = tx.session, tx.contract, tx.now
    pending = pending_requests(session, contract)
    milestone.fund(by=actor_id, at=now)
    reminders.on_milestone_funded(tx.reminders, contract, milestone, now=now)
    ledger.record(
        session,
        contract_id=contract.id,
        milestone_id=milestone.id,
        kind=LedgerKind.FUND,
        amount_minor=milestone.amount_minor,
        actor=actor_id,
        at=now,
        key=f"fund:{milestone.id}",
    )
    tx.event(
        EventKind.MILESTONE_FUNDED,
        actor_id,
        milestone_number=milestone.number,
        amount_minor=milestone.amount_minor,
    )
    cancel_inapplicable(tx, pending, because=f"milestone {milestone.number} was funded")


def freeze_under_dispute(tx: Tx, target: Milestone, *, by: str, reason: str, policy: Policy) -> int:
    """Freeze `target`'s escrow under a new dispute opened by `by` (a party, or the
    system when the payments provider reports the money reversed); what it holds."""
    session, contract, now = tx.session, tx.contract, tx.now
    was = target.status
    held = ledger.held_for_milestone(session, target.id)
    pending = pending_requests(session, contract)
    target.dispute()
    if contract.status == ContractStatus.ENDING:
        contract.pause_ending()
    dispute = Dispute(
        contract_id=contract.id,
        milestone_id=target.id,
        opened_by=by,
        opened_at=now,
        reason=reason,
        held_minor=held,
        proposal_number=0,
    )
    session.add(dispute)
    session.flush()
    reminders.on_dispute_opened(tx.reminders, contract, target, now=now, policy=policy)
    tx.event(
        EventKind.MILESTONE_DISPUTED,
        by,
        milestone_number=target.number,
        reason=reason,
        held_minor=held,
        side=side_of(contract, by),
        announce=False,  # the dispute card is the announcement
    )
    tx.intent(IntentKind.DISPUTE_CARD, subject_id=dispute.id)
    if was == MilestoneStatus.SUBMITTED:
        tx.intent(IntentKind.WORK_CARD, subject_id=target.id)
    if contract.status == ContractStatus.ENDING:
        tx.intent(IntentKind.ENDING_CARD, subject_id=contract.id)
    cancel_inapplicable(tx, pending, because=f"milestone {target.number} is disputed")
    return held
