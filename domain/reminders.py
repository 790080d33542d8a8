"""Reminders as data: when each nudge is due, who gets it, and whether it still matters.

The services call the `on_*` hooks inside their own transaction, which collect the
changes (`Changes`) and write them with the rest of it, so a clock starts (or stops)
with the change that caused it. The sweep calls `send_due`, which re-checks
every reminder under the contract's lock, shifts it into the recipient's working hours
(never past the deadline it warns about), collapses slots overtaken during downtime,
and queues an outbox intent to post it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from domain import notify
from domain.db import is_postgres, write_transaction
from domain.errors import NotFound
from domain.model import (
    ChangeRequest,
    Contract,
    ContractStatus,
    IntentKind,
    Milestone,
    MilestoneStatus,
    OutboxMessage,
    OutboxState,
    Reminder,
    ReminderKind,
    ReminderState,
    RequestStatus,
)
from domain.policy import Policy
from domain.rules import answering_ids
from domain.waiting import WaitingKind

log = logging.getLogger(__name__)


_REMINDER = cast(Table, Reminder.__table__)

TimeZoneOf = Callable[[str], str | None]
"""The IANA time zone of a person (from their chat profile), or None if unknown."""


# --- scheduling (inside the caller's transaction) ------------------------------------


class Changes:
    """What one transaction does to reminders, written together by `write`: one UPDATE
    for every cancellation and one INSERT for every new reminder, instead of a
    statement or two per hook.

    The rows end as if each hook had written at once: a reminder whose key exists
    already is not scheduled again (the unique key: `ON CONFLICT DO NOTHING`), and a
    cancellation also cancels what this transaction scheduled before it (but not what
    it schedules after it).
    """

    def __init__(self) -> None:
        self._cancelled: dict[ReminderKind, set[int]] = {}
        self._ended: set[int] = set()  # contracts whose every pending reminder ends
        self._new: dict[str, dict[str, Any]] = {}  # by key, in the order scheduled
        self._awaiting: list[notify.Awaiting] = []  # who now owes what (domain.notify)

    def awaits(
        self, contract: Contract, user_id: str, kind: WaitingKind, *, subject_id: int
    ) -> None:
        """`user_id` now owes `kind` on `subject_id` (a request or milestone): told in a
        direct message too if they chose so, by the transaction's writer (domain.notify)."""
        self._awaiting.append(
            notify.Awaiting(contract.id, contract.team_id, user_id, kind, subject_id)
        )

    def take_awaiting(self) -> list[notify.Awaiting]:
        """What `awaits` collected, once (the writer turns it into direct messages)."""
        taken, self._awaiting = self._awaiting, []
        return taken

    def schedule(
        self,
        *,
        contract_id: int,
        kind: ReminderKind,
        subject_id: int,
        slot: int,
        recipient_id: str,
        due_at: datetime,
        now: datetime,
        deadline_at: datetime | None = None,
        key_extra: str = "",
    ) -> None:
        key = f"{kind.value}:{subject_id}:{key_extra}{slot}:{recipient_id}"
        self._new.setdefault(
            key,
            {
                "contract_id": contract_id,
                "kind": kind,
                "subject_id": subject_id,
                "slot": slot,
                "recipient_id": recipient_id,
                "due_at": due_at,
                "deadline_at": deadline_at,
                "not_before": None,
                "state": ReminderState.PENDING,
                "key": key,
                "created_at": now,
                "sent_at": None,
            },
        )

    def cancel(self, kind: ReminderKind, *subject_ids: int) -> None:
        if not subject_ids:
            return
        self._cancelled.setdefault(kind, set()).update(subject_ids)
        for row in self._new.values():
            if row["kind"] == kind and row["subject_id"] in subject_ids:
                row["state"] = ReminderState.CANCELLED

    def end_contract(self, contract_id: int) -> None:
        self._ended.add(contract_id)
        self._awaiting = [a for a in self._awaiting if a.contract_id != contract_id]
        for row in self._new.values():
            if row["contract_id"] == contract_id:
                row["state"] = ReminderState.CANCELLED

    def write(self, session: Session) -> None:
        """Cancel first (rows that existed before the transaction), then insert."""
        pending = Reminder.state == ReminderState.PENDING
        if self._ended:
            session.execute(
                update(Reminder)
                .where(Reminder.contract_id.in_(sorted(self._ended)), pending)
                .values(state=ReminderState.CANCELLED)
                .execution_options(synchronize_session=False)
            )
        if self._cancelled:
            session.execute(
                update(Reminder)
                .where(
                    or_(
                        *(
                            and_(Reminder.kind == kind, Reminder.subject_id.in_(sorted(ids)))
                            for kind, ids in self._cancelled.items()
                        )
                    ),
                    pending,
                )
                .values(state=ReminderState.CANCELLED)
                .execution_options(synchronize_session=False)
            )
        if self._new:
            insert = postgresql.insert if is_postgres(session) else sqlite.insert
            session.execute(
                insert(_REMINDER).on_conflict_do_nothing(index_elements=["key"]),
                list(self._new.values()),
            )
        self._cancelled, self._ended, self._new = {}, set(), {}


def on_request_proposed(
    changes: Changes, contract: Contract, request: ChangeRequest, *, now: datetime, policy: Policy
) -> None:
    """Nudge whoever answers it: the client, or for the client's counter-offer the
    provider side (the freelancer, or each agency manager)."""
    for recipient_id in answering_ids(contract, request.proposed_by):
        changes.schedule(
            contract_id=contract.id,
            kind=ReminderKind.REQUEST,
            subject_id=request.id,
            slot=1,
            recipient_id=recipient_id,
            due_at=now + policy.request_reminder_first,
            now=now,
        )
    for decider in answering_ids(contract, request.proposed_by):
        changes.awaits(contract, decider, WaitingKind.ANSWER_REQUEST, subject_id=request.id)


def on_request_closed(changes: Changes, request: ChangeRequest) -> None:
    changes.cancel(ReminderKind.REQUEST, request.id)


def on_work_submitted(
    changes: Changes, contract: Contract, milestone: Milestone, *, now: datetime, policy: Policy
) -> None:
    release_at = milestone.auto_release_at
    assert release_at is not None
    changes.awaits(contract, contract.client_id, WaitingKind.REVIEW, subject_id=milestone.id)
    for slot, before in enumerate(sorted(policy.review_reminders_before, reverse=True), start=1):
        if before >= policy.auto_release_period:
            continue  # a "7 days before" reminder makes no sense in a shorter review period
        changes.schedule(
            contract_id=contract.id,
            kind=ReminderKind.REVIEW,
            subject_id=milestone.id,
            slot=slot,
            recipient_id=contract.client_id,
            due_at=release_at - before,
            deadline_at=release_at,
            now=now,
            key_extra=f"s{milestone.submission_count}-",
        )


def on_review_closed(changes: Changes, milestone: Milestone) -> None:
    changes.cancel(ReminderKind.REVIEW, milestone.id)


def on_more_time_asked(changes: Changes, contract: Contract, milestone: Milestone) -> None:
    """The client asks for more time to review: the provider side owes the answer."""
    for provider in contract.provider_ids:
        changes.awaits(contract, provider, WaitingKind.EXTENSION_ASK, subject_id=milestone.id)


def on_review_extended(
    changes: Changes, contract: Contract, milestone: Milestone, *, now: datetime, policy: Policy
) -> None:
    """The provider gave more time to review: the reminders before the automatic release
    follow the new date (a slot already past from now is left out)."""
    release_at = milestone.auto_release_at
    assert release_at is not None
    on_review_closed(changes, milestone)
    for slot, before in enumerate(sorted(policy.review_reminders_before, reverse=True), start=1):
        if release_at - before <= now:
            continue
        changes.schedule(
            contract_id=contract.id,
            kind=ReminderKind.REVIEW,
            subject_id=milestone.id,
            slot=slot,
            recipient_id=contract.client_id,
            due_at=release_at - before,
            deadline_at=release_at,
            now=now,
            key_extra=f"s{milestone.submission_count}@{int(release_at.timestamp())}-",
        )


def on_milestone_funded(
    changes: Changes, contract: Contract, milestone: Milestone, *, now: datetime
) -> None:
    changes.cancel(ReminderKind.FUND, *(other.id for other in contract.milestones))
    _schedule_overdue(changes, contract, milestone, now=now)


def on_due_date_changed(
    changes: Changes, contract: Contract, milestone: Milestone, *, now: datetime
) -> None:
    """An accepted change moved a funded milestone's due date: the nudge moves with it."""
    if milestone.status != MilestoneStatus.FUNDED:
        return
    changes.cancel(ReminderKind.OVERDUE, milestone.id)
    _schedule_overdue(changes, contract, milestone, now=now)


def _schedule_overdue(
    changes: Changes, contract: Contract, milestone: Milestone, *, now: datetime
) -> None:
    overdue_at = _overdue_at(milestone.due_date)
    for slot, recipient in enumerate([contract.client_id, *contract.provider_ids], start=1):
        changes.schedule(
            contract_id=contract.id,
            kind=ReminderKind.OVERDUE,
            subject_id=milestone.id,
            slot=slot,
            recipient_id=recipient,
            due_at=max(overdue_at, now),
            now=now,
            key_extra=f"{milestone.due_date.isoformat()}@{int(now.timestamp())}-",
        )


def _overdue_at(due_date: date) -> datetime:
    return datetime.combine(due_date + timedelta(days=1), time(0), tzinfo=UTC)


def on_milestone_released(
    changes: Changes, contract: Contract, milestone: Milestone, *, now: datetime, policy: Policy
) -> None:
    on_review_closed(changes, milestone)
    changes.cancel(ReminderKind.OVERDUE, milestone.id)
    upcoming = contract.next_to_fund
    if upcoming is not None and contract.status == ContractStatus.ACTIVE:
        changes.schedule(
            contract_id=contract.id,
            kind=ReminderKind.FUND,
            subject_id=upcoming.id,
            slot=1,
            recipient_id=contract.client_id,
            due_at=now + policy.fund_reminder_after,
            now=now,
            key_extra=f"after{milestone.id}-",
        )
        changes.awaits(contract, contract.client_id, WaitingKind.FUND, subject_id=upcoming.id)


def on_contract_activated(changes: Changes, contract: Contract) -> None:
    """Both sides agreed: the client's first step is funding milestone 1."""
    upcoming = contract.next_to_fund
    if upcoming is not None:
        changes.awaits(contract, contract.client_id, WaitingKind.FUND, subject_id=upcoming.id)


def on_contract_ended(changes: Changes, contract: Contract) -> None:
    changes.end_contract(contract.id)


def on_dispute_opened(
    changes: Changes, contract: Contract, milestone: Milestone, *, now: datetime, policy: Policy
) -> None:
    """A dispute froze the milestone's escrow: review and due-date nudges stop, and both
    sides are reminded of the dispute every few days until it is settled."""
    on_review_closed(changes, milestone)
    changes.cancel(ReminderKind.OVERDUE, milestone.id)
    for recipient in [contract.client_id, *contract.provider_ids]:
        changes.schedule(
            contract_id=contract.id,
            kind=ReminderKind.DISPUTE,
            subject_id=milestone.id,
            slot=1,
            recipient_id=recipient,
            due_at=now + policy.dispute_reminder_every,
            now=now,
        )


def on_dispute_settled(changes: Changes, milestone: Milestone) -> None:
    changes.cancel(ReminderKind.DISPUTE, milestone.id)


# --- working hours -------------------------------------------------------------------


def within_working_hours(
    instant: datetime,
    tz_name: str | None,
    hours: tuple[time, time],
    *,
    deadline: datetime | None = None,
) -> datetime:
    """The first moment at or after `instant` inside Mon–Fri `hours` in `tz_name`.

    Never later than an hour before `deadline` (nor earlier than `instant`): a warning
    that arrives after the thing it warns about is useless.
    """
    try:
        zone = ZoneInfo(tz_name) if tz_name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    start, end = hours
    local = instant.astimezone(zone)
    day: date = local.date()
    candidate = local
    for _ in range(8):
        opens = datetime.combine(day, start, tzinfo=zone)
        closes = datetime.combine(day, end, tzinfo=zone)
        if day.weekday() < 5:
            if candidate < opens:
                candidate = opens
                break
            if candidate < closes:
                break
        day += timedelta(days=1)
        candidate = datetime.combine(day, start, tzinfo=zone)
    shifted = candidate.astimezone(UTC)
    if deadline is not None and shifted >= deadline:
        return max(instant, deadline - timedelta(hours=1))
    return shifted


# --- the sweep ------------------------------------------------------------------------


def due(session: Session, *, now: datetime, limit: int = 100) -> list[tuple[int, str]]:
    """(reminder id, recipient) of pending reminders whose time has come."""
    with session.begin():
        rows = session.execute(
            select(Reminder.id, Reminder.recipient_id)
            .where(
                Reminder.state == ReminderState.PENDING,
                Reminder.due_at <= now,
                (Reminder.not_before.is_(None)) | (Reminder.not_before <= now),
            )
            .order_by(Reminder.due_at, Reminder.id)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in rows]


def send_due(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    time_zone_of: TimeZoneOf,
    policy: Policy,
    limit: int = 100,
) -> list[int]:
    """Queue every reminder that is due and still matters; returns the outbox ids."""
    with sessions() as session:
        batch = due(session, now=now, limit=limit)
    zones: dict[str, str | None] = {}
    queued: list[int] = []
    for reminder_id, recipient in batch:
        if recipient not in zones:
            zones[recipient] = time_zone_of(recipient)
        with sessions() as session:
            queued += _send_one(
                session, reminder_id, now=now, tz_name=zones[recipient], policy=policy
            )
    return queued


def _send_one(
    session: Session, reminder_id: int, *, now: datetime, tz_name: str | None, policy: Policy
) -> list[int]:
    with write_transaction(session):
        contract_id = session.scalar(select(Reminder.contract_id).where(Reminder.id == reminder_id))
        if contract_id is None:
            return []
        lock = (
            select(Contract.team_id, Contract.channel_id)
            .where(Contract.id == contract_id)
            .with_for_update(skip_locked=is_postgres(session))
        )
        where = session.execute(lock).one_or_none()
        if where is None:
            return []  # another sweeper is working on this contract; it will see this one
        reminder = session.get_one(Reminder, reminder_id, populate_existing=True)
        if reminder.state != ReminderState.PENDING:
            return []
        if not _still_relevant(session, reminder, now):
            reminder.state = ReminderState.CANCELLED
            return []
        if _overtaken(session, reminder, now):
            reminder.state = ReminderState.SKIPPED
            return []
        if reminder.kind == ReminderKind.OVERDUE:
            overdue_at = _overdue_at(session.get_one(Milestone, reminder.subject_id).due_date)
            if overdue_at > now:  # the due date was moved later: wait for the new one
                reminder.due_at = overdue_at
                reminder.not_before = None
                return []
        # From now, not from the original time: a reminder missed while the bot was down
        # still goes out in the recipient's working hours.
        at = within_working_hours(
            max(reminder.due_at, now), tz_name, policy.working_hours, deadline=reminder.deadline_at
        )
        if at > now:
            reminder.not_before = at
            return []
        reminder.state = ReminderState.SENT
        reminder.sent_at = now
        if reminder.kind in (ReminderKind.REQUEST, ReminderKind.DISPUTE):
            _schedule_next_request_nudge(session, reminder, now=now, policy=policy)
        # In the thread, and in their direct messages, as the recipient chose (domain.notify).
        choice = notify.choice_of(session, reminder.recipient_id)
        kinds = [IntentKind.REMINDER] if choice in notify.IN_THREAD else []
        if choice in notify.DIRECT:
            kinds.append(IntentKind.DIRECT_REMINDER)
        messages = [
            OutboxMessage(
                kind=kind,
                contract_id=reminder.contract_id,
                subject_id=reminder.id,
                user_id=reminder.recipient_id,
                team_id=where.team_id,
                channel_id=where.channel_id if kind == IntentKind.REMINDER else None,
                created_at=now,
                next_attempt_at=now,
                attempts=0,
                state=OutboxState.PENDING,
            )
            for kind in kinds
        ]
        session.add_all(messages)
        session.flush()
        return [message.id for message in messages]


def _schedule_next_request_nudge(
    session: Session, reminder: Reminder, *, now: datetime, policy: Policy
) -> None:
    """Every `request_reminder_every` after the first (a dispute's: every
    `dispute_reminder_every`); slots missed while down collapse."""
    dispute = reminder.kind == ReminderKind.DISPUTE
    every = policy.dispute_reminder_every if dispute else policy.request_reminder_every
    next_due = reminder.due_at + every
    slot = reminder.slot + 1
    while next_due <= now:
        next_due += every
        slot += 1
    changes = Changes()
    changes.schedule(
        contract_id=reminder.contract_id,
        kind=reminder.kind,
        subject_id=reminder.subject_id,
        slot=slot,
        recipient_id=reminder.recipient_id,
        due_at=next_due,
        now=now,
    )
    changes.write(session)


def _still_relevant(session: Session, reminder: Reminder, now: datetime) -> bool:
    contract = session.get_one(Contract, reminder.contract_id)
    if reminder.kind == ReminderKind.DISPUTE:  # open while the contract is ending, too
        disputed = session.get(Milestone, reminder.subject_id)
        return disputed is not None and disputed.status == MilestoneStatus.DISPUTED
    if contract.status != ContractStatus.ACTIVE:
        return False
    if reminder.kind == ReminderKind.REQUEST:
        request = session.get(ChangeRequest, reminder.subject_id)
        return request is not None and request.status == RequestStatus.PENDING
    milestone = session.get(Milestone, reminder.subject_id)
    if milestone is None:
        return False
    if reminder.kind == ReminderKind.REVIEW:
        return (
            milestone.status == MilestoneStatus.SUBMITTED
            and milestone.auto_release_at == reminder.deadline_at
            and (reminder.deadline_at is None or reminder.deadline_at > now)
        )
    if reminder.kind == ReminderKind.FUND:
        in_progress = session.scalar(
            select(Milestone.id).where(
                Milestone.contract_id == contract.id,
                Milestone.status.in_([MilestoneStatus.FUNDED, MilestoneStatus.SUBMITTED]),
            )
        )
        return milestone.status == MilestoneStatus.PENDING and in_progress is None
    return milestone.status == MilestoneStatus.FUNDED  # OVERDUE


def _overtaken(session: Session, reminder: Reminder, now: datetime) -> bool:
    """A later slot of the same subject and recipient is also due: send only that one."""
    later = session.scalar(
        select(Reminder.id).where(
            Reminder.kind == reminder.kind,
            Reminder.subject_id == reminder.subject_id,
            Reminder.recipient_id == reminder.recipient_id,
            Reminder.state == ReminderState.PENDING,
            Reminder.slot > reminder.slot,
            Reminder.due_at <= now,
        )
    )
    return later is not None


def still_open(session: Session, reminder: Reminder, *, now: datetime) -> bool:
    """Whether what a queued reminder is about still waits for an answer (checked again
    at send time: a nudge delayed by Slack must not arrive after the answer)."""
    return _still_relevant(session, reminder, now)


def load(session: Session, reminder_id: int) -> Reminder:
    reminder = session.get(Reminder, reminder_id)
    if reminder is None:
        raise NotFound(f"There is no reminder {reminder_id}.")
    return reminder
