"""Disputes: a milestone's escrow frozen until the two sides agree how to split it, or an
operator decides.

The client may dispute submitted work (instead of approving it or asking for changes);
the provider side may dispute an end-refund while the contract is ending. While
disputed, nothing is released or refunded by itself, other actions on the milestone
are refused with the reason, review nudges stop and both sides are reminded every few
days. Either side proposes a split (`X` to the provider, the rest back to the client); a
newer proposal replaces an older one; the other side agrees (the button names the
proposal it showed, so an agreement never lands on a newer one), or proposes the very
same split. An operator may decide instead, with a reason. Settling writes a release of
`X` and a refund of the rest, each under its milestone's unique key, so it happens once;
if the contract was ending, it closes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from domain import ledger, reminders
from domain.db import write_transaction
from domain.disputes import dispute_of, is_zero_amount, side_of
from domain.errors import InvalidAmount, InvalidTransition, NotAllowed, NotFound, WrongPhase
from domain.model import (
    SYSTEM_ACTOR,
    Contract,
    ContractStatus,
    Dispute,
    EventKind,
    IntentKind,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    Role,
)
from domain.payments import SPLIT_NOTE, money_note
from domain.policy import DEFAULT_POLICY, MAX_TEXT, Policy
from domain.rules import Act, mid_sentence, require
from domain.services._locking import (
    lock_contract,
    milestone_by_id,
    milestone_numbered,
    pending_requests,
    require_open,
)
from domain.services._steps import cancel_inapplicable, freeze_under_dispute
from domain.services._validation import clean_text, money, read_amount
from domain.services._writes import Tx
from domain.services.endings import close_contract
from domain.services.inputs import Outcome
from domain.text import Command, Person, Said, said
from domain.waiting import WaitingKind

AGREED = "agreed"
OPERATOR = "operator"


def dispute_milestone(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    reason: str,
    now: datetime,
    milestone_number: int | None = None,
    milestone_id: int | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The client disputes submitted work, or the provider side the end-refund of the
    funded milestone: its escrow is frozen until the dispute is settled."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        role = require(contract, actor_id, Act.DISPUTE)
        if milestone_id is not None:
            target: Milestone | None = milestone_by_id(contract, milestone_id)
        elif milestone_number is not None:
            target = milestone_numbered(contract, milestone_number)
        else:
            target = contract.in_progress
        if target is not None and target.status == MilestoneStatus.DISPUTED:
            return tx.outcome(
                f"Milestone {target.number} is already disputed; its escrow is frozen until "
                "the dispute is settled.",
                already_done=True,
                milestone_number=target.number,
            )
        require_open(contract)
        clean_reason = clean_text(reason, what="reason", limit=MAX_TEXT, required=True)
        if target is not None and dispute_of(session, target.id) is not None:
            raise InvalidTransition(
                f"The dispute over milestone {target.number} was settled; it is final."
            )
        if role == Role.CLIENT:
            _check_client_may_dispute(contract, target)
        else:
            _check_provider_may_dispute(contract, target)
        assert target is not None
        held = freeze_under_dispute(tx, target, by=actor_id, reason=clean_reason, policy=policy)
        tx.changed()
        return tx.outcome(
            said(
                f"Milestone {target.number} is disputed: its {money(contract, held)} stays in "
                "escrow, frozen, until you agree on a split (",
                Command(f"settle {target.number} <amount-to-provider>"),
                ") or an operator decides.",
            ),
            milestone_number=target.number,
        )


def _check_client_may_dispute(contract: Contract, target: Milestone | None) -> None:
    if contract.status == ContractStatus.ENDING:
        raise WrongPhase(
            f"You ended contract {contract.id}; the provider side may accept the refund or "
            "dispute it."
        )
    if contract.status != ContractStatus.ACTIVE:
        raise WrongPhase(f"Contract {contract.id} is not active: there is no work to dispute.")
    if target is None:
        raise InvalidTransition(
            "There is no submitted work to dispute: you can dispute work waiting for your "
            "review instead of approving it."
        )
    if target.status != MilestoneStatus.SUBMITTED:
        raise InvalidTransition(
            f"You can dispute submitted work instead of approving it: milestone "
            f"{target.number} is {target.status.value}, not submitted for review."
        )


def _check_provider_may_dispute(contract: Contract, target: Milestone | None) -> None:
    if contract.status != ContractStatus.ENDING:
        raise WrongPhase(
            "The provider side can dispute a refund when the client ends the contract while "
            "a milestone is funded; there is no refund to dispute now."
        )
    if target is None or target.status != MilestoneStatus.FUNDED:
        raise InvalidTransition("That milestone's escrow is not being refunded.")


def read_split(contract: Contract, text: str, policy: Policy, *, held: int) -> int:
    """The amount to the provider in a split: zero up to what is held."""
    amount = 0 if is_zero_amount(text) else read_amount(contract, text, policy)
    if amount > held:
        raise InvalidAmount(
            f"Only {money(contract, held)} is held for that milestone: the provider's part "
            "can't be more.",
            field="amount_minor",
        )
    return amount


def propose_split(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    milestone_number: int,
    to_provider: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """`settle <n> <amount-to-provider>`: propose a split of the held escrow (it replaces
    an earlier proposal); the same split the other side proposed is an agreement."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.SETTLE)
        milestone = milestone_numbered(contract, milestone_number)
        dispute = _open_dispute(session, contract, milestone)
        held = ledger.held_for_milestone(session, milestone.id)
        amount = read_split(contract, to_provider, policy, held=held)
        side = side_of(contract, actor_id)
        if dispute.proposed_by is not None and dispute.proposed_to_provider_minor == amount:
            if side_of(contract, dispute.proposed_by) == side:
                return tx.outcome(
                    f"That split is already proposed: {_split_words(contract, amount, held)}.",
                    already_done=True,
                    milestone_number=milestone.number,
                )
            settle(
                tx, dispute, milestone, to_provider=amount, by=actor_id, how=AGREED, policy=policy
            )
            return tx.outcome(
                f"You agreed to the split: {_split_words(contract, amount, held)}. The "
                f"dispute over milestone {milestone.number} is settled.",
                milestone_number=milestone.number,
            )
        dispute.propose(by=actor_id, at=now, to_provider_minor=amount)
        tx.event(
            EventKind.SPLIT_PROPOSED,
            actor_id,
            milestone_number=milestone.number,
            to_provider_minor=amount,
            to_client_minor=held - amount,
            proposal=dispute.proposal_number,
        )
        tx.intent(IntentKind.DISPUTE_CARD, subject_id=dispute.id)
        answering = contract.provider_ids if side == "client" else [contract.client_id]
        for user_id in answering:  # they now owe an answer (domain.notify)
            tx.reminders.awaits(
                contract, user_id, WaitingKind.SPLIT_TO_AGREE, subject_id=milestone.id
            )
        tx.changed()
        other = (
            said("the provider side")
            if side == "client"
            else said("the client, ", Person(contract.client_id))
        )
        return tx.outcome(
            said(
                f"You proposed a split of milestone {milestone.number}: "
                f"{_split_words(contract, amount, held)}. It is settled once ",
                mid_sentence(other),
                " agrees.",
            ),
            milestone_number=milestone.number,
        )


def agree_to_split(
    session: Session,
    *,
    contract_id: int,
    dispute_id: int,
    proposal_number: int,
    actor_id: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The other side agrees to the proposal a card showed: the split is carried out."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.SETTLE)
        dispute = session.get(Dispute, dispute_id, populate_existing=True)
        if dispute is None or dispute.contract_id != contract.id:
            raise NotFound(f"That dispute is not part of contract {contract.id}.")
        milestone = milestone_by_id(contract, dispute.milestone_id)
        if not dispute.is_open:
            if dispute.settled_how == AGREED and dispute.proposal_number == proposal_number:
                return tx.outcome(
                    f"The split of milestone {milestone.number} was already agreed.",
                    already_done=True,
                    milestone_number=milestone.number,
                )
            raise InvalidTransition(
                f"The dispute over milestone {milestone.number} is already settled."
            )
        held = ledger.held_for_milestone(session, milestone.id)
        amount = dispute.proposed_to_provider_minor
        if dispute.proposed_by is None or amount is None:
            raise InvalidTransition("No split has been proposed yet.")
        if dispute.proposal_number != proposal_number:
            raise InvalidTransition(
                f"That proposal was replaced by a newer one: "
                f"{_split_words(contract, amount, held)}. Agree to that one on the card."
            )
        if side_of(contract, dispute.proposed_by) == side_of(contract, actor_id):
            proposer = "You" if dispute.proposed_by == actor_id else "Your side"
            raise NotAllowed(
                said(
                    f"{proposer} proposed this split; ",
                    _other_side(contract, dispute.proposed_by),
                    " agrees to it.",
                )
            )
        settle(tx, dispute, milestone, to_provider=amount, by=actor_id, how=AGREED, policy=policy)
        return tx.outcome(
            f"You agreed to the split: {_split_words(contract, amount, held)}. The dispute "
            f"over milestone {milestone.number} is settled. {money_note(SPLIT_NOTE, policy)}",
            milestone_number=milestone.number,
        )


def resolve_dispute(
    session: Session,
    *,
    contract_id: int,
    milestone_number: int,
    to_provider: str,
    reason: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """An operator decides a dispute (mediation happened outside the bot), with a reason."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        milestone = milestone_numbered(contract, milestone_number)
        dispute = _open_dispute(session, contract, milestone)
        clean_reason = clean_text(reason, what="reason", limit=MAX_TEXT, required=True)
        held = ledger.held_for_milestone(session, milestone.id)
        amount = read_split(contract, to_provider, policy, held=held)
        settle(
            tx,
            dispute,
            milestone,
            to_provider=amount,
            by=SYSTEM_ACTOR,
            how=OPERATOR,
            policy=policy,
            reason=clean_reason,
        )
        return tx.outcome(
            f"Decided the dispute over milestone {milestone.number} of contract "
            f"{contract.id}: {_split_words(contract, amount, held)}.",
            milestone_number=milestone.number,
        )


def _open_dispute(session: Session, contract: Contract, milestone: Milestone) -> Dispute:
    dispute = dispute_of(session, milestone.id)
    if dispute is None:
        raise InvalidTransition(
            f"Milestone {milestone.number} is not disputed, so there is nothing to settle."
        )
    if not dispute.is_open:
        raise InvalidTransition(
            f"The dispute over milestone {milestone.number} is already settled."
        )
    return dispute


def settle(
    tx: Tx,
    dispute: Dispute,
    milestone: Milestone,
    *,
    to_provider: int,
    by: str,
    how: str,
    policy: Policy,
    reason: str | None = None,
) -> None:
    """Carry out a split: `to_provider` released, the rest refunded, each exactly once
    (the milestone's `release:` and `refund:` keys); an ending contract closes."""
    contract, session, now = tx.contract, tx.session, tx.now
    held = ledger.held_for_milestone(session, milestone.id)
    pending = pending_requests(session, contract)
    to_client = held - to_provider
    assert 0 <= to_provider <= held
    if to_provider > 0:
        milestone.settle(by=by, at=now, refunded=to_client > 0)
        ledger.record(
            session,
            contract_id=contract.id,
            milestone_id=milestone.id,
            kind=LedgerKind.RELEASE,
            amount_minor=to_provider,
            actor=by,
            at=now,
            key=f"release:{milestone.id}",
            held_minor=held,
        )
    else:
        milestone.refund(at=now)
    if to_client > 0:
        ledger.record(
            session,
            contract_id=contract.id,
            milestone_id=milestone.id,
            kind=LedgerKind.REFUND,
            amount_minor=to_client,
            actor=by,
            at=now,
            key=f"refund:{milestone.id}",
            held_minor=to_client,
        )
    dispute.close(
        by=by,
        at=now,
        how=how,
        to_provider_minor=to_provider,
        to_client_minor=to_client,
        reason=reason,
    )
    reminders.on_dispute_settled(tx.reminders, milestone)
    closing = contract.status == ContractStatus.ENDING
    if to_provider > 0:
        tx.event(  # the release, as every release is recorded; the settlement announces it
            EventKind.MILESTONE_RELEASED,
            by,
            milestone_number=milestone.number,
            amount_minor=to_provider,
            automatic=False,
            split=True,
            announce=False,
        )
    tx.event(
        EventKind.DISPUTE_SETTLED,
        by,
        milestone_number=milestone.number,
        to_provider_minor=to_provider,
        to_client_minor=to_client,
        how=how,
        reason=reason,
        proposed_by=dispute.proposed_by if how == AGREED else None,
        closes_contract=closing,
    )
    tx.intent(IntentKind.DISPUTE_CARD, subject_id=dispute.id)
    if milestone.submitted_at is not None:
        tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
    if closing:
        close_contract(
            tx,
            actor=by,
            closed_by=contract.ending_by or by,
            how="dispute_settled",
            pending=pending,
            held={},
            announce=False,
        )
        return
    reminders.on_milestone_released(tx.reminders, contract, milestone, now=now, policy=policy)
    cancel_inapplicable(tx, pending, because=f"milestone {milestone.number} was settled")
    tx.changed()


def _split_words(contract: Contract, to_provider: int, held: int) -> str:
    to_client = held - to_provider
    if to_client <= 0:
        return f"all {money(contract, to_provider)} to the provider"
    if to_provider <= 0:
        return f"all {money(contract, to_client)} back to the client"
    return (
        f"{money(contract, to_provider)} to the provider, {money(contract, to_client)} "
        "back to the client"
    )


def _other_side(contract: Contract, user_id: str) -> Said:
    if side_of(contract, user_id) == "client":
        return said("the provider side")
    return said("the client, ", Person(contract.client_id), ",")
