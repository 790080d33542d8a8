"""Escrow: funding, submitting work, approving it, asking for changes, and the
automatic release when the client stays silent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session, selectinload

from domain import ledger, reminders
from domain.db import write_transaction
from domain.errors import InvalidTransition, OutOfOrder
from domain.model import (
    SYSTEM_ACTOR,
    Contract,
    ContractStatus,
    EventKind,
    IntentKind,
    Milestone,
    MilestoneStatus,
)
from domain.payments import FUNDED_NOTE, RELEASED_NOTE, money_note
from domain.policy import DEFAULT_POLICY, MAX_TEXT, Policy
from domain.rules import Act, require
from domain.services import payments
from domain.services._locking import (
    contract_id_of_milestone,
    lock_contract,
    milestone_by_id,
    pending_requests_of,
    require_active,
)
from domain.services._steps import fund_step, release
from domain.services._validation import clean_text, money
from domain.services._writes import Tx, Writes
from domain.services.inputs import Outcome
from domain.text import Person, said


def fund_milestone(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    now: datetime,
    milestone_id: int | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """Fund the next milestone in order (a button names the one it showed). Through a
    payments provider, the client is asked to pay instead: it is funded when they have."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.FUND)
        if milestone_id is not None:
            shown = milestone_by_id(contract, milestone_id)
            if shown.funded_at is not None and shown.refunded_at is None:
                return tx.outcome(
                    f"Milestone {shown.number} is already funded.",
                    already_done=True,
                    milestone_number=shown.number,
                )
        require_active(contract, "fund milestones")
        if policy.pay_through_provider:
            owed = payments.pending_top_up(session, contract)
            if owed is not None:
                return payments.ask_to_pay_top_up(tx, owed, actor_id=actor_id)
        current = contract.in_progress
        if current is not None:
            raise OutOfOrder(
                f"Milestone {current.number} ({current.title}) is {current.status.value}; "
                "the next milestone can be funded once it is released."
            )
        milestone = contract.next_to_fund
        if milestone is None:
            raise InvalidTransition("There is no milestone left to fund.")
        if milestone_id is not None and milestone.id != milestone_id:
            raise OutOfOrder(
                f"Milestones are funded in order: milestone {milestone.number} comes next."
            )
        if policy.pay_through_provider:
            return payments.ask_to_pay(tx, milestone, actor_id=actor_id)
        fund_step(tx, milestone, actor_id=actor_id, policy=policy)
        tx.changed()
        return tx.outcome(
            f"Funded milestone {milestone.number} ({milestone.title}) with "
            f"{money(contract, milestone.amount_minor)}. The provider can start. {FUNDED_NOTE}",
            milestone_number=milestone.number,
        )


def submit_work(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    note: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The provider delivers the milestone in progress; the review clock starts."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.SUBMIT)
        require_active(contract, "submit work")
        clean_note = clean_text(note, what="note", limit=MAX_TEXT, required=False)
        milestone = contract.in_progress
        if milestone is None:
            upcoming = contract.next_to_fund
            if upcoming is None:
                raise InvalidTransition("There is no milestone waiting for work.")
            raise InvalidTransition(
                said(
                    f"Milestone {upcoming.number} ({upcoming.title}) isn't funded yet: work "
                    "should not start before ",
                    Person(contract.client_id),
                    " funds it.",
                )
            )
        if milestone.status == MilestoneStatus.SUBMITTED:
            return tx.outcome(
                f"Milestone {milestone.number} is already submitted and waiting for review.",
                already_done=True,
                milestone_number=milestone.number,
            )
        milestone.submit(by=actor_id, at=now, note=clean_note, review=policy.auto_release_period)
        reminders.on_work_submitted(tx.reminders, contract, milestone, now=now, policy=policy)
        tx.event(
            EventKind.WORK_SUBMITTED,
            actor_id,
            milestone_number=milestone.number,
            announce=False,  # the submitted-work card is the announcement
            note=clean_note,
            auto_release_at=milestone.auto_release_at,
        )
        tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
        tx.changed()
        return tx.outcome(
            f"Submitted milestone {milestone.number} ({milestone.title}) for review.",
            milestone_number=milestone.number,
        )


def approve_work(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    now: datetime,
    milestone_id: int | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """The client approves submitted work: escrow is released to the provider."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.APPROVE)
        if milestone_id is not None:
            shown = milestone_by_id(contract, milestone_id)
            if shown.status == MilestoneStatus.RELEASED:
                how = "automatically" if shown.released_automatically else "already"
                return tx.outcome(
                    f"Milestone {shown.number} was {how} released.",
                    already_done=True,
                    milestone_number=shown.number,
                )
        require_active(contract, "approve work")
        milestone = contract.in_progress
        if milestone is None or milestone.status != MilestoneStatus.SUBMITTED:
            raise InvalidTransition(
                "There is no submitted work to approve: approval applies to submitted work."
            )
        if milestone_id is not None and milestone.id != milestone_id:
            raise InvalidTransition("That submission is no longer waiting for review.")
        held = release(tx, milestone, actor=actor_id, automatic=False, policy=policy)
        return tx.outcome(
            f"Approved milestone {milestone.number}: {money(contract, held)} released. "
            f"{money_note(RELEASED_NOTE, policy)}",
            milestone_number=milestone.number,
        )


def request_changes(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    note: str,
    now: datetime,
    milestone_id: int | None = None,
) -> Outcome:
    """The client sends submitted work back; the review clock stops."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        require(contract, actor_id, Act.REQUEST_CHANGES)
        require_active(contract, "request changes")
        clean_note = clean_text(note, what="note", limit=MAX_TEXT, required=True)
        milestone = contract.in_progress
        target = milestone_by_id(contract, milestone_id) if milestone_id is not None else milestone
        if (
            target is not None
            and target is milestone
            and target.status == MilestoneStatus.FUNDED
            and target.changes_requested_at is not None
            and target.submitted_at is not None
            and target.changes_requested_at >= target.submitted_at
        ):
            # A repeat (double click, resent modal): changes were asked for and the
            # provider has not resubmitted yet.
            return tx.outcome(
                f"Changes to milestone {target.number} were already requested; "
                "waiting for a new submission.",
                already_done=True,
                milestone_number=target.number,
            )
        if milestone_id is not None:
            shown = milestone_by_id(contract, milestone_id)
            if shown is not milestone or shown.status != MilestoneStatus.SUBMITTED:
                raise InvalidTransition(
                    f"Milestone {shown.number} is {shown.status.value}, not waiting for review."
                )
        if milestone is None or milestone.status != MilestoneStatus.SUBMITTED:
            raise InvalidTransition("There is no submitted work to send back.")
        milestone.send_back(at=now, note=clean_note)
        reminders.on_review_closed(tx.reminders, milestone)
        tx.event(
            EventKind.CHANGES_REQUESTED,
            actor_id,
            milestone_number=milestone.number,
            note=clean_note,
        )
        tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
        tx.changed()
        return tx.outcome(
            f"Asked for changes to milestone {milestone.number}; the review clock stopped.",
            milestone_number=milestone.number,
        )


def auto_release(
    session: Session, *, milestone_id: int, now: datetime, policy: Policy = DEFAULT_POLICY
) -> Outcome:
    """Release submitted work whose review period ran out. Safe to call any number of
    times from any number of processes: eligibility is re-checked under the lock."""
    [outcome] = _release_due(
        session, Milestone.id == milestone_id, now=now, policy=policy, limit=1, one=milestone_id
    )
    return outcome


def release_due(
    session: Session, *, now: datetime, policy: Policy = DEFAULT_POLICY, limit: int = 50
) -> list[Outcome]:
    """Release up to `limit` submitted milestones whose review period ran out, in one
    transaction; what was released (none: nothing more is due, or others hold it).

    Their contracts are claimed `FOR UPDATE SKIP LOCKED`: several processes sweeping at
    once each take different ones, and a contract a click is changing is left to a
    later sweep. Each is re-checked under its lock and released through the step an
    approval uses, `release`."""
    return _release_due(session, _DUE_FOR_RELEASE(now), now=now, policy=policy, limit=limit)


def _DUE_FOR_RELEASE(now: datetime) -> ColumnElement[bool]:  # noqa: N802 - reads as a name
    return and_(Milestone.status == MilestoneStatus.SUBMITTED, Milestone.auto_release_at <= now)


def _release_due(
    session: Session,
    which: ColumnElement[bool],
    *,
    now: datetime,
    policy: Policy,
    limit: int,
    one: int | None = None,
) -> list[Outcome]:
    """Release the milestones `which` selects (at most `limit`); with `one` (a
    milestone id), its outcome also when it is not due or its contract is busy."""
    with write_transaction(session):
        claimed = list(
            session.scalars(
                select(Contract.id)
                .join(Milestone, Milestone.contract_id == Contract.id)
                .where(which)
                .order_by(Milestone.auto_release_at, Milestone.id)
                .limit(limit)
                .with_for_update(of=Contract, skip_locked=True)
            )
        )
        if not claimed:
            if one is None:
                return []
            contract_id = contract_id_of_milestone(session, one)  # NotFound if there is none
            busy = said("The contract is busy; will retry.")
            return [Outcome(contract_id, busy, already_done=True)]
        contracts = list(
            session.scalars(
                select(Contract)
                .where(Contract.id.in_(claimed))
                .options(selectinload(Contract.parties), selectinload(Contract.milestones))
                .order_by(Contract.id)
                .execution_options(populate_existing=True)
            )
        )
        due = {
            contract.id: next(
                (
                    m
                    for m in contract.milestones
                    if (one is None or m.id == one)
                    and m.status == MilestoneStatus.SUBMITTED
                    and m.auto_release_at is not None
                    and m.auto_release_at <= now
                    and contract.status == ContractStatus.ACTIVE
                ),
                None,
            )
            for contract in contracts
        }
        releasing = [m for m in due.values() if m is not None]
        pending = pending_requests_of(session, [m.contract_id for m in releasing])
        held = ledger.held_for_milestones(session, [m.id for m in releasing])
        writes = Writes(session, now)
        released: list[tuple[Contract, Milestone, int]] = []
        for contract in contracts:
            milestone = due[contract.id]
            if milestone is None:
                continue
            tx = Tx(session, contract, now, writes)
            amount = release(
                tx,
                milestone,
                actor=SYSTEM_ACTOR,
                automatic=True,
                policy=policy,
                pending=pending.get(contract.id, []),
                held=held.get(milestone.id, 0),
            )
            released.append((contract, milestone, amount))
        written = writes.write()
        outcomes = [
            Outcome(
                contract.id,
                said(
                    f"Released milestone {milestone.number} automatically: "
                    f"{money(contract, amount)}. {money_note(RELEASED_NOTE, policy)}"
                ),
                milestone_number=milestone.number,
                outbox_ids=tuple(written.get(contract.id, ())),
            )
            for contract, milestone, amount in released
        ]
        if one is not None and not released:
            [contract] = contracts
            milestone = milestone_by_id(contract, one)
            outcomes = [
                Outcome(
                    contract.id,
                    said(f"Milestone {milestone.number} is not due for automatic release."),
                    already_done=True,
                    milestone_number=milestone.number,
                )
            ]
        return outcomes
