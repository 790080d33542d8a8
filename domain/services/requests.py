"""Deciding a change request: accept, decline, withdraw — one step with three endings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from domain.db import write_transaction
from domain.errors import InvalidInput, NotAllowed, NotFound
from domain.model import ChangeKind, ChangeRequest, Contract, Role
from domain.payments import FUNDED_NOTE, money_note
from domain.policy import DEFAULT_POLICY, MAX_TEXT, Policy
from domain.rules import Act, RequestAction, request_next, request_roles, require
from domain.services._locking import (
    lock_contract,
    milestone_numbered,
    requests_of,
    require_open,
    select_contract_for_update,
)
from domain.services._steps import apply_change, cancel_inapplicable, close_request
from domain.services._validation import ValidChange, check_applicable, clean_text, money
from domain.services._writes import Tx
from domain.services.inputs import Outcome
from domain.text import Person, Said, said


def _locked_request(
    session: Session,
    *,
    contract_id: int | None,
    request_id: int | None,
    number: int | None,
    others: bool = False,
) -> tuple[Contract, ChangeRequest, list[ChangeRequest]]:
    """The contract, locked, and the request named; with `others`, also the contract's
    other pending requests (read in the same statement)."""
    if request_id is not None:
        contract = select_contract_for_update(
            session, ChangeRequest.id == request_id, via=ChangeRequest
        )
        if contract is None:
            raise NotFound(f"There is no change request with id {request_id}.")
        if contract_id is not None and contract.id != contract_id:
            raise NotFound(f"That request is not part of contract {contract_id}.")
        named = ChangeRequest.id == request_id
    else:
        if contract_id is None or number is None:
            raise InvalidInput("Say which request: its number.")
        contract = lock_contract(session, contract_id)
        named = ChangeRequest.number == number
    requests = requests_of(session, contract, pending=others, also=named)
    request: ChangeRequest | None
    if request_id is not None:
        request = next((r for r in requests if r.id == request_id), None)
    else:
        request = next((r for r in requests if r.number == number), None)
    if request is None:
        raise NotFound(f"Contract {contract.id} has no change request #{number}.")
    return contract, request, [r for r in requests if r is not request]


Decision = Callable[[Tx, ChangeRequest, list[ChangeRequest], Role], Said]
"""What a decision does once it is allowed: (the contract's writes, the request, the
contract's other pending requests, the actor's role) → what to tell the actor."""

_ACT = {
    RequestAction.ACCEPT: Act.ACCEPT,
    RequestAction.DECLINE: Act.DECLINE,
    RequestAction.WITHDRAW: Act.WITHDRAW,
}


def _decide(
    session: Session,
    action: RequestAction,
    decision: Decision,
    *,
    actor_id: str,
    now: datetime,
    request_id: int | None,
    contract_id: int | None,
    number: int | None,
) -> Outcome:
    """The one decision step of accept, decline and withdraw: find the request and lock
    its contract, check the actor may, answer a repeat as already done, refuse on an
    ended contract, then let `decision` apply it."""
    with write_transaction(session):
        contract, request, others = _locked_request(
            session,
            contract_id=contract_id,
            request_id=request_id,
            number=number,
            others=action == RequestAction.ACCEPT,
        )
        tx = Tx(session, contract, now)
        role = require(
            contract,
            actor_id,
            _ACT[action],
            f"{action.value} change request #{request.number}",
            roles=request_roles(contract, _ACT[action], request.proposed_by),
        )
        if request.decided_as(action, actor_id):
            return tx.outcome(
                f"Change request #{request.number} is already {request.status.value}.",
                already_done=True,
                request_id=request.id,
                request_number=request.number,
            )
        require_open(contract)
        what = decision(tx, request, others, role)
        tx.changed()
        return tx.outcome(what, request_id=request.id, request_number=request.number)


def accept_request(
    session: Session,
    *,
    actor_id: str,
    now: datetime,
    request_id: int | None = None,
    contract_id: int | None = None,
    number: int | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The side that did not propose it (the client, or the provider side for the
    client's counter-offer) accepts: every change applies at once, or none of them."""

    def accept(tx: Tx, request: ChangeRequest, others: list[ChangeRequest], role: Role) -> Said:
        contract = tx.contract
        request_next(request.status, RequestAction.ACCEPT, request.number)  # still pending?
        # Re-check every change against the contract as it is now.
        changes = [ValidChange(c.kind, c.milestone_number, dict(c.fields)) for c in request.changes]
        added = 0
        for change in changes:
            check_applicable(contract, change, direct=False, milestones_added=added)
            added += change.kind == ChangeKind.ADD
        top_up = 0
        for stored, change in zip(request.changes, changes, strict=True):
            old = (
                milestone_numbered(contract, change.number).amount_minor
                if change.number is not None
                else 0
            )
            milestone = apply_change(
                tx,
                change,
                actor=request.proposed_by,
                request=request,
                message=request.message,
                accepted_by=actor_id,
            )
            if milestone.is_active:
                top_up += milestone.amount_minor - old
            if stored.kind == ChangeKind.ADD:
                stored.milestone_number = milestone.number
        close_request(tx, request, RequestAction.ACCEPT, by=actor_id, top_up=top_up)
        cancel_inapplicable(tx, others, because=f"change request #{request.number} was accepted")
        note = (
            f" Escrow topped up by {money(contract, top_up)}. {money_note(FUNDED_NOTE, policy)}"
            if top_up
            else ""
        )
        return said(f"Accepted change request #{request.number}.{note}")

    return _decide(
        session,
        RequestAction.ACCEPT,
        accept,
        actor_id=actor_id,
        now=now,
        request_id=request_id,
        contract_id=contract_id,
        number=number,
    )


def decline_request(
    session: Session,
    *,
    actor_id: str,
    now: datetime,
    reason: str = "",
    request_id: int | None = None,
    contract_id: int | None = None,
    number: int | None = None,
) -> Outcome:
    """The side that did not propose it declines, with an optional reason."""

    def decline(tx: Tx, request: ChangeRequest, others: list[ChangeRequest], role: Role) -> Said:
        clean = clean_text(reason, what="reason", limit=MAX_TEXT, required=False)
        close_request(tx, request, RequestAction.DECLINE, by=actor_id, reason=clean)
        return said(f"Declined change request #{request.number}.")

    return _decide(
        session,
        RequestAction.DECLINE,
        decline,
        actor_id=actor_id,
        now=now,
        request_id=request_id,
        contract_id=contract_id,
        number=number,
    )


def withdraw_request(
    session: Session,
    *,
    actor_id: str,
    now: datetime,
    request_id: int | None = None,
    contract_id: int | None = None,
    number: int | None = None,
) -> Outcome:
    """The proposer (or, in an agency, another manager) takes a pending request back."""

    def withdraw(tx: Tx, request: ChangeRequest, others: list[ChangeRequest], role: Role) -> Said:
        if role == Role.FREELANCER and request.proposed_by != actor_id:
            raise NotAllowed(
                said(
                    "Only the proposer, ",
                    Person(request.proposed_by),
                    f", can withdraw change request #{request.number}.",
                )
            )
        close_request(tx, request, RequestAction.WITHDRAW, by=actor_id)
        return said(f"Withdrew change request #{request.number}.")

    return _decide(
        session,
        RequestAction.WITHDRAW,
        withdraw,
        actor_id=actor_id,
        now=now,
        request_id=request_id,
        contract_id=contract_id,
        number=number,
    )
