"""Changing milestones: directly where the rules allow, or as a change request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from domain import reminders, when
from domain.db import write_transaction
from domain.errors import InvalidInput, RequestPending, WrongPhase
from domain.model import (
    SYSTEM_ACTOR,
    Change,
    ChangeKind,
    ChangeRequest,
    Contract,
    ContractStatus,
    EventKind,
    IntentKind,
    Milestone,
    RequestStatus,
    Role,
)
from domain.policy import DEFAULT_POLICY, MAX_TEXT, Policy
from domain.rules import Act, RequestAction, require
from domain.services._locking import (
    lock_contract,
    milestone_numbered,
    pending_requests,
    require_not_ending,
    require_open,
)
from domain.services._replacing import answerers, replacing
from domain.services._steps import apply_change, close_request
from domain.services._validation import (
    ValidChange,
    check_applicable,
    clean_text,
    money,
    validate_change,
)
from domain.services._writes import Tx
from domain.services.inputs import ChangeInput, Outcome
from domain.text import Command, Person, Said, said


def change_milestones(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """`add`, `edit`, `delete`: applied directly where the rules allow, else proposed.

    While negotiating, the client, the freelancer or an agency manager change the
    milestones directly. Once active, the client changes future milestones directly;
    the provider side's changes become a change request for the client to answer.
    """
    if not changes:
        raise InvalidInput("There is nothing to change.")
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        require_open(contract)
        require_not_ending(contract, "change milestones")
        role = contract.role_of(actor_id)
        if contract.status == ContractStatus.ACTIVE and role in (
            Role.FREELANCER,
            Role.MANAGER,
            Role.MEMBER,  # refused by `_propose`, with a message naming the managers
        ):
            return _propose(session, contract, actor_id, changes, message, now, policy)
        act = (
            Act.EDIT_NEGOTIATING
            if contract.status == ContractStatus.NEGOTIATING
            else Act.EDIT_DIRECTLY
        )
        require(contract, actor_id, act)
        clean_message = clean_text(message, what="message", limit=MAX_TEXT, required=False)
        if contract.status == ContractStatus.ACTIVE:
            pending = pending_requests(session, contract)
            own = [r for r in pending if r.proposed_by == actor_id]  # counter-offers
            pending = [r for r in pending if r.proposed_by != actor_id]
            if len(pending) == 1:
                raise RequestPending(
                    said(
                        f"Change request #{pending[0].number} from ",
                        Person(pending[0].proposed_by),
                        " is waiting for your answer: accept or decline it before changing "
                        "milestones directly.",
                    )
                )
            if pending:
                numbers = [str(r.number) for r in pending]
                listed = f"{', '.join(numbers[:-1])} and {numbers[-1]}"
                raise RequestPending(
                    f"Change requests {listed} are waiting for your answer: accept or "
                    "decline them before changing milestones directly."
                )
            if own:
                raise RequestPending(
                    said(
                        f"Your change request #{own[0].number} is waiting for an answer from ",
                        answerers(contract, actor_id),
                        ": withdraw or revise it before changing milestones directly.",
                    )
                )
        tx = Tx(session, contract, now)
        validated = [validate_change(contract, c, now=now, policy=policy) for c in changes]
        touched: list[Milestone] = []
        for change in validated:
            check_applicable(contract, change, direct=True)
            touched.append(
                apply_change(tx, change, actor=actor_id, request=None, message=clean_message)
            )
        if contract.status == ContractStatus.NEGOTIATING and contract.clear_agreement():
            tx.event(EventKind.AGREEMENT_CLEARED, SYSTEM_ACTOR, announce=False)
        tx.changed()
        return tx.outcome(
            _describe_direct(contract, validated, touched), milestone_number=touched[-1].number
        )


def _describe_direct(
    contract: Contract, changes: Sequence[ValidChange], touched: Sequence[Milestone]
) -> Said:
    """What was done, echoing the amount and the day as understood (`next friday` is
    answered with the date it became)."""
    parts = []
    for change, milestone in zip(changes, touched, strict=True):
        verb = {"add": "added", "edit": "updated", "delete": "deleted"}[change.kind.value]
        shown = []
        if change.kind == ChangeKind.ADD or "amount_minor" in change.fields:
            shown.append(money(contract, milestone.amount_minor))
        if change.kind == ChangeKind.ADD or "due_date" in change.fields:
            shown.append(f"due {when.spell(milestone.due_date)}")
        details = f": {', '.join(shown)}" if shown and change.kind != ChangeKind.DELETE else ""
        parts.append(f"Milestone {milestone.number} ({milestone.title}) {verb}{details}.")
    return said(" ".join(parts))


def propose_changes(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
    revises_request_id: int | None = None,
    counters_request_id: int | None = None,
) -> Outcome:
    """A change request from the freelancer or an agency manager on an active contract.

    With `revises_request_id`, the proposer's pending request is withdrawn and the new
    one sent in the same transaction ("revise"). With `counters_request_id`, the side
    that answers a pending request suggests changes instead: it becomes `countered`
    and the new request, from that side, awaits the other side's answer (see
    services.counter_request).
    """
    if not changes:
        raise InvalidInput("A change request needs at least one change.")
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        return _propose(
            session,
            contract,
            actor_id,
            changes,
            message,
            now,
            policy,
            revises_request_id,
            counters_request_id,
        )


def _propose(
    session: Session,
    contract: Contract,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str,
    now: datetime,
    policy: Policy,
    revises_request_id: int | None = None,
    counters_request_id: int | None = None,
) -> Outcome:
    require_open(contract)
    require_not_ending(contract, "propose changes")
    if revises_request_id is None and counters_request_id is None:
        require(contract, actor_id, Act.PROPOSE)  # else: checked against the request replaced
    if contract.status != ContractStatus.ACTIVE:
        raise WrongPhase(
            said(
                "While the contract is being negotiated, change the milestones directly (",
                Command("add"),
                ", ",
                Command("edit"),
                ", ",
                Command("delete"),
                "); requests are for active contracts.",
            )
        )
    clean_message = clean_text(message, what="message", limit=MAX_TEXT, required=False)
    tx = Tx(session, contract, now)
    pending = pending_requests(session, contract)
    replaced = replacing(
        session,
        contract,
        pending,
        actor_id,
        revises=revises_request_id,
        counters=counters_request_id,
    )
    if replaced is not None and replaced.done:
        return tx.outcome(
            replaced.already_said(),
            already_done=True,
            request_number=replaced.old.replaced_by,
            became_request=True,
        )
    revised = replaced.old if replaced and replaced.action == RequestAction.WITHDRAW else None
    countered = replaced.old if replaced and replaced.action == RequestAction.COUNTER else None
    if replaced is not None:
        # The new request takes the next number (a refusal below rolls all of it back).
        new_number = contract.next_request_number
        close_request(tx, replaced.old, replaced.action, by=actor_id, replaced_by=new_number)
        pending = [r for r in pending if r.id != replaced.old.id]
    validated = [validate_change(contract, c, now=now, policy=policy) for c in changes]
    numbers = [c.number for c in validated if c.number is not None]
    if len(numbers) != len(set(numbers)):
        repeated = next(n for n in numbers if numbers.count(n) > 1)
        raise InvalidInput(
            "Each milestone can appear only once in a change request.", milestone=repeated
        )
    added = 0
    for change in validated:
        check_applicable(contract, change, direct=False, milestones_added=added)
        added += change.kind == ChangeKind.ADD
        for other in pending:
            if change.number is not None and any(
                c.milestone_number == change.number for c in other.changes
            ):
                raise RequestPending(
                    f"Milestone {change.number} already has a pending change in change "
                    f"request #{other.number}; withdraw or revise that request instead.",
                    milestone=change.number,
                )
    request = ChangeRequest(
        contract_id=contract.id,
        number=contract.next_request_number,
        status=RequestStatus.PENDING,
        proposed_by=actor_id,
        proposed_at=now,
        message=clean_message,
        revision_of=revised.number if revised else None,
        counter_of=countered.number if countered else None,
        changes=[
            Change(
                position=position,
                kind=change.kind,
                milestone_number=change.number,
                fields=change.fields,
                before=(
                    milestone_numbered(contract, change.number).fields()
                    if change.number is not None
                    else None
                ),
            )
            for position, change in enumerate(validated)
        ],
    )
    session.add(request)
    session.flush()  # the request's id names its reminder and its card
    contract.next_request_number += 1
    if replaced is not None:
        replaced.old.replace_with(request.number)
    tx.event(
        EventKind.REQUEST_PROPOSED,
        actor_id,
        request_number=request.number,
        announce=False,  # the request's own card is the announcement
        changes=[
            {"kind": c.kind.value, "milestone_number": c.number, "fields": c.fields}
            for c in validated
        ],
        message=clean_message,
        revises=revised.number if revised else None,
        counters=countered.number if countered else None,
    )
    reminders.on_request_proposed(tx.reminders, contract, request, now=now, policy=policy)
    tx.intent(IntentKind.REQUEST_CARD, subject_id=request.id)
    tx.changed()
    return tx.outcome(
        said(
            f"Sent change request #{request.number} to ",
            answerers(contract, actor_id),
            f" for a decision.{replaced.note if replaced else ''}",
        ),
        request_id=request.id,
        request_number=request.number,
        became_request=True,
    )
