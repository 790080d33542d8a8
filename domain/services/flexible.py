"""Flexible money and time: releasing part of a milestone's escrow early, paying a
bonus outside escrow, and more time to review submitted work by consent.

- A partial release moves part of what is held for a funded or submitted milestone to
  the provider (a `release` entry `release:<milestone>:part:<k>`); the rest stays held
  and the milestone stays in progress until it is approved or released automatically,
  which then releases the rest. Releasing everything held is an approval.
- A bonus is paid to the provider at once, outside escrow (`bonus:<contract>:<k>`, an
  entry of no milestone): escrow's balance never counts it.
- While work is submitted the client may ask for more time (at most
  `MORE_TIME_ASKS_PER_SUBMISSION` times a submission); the automatic release date moves
  only when the provider side gives it. The provider side may also give time unasked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from domain import ledger, reminders
from domain.db import write_transaction
from domain.errors import InvalidAmount, InvalidInput, InvalidTransition, WrongPhase
from domain.model import (
    Contract,
    ContractStatus,
    EventKind,
    IntentKind,
    LedgerKind,
    Milestone,
    MilestoneStatus,
)
from domain.payments import RELEASED_NOTE, money_note
from domain.policy import DEFAULT_POLICY, MAX_TEXT, Policy
from domain.rules import (
    MORE_TIME_ASKS_PER_SUBMISSION,
    MORE_TIME_DEFAULT_DAYS,
    MORE_TIME_MAX_DAYS,
    PROVIDER_SPEAKERS,
    Act,
    mid_sentence,
    require,
    who_can,
)
from domain.services._locking import (
    lock_contract,
    milestone_by_id,
    milestone_numbered,
    require_active,
    require_open,
)
from domain.services._steps import release
from domain.services._validation import clean_text, money, read_amount
from domain.services._writes import Tx
from domain.services.inputs import Outcome
from domain.text import Command, Person, counted, said

# --- partial release --------------------------------------------------------------------


def release_part(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    number: int,
    amount: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The client releases `amount` of milestone `number`'s escrow to the provider now;
    the rest stays held for it. Everything held, for submitted work, is an approval."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.RELEASE_PART)
        require_active(contract, "release escrow")
        milestone = milestone_numbered(contract, number)
        if not milestone.is_active:
            raise InvalidTransition(
                f"Milestone {number} is {_state(milestone)}: only the escrow of a funded or "
                "submitted milestone can be released.",
                milestone=number,
            )
        amount_minor = read_amount(contract, amount, policy, milestone=number)
        held = ledger.held_for_milestone(session, milestone.id)
        if amount_minor > held:
            raise InvalidAmount(
                f"Only {money(contract, held)} is held for milestone {number}; release less "
                "than that.",
                field="amount_minor",
                milestone=number,
            )
        if amount_minor == held:
            if milestone.status != MilestoneStatus.SUBMITTED:
                raise InvalidAmount(
                    said(
                        f"{money(contract, held)} is everything held for milestone {number}: "
                        "releasing all of it is approving the work, and approval applies to "
                        "submitted work. Release less, or ",
                        Command("approve"),
                        " once the work is submitted.",
                    ),
                    field="amount_minor",
                    milestone=number,
                )
            release(tx, milestone, actor=actor_id, automatic=False, policy=policy, held=held)
            return tx.outcome(
                f"That is everything held for milestone {number}, so it counts as approving "
                f"the work: {money(contract, held)} released. {money_note(RELEASED_NOTE, policy)}",
                milestone_number=number,
            )
        part = ledger.partial_releases(session, milestone.id) + 1
        milestone.release_part(amount_minor)
        ledger.record(
            session,
            contract_id=contract.id,
            milestone_id=milestone.id,
            kind=LedgerKind.RELEASE,
            amount_minor=amount_minor,
            actor=actor_id,
            at=now,
            key=ledger.partial_release_key(milestone.id, part),
            held_minor=held,
        )
        rest = held - amount_minor
        tx.event(
            EventKind.MILESTONE_PARTLY_RELEASED,
            actor_id,
            milestone_number=number,
            title=milestone.title,
            amount_minor=amount_minor,
            held_minor=rest,
            released_early_minor=milestone.released_early_minor,
        )
        if milestone.status == MilestoneStatus.SUBMITTED:
            tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
        tx.changed()
        return tx.outcome(
            f"Released {money(contract, amount_minor)} of milestone {number} "
            f"({milestone.title}) to the provider; {money(contract, rest)} stays in escrow "
            f"for it. {money_note(RELEASED_NOTE, policy)}",
            milestone_number=number,
        )


def _state(milestone: Milestone) -> str:
    if milestone.status == MilestoneStatus.PENDING:
        return "refunded" if milestone.refunded_at is not None else "not funded yet"
    return milestone.status.value


# --- bonus ------------------------------------------------------------------------------


def pay_bonus(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    amount: str,
    note: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The client pays the provider a bonus at once, outside escrow."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.PAY_BONUS)
        require_open(contract)
        if contract.status == ContractStatus.NEGOTIATING:
            raise WrongPhase(
                said(
                    f"Contract {contract.id} is still being negotiated: a bonus can be paid "
                    "once it is active (both sides type ",
                    Command("start"),
                    ").",
                )
            )
        clean_note = clean_text(note, what="note", limit=MAX_TEXT, required=False)
        amount_minor = read_amount(contract, amount, policy)
        paid = ledger.bonuses(session, contract.id) + 1
        ledger.record(
            session,
            contract_id=contract.id,
            milestone_id=None,
            kind=LedgerKind.BONUS,
            amount_minor=amount_minor,
            actor=actor_id,
            at=now,
            key=f"bonus:{contract.id}:{paid}",
        )
        tx.event(EventKind.BONUS_PAID, actor_id, amount_minor=amount_minor, note=clean_note)
        tx.changed()
        return tx.outcome(
            f"Paid a bonus of {money(contract, amount_minor)} to the provider, outside escrow. "
            f"{RELEASED_NOTE}",
        )


# --- more time to review ----------------------------------------------------------------


def extend_review(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    days: int | None = None,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """`/milestone extend [days]`: from the client, an ask for more time to review (the
    provider side answers it); from the provider side, more time given at once (the
    days asked for when no number is given)."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        giving = contract.role_of(actor_id) in PROVIDER_SPEAKERS
        require(contract, actor_id, Act.GIVE_TIME if giving else Act.ASK_FOR_TIME)
        require_active(contract, "change the review period")
        milestone = _under_review(contract)
        if giving:
            asked = milestone.extension_waiting
            wanted = days if days is not None else asked or MORE_TIME_DEFAULT_DAYS
            return _give(tx, milestone, actor_id, days=wanted, policy=policy)
        wanted = _days(MORE_TIME_DEFAULT_DAYS if days is None else days)
        waiting = milestone.extension_waiting
        if waiting is not None:
            if waiting == wanted:
                return tx.outcome(
                    said(
                        f"You already asked for {counted(wanted, 'more day')}; waiting for ",
                        mid_sentence(who_can(contract, Act.GIVE_TIME)),
                        " to answer.",
                    ),
                    already_done=True,
                    milestone_number=milestone.number,
                )
            raise InvalidTransition(
                said(
                    f"You asked for {counted(waiting, 'more day')} already; ",
                    mid_sentence(who_can(contract, Act.GIVE_TIME)),
                    " answers that first.",
                ),
                milestone=milestone.number,
            )
        if (milestone.extension_asks or 0) >= MORE_TIME_ASKS_PER_SUBMISSION:
            raise InvalidTransition(
                f"You have asked for more time {MORE_TIME_ASKS_PER_SUBMISSION} times during "
                "this submission, the most there is: approve the work or request changes "
                "before the automatic release.",
                milestone=milestone.number,
            )
        milestone.ask_for_more_time(days=wanted, at=now)
        reminders.on_more_time_asked(tx.reminders, contract, milestone)
        tx.event(
            EventKind.REVIEW_TIME_ASKED,
            actor_id,
            milestone_number=milestone.number,
            title=milestone.title,
            days=wanted,
            auto_release_at=milestone.auto_release_at,
        )
        tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
        tx.changed()
        return tx.outcome(
            said(
                f"Asked for {counted(wanted, 'more day')} to review milestone "
                f"{milestone.number}. The automatic release date moves if ",
                mid_sentence(who_can(contract, Act.GIVE_TIME)),
                " agrees.",
            ),
            milestone_number=milestone.number,
        )


def give_more_time(
    session: Session,
    *,
    contract_id: int,
    milestone_id: int,
    actor_id: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The provider side gives the time the client asked for (the button on the ask)."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.GIVE_TIME)
        shown = milestone_by_id(contract, milestone_id)
        asked = shown.extension_waiting
        if asked is None or contract.status != ContractStatus.ACTIVE:
            return _answered(tx, shown)
        return _give(tx, shown, actor_id, days=asked, policy=policy)


def keep_review_date(
    session: Session,
    *,
    contract_id: int,
    milestone_id: int,
    actor_id: str,
    now: datetime,
) -> Outcome:
    """The provider side declines the client's ask: the automatic release date stays."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.GIVE_TIME, "answer an ask for more time")
        shown = milestone_by_id(contract, milestone_id)
        asked = shown.extension_waiting
        if asked is None or contract.status != ContractStatus.ACTIVE:
            return _answered(tx, shown)
        shown.keep_review_date()
        tx.event(
            EventKind.REVIEW_TIME_DECLINED,
            actor_id,
            milestone_number=shown.number,
            title=shown.title,
            days=asked,
            auto_release_at=shown.auto_release_at,
        )
        tx.intent(IntentKind.WORK_CARD, subject_id=shown.id)
        tx.changed()
        return tx.outcome(
            f"You kept the review date of milestone {shown.number}: the automatic release "
            "stays as it was.",
            milestone_number=shown.number,
        )


def _under_review(contract: Contract) -> Milestone:
    milestone = contract.in_progress
    if milestone is None or milestone.status != MilestoneStatus.SUBMITTED:
        raise InvalidTransition(
            "No work is waiting for review: more time to review applies while work is submitted."
        )
    return milestone


def _days(days: int) -> int:
    if not 1 <= days <= MORE_TIME_MAX_DAYS:
        raise InvalidInput(
            f"Give a number of days from 1 to {MORE_TIME_MAX_DAYS}, "
            f"such as {MORE_TIME_DEFAULT_DAYS}.",
            field="days",
        )
    return days


def _give(tx: Tx, milestone: Milestone, actor_id: str, *, days: int, policy: Policy) -> Outcome:
    """More time given by the provider side: the automatic release (and the reminders
    before it) move; an ask waiting for the answer is answered by it."""
    days = _days(days)
    asked = milestone.extension_waiting
    previous = milestone.auto_release_at
    milestone.extend_review(days=days)
    reminders.on_review_extended(tx.reminders, tx.contract, milestone, now=tx.now, policy=policy)
    tx.event(
        EventKind.REVIEW_EXTENDED,
        actor_id,
        milestone_number=milestone.number,
        title=milestone.title,
        days=days,
        asked_days=asked,
        previous_auto_release_at=previous,
        auto_release_at=milestone.auto_release_at,
    )
    tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
    tx.changed()
    return tx.outcome(
        said(
            f"Gave {counted(days, 'more day')} to review milestone {milestone.number}; ",
            Person(tx.contract.client_id),
            " is told the new automatic release date.",
        ),
        milestone_number=milestone.number,
    )


def _answered(tx: Tx, milestone: Milestone) -> Outcome:
    """A click on an ask that is no longer waiting (answered, or the work was reviewed)."""
    if (
        milestone.status == MilestoneStatus.SUBMITTED
        and tx.contract.status == ContractStatus.ACTIVE
    ):
        why = "That ask for more time was already answered."
    else:
        why = f"Milestone {milestone.number} is no longer waiting for review."
    return tx.outcome(why, already_done=True, milestone_number=milestone.number)
