"""Helpers for the scheduler tests: reminder rows, outbox intents, sweeps, bulk seeding.

Every read runs in its own short transaction and leaves the session idle, because the
services and sweeps own their transactions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from domain import queries, reminders
from domain.db import read_transaction, write_transaction
from domain.model import (
    Contract,
    Event,
    LedgerEntry,
    LedgerKind,
    Milestone,
    OutboxMessage,
    Party,
    Reminder,
    ReminderKind,
    ReminderState,
)
from domain.policy import DEFAULT_POLICY, Policy


@dataclass(frozen=True)
class Row:
    """A reminder as the tests look at it."""

    kind: ReminderKind
    subject_id: int
    slot: int
    recipient_id: str
    due_at: datetime
    deadline_at: datetime | None
    not_before: datetime | None
    state: str


def reminder_rows(
    session: Session, *, kind: ReminderKind | None = None, state: str | None = None
) -> list[Row]:
    with read_transaction(session):
        query = select(Reminder).order_by(Reminder.due_at, Reminder.id)
        if kind is not None:
            query = query.where(Reminder.kind == kind)
        if state is not None:
            query = query.where(Reminder.state == state)
        return [
            Row(
                r.kind,
                r.subject_id,
                r.slot,
                r.recipient_id,
                r.due_at,
                r.deadline_at,
                r.not_before,
                r.state,
            )
            for r in session.scalars(query)
        ]


def pending(session: Session, kind: ReminderKind | None = None) -> list[Row]:
    return reminder_rows(session, kind=kind, state=ReminderState.PENDING)


def sent(session: Session, kind: ReminderKind | None = None) -> list[Row]:
    return reminder_rows(session, kind=kind, state=ReminderState.SENT)


def reminder_intents(session: Session) -> list[OutboxMessage]:
    """The `reminder` outbox intents, oldest first."""
    with read_transaction(session):
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "reminder")
                .order_by(OutboxMessage.id)
            )
        )


def send_due(
    sessions: sessionmaker[Session],
    now: datetime,
    *,
    zones: Mapping[str, str] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> list[int]:
    """`reminders.send_due` with recipients' time zones from `zones` (UTC if unlisted):
    the ids of the thread replies it queued. (A recipient who chose `dm` or `both`, the
    default, also gets each reminder in a direct message: tests/services/test_notify.py.)"""
    known = dict(zones or {})
    queued = reminders.send_due(sessions, now=now, time_zone_of=known.get, policy=policy)
    with sessions() as session, read_transaction(session):
        in_thread = set(
            session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.id.in_(queued), OutboxMessage.kind == "reminder"
                )
            )
        )
    return [outbox_id for outbox_id in queued if outbox_id in in_thread]


def milestone_id(session: Session, contract_id: int, number: int = 1) -> int:
    with read_transaction(session):
        found = session.scalar(
            select(Milestone.id).where(
                Milestone.contract_id == contract_id, Milestone.number == number
            )
        )
        assert found is not None, f"contract {contract_id} has no milestone {number}"
        return found


def releases_per_milestone(session: Session) -> dict[int, int]:
    """Milestone id -> number of `release` ledger entries."""
    with read_transaction(session):
        rows = session.execute(
            select(LedgerEntry.milestone_id, func.count())
            .where(LedgerEntry.kind == LedgerKind.RELEASE)
            .group_by(LedgerEntry.milestone_id)
        )
        return {int(milestone): int(n) for milestone, n in rows}


def release_events(session: Session) -> list[Event]:
    with read_transaction(session):
        return list(
            session.scalars(
                select(Event).where(Event.kind == "milestone_released").order_by(Event.id)
            )
        )


def announcements_per_event(session: Session) -> dict[int, int]:
    """Event id -> number of `announce` outbox intents naming it."""
    with read_transaction(session):
        rows = session.execute(
            select(OutboxMessage.subject_id, func.count())
            .where(OutboxMessage.kind == "announce")
            .group_by(OutboxMessage.subject_id)
        )
        return {int(subject): n for subject, n in rows if subject is not None}


# --- bulk seeding ---------------------------------------------------------------------


def clone_contract(session: Session, template_id: int, copies: int) -> list[int]:
    """`copies` copies of a contract made through the services, in one transaction.

    Creating hundreds of contracts through the services takes ~100 ms each on
    PostgreSQL; copying the rows the services wrote (contract, parties, milestones,
    ledger, history, reminders) with fresh ids and business keys gives the same state
    in well under a second. Returns the new contracts' ids.
    """
    with write_transaction(session):
        contract = _rows(session, Contract.__table__, Contract.id == template_id)[0]
        parties = _rows(session, Party.__table__, Party.contract_id == template_id)
        milestones = _rows(session, Milestone.__table__, Milestone.contract_id == template_id)
        ledger = _rows(session, LedgerEntry.__table__, LedgerEntry.contract_id == template_id)
        history = _rows(session, Event.__table__, Event.contract_id == template_id)
        nudges = _rows(session, Reminder.__table__, Reminder.contract_id == template_id)
        made: list[int] = []
        for _ in range(copies):
            new_id = _insert(session, Contract.__table__, contract, {})
            made.append(new_id)
            for party in parties:
                _insert(session, Party.__table__, party, {"contract_id": new_id})
            milestone_ids = {
                m["id"]: _insert(session, Milestone.__table__, m, {"contract_id": new_id})
                for m in milestones
            }
            for entry in ledger:
                new_milestone = milestone_ids[entry["milestone_id"]]
                kind = LedgerKind(entry["kind"]).value
                _insert(
                    session,
                    LedgerEntry.__table__,
                    entry,
                    {
                        "contract_id": new_id,
                        "milestone_id": new_milestone,
                        "key": f"{kind}:{new_milestone}",
                    },
                )
            for event in history:
                _insert(session, Event.__table__, event, {"contract_id": new_id})
            for nudge in nudges:
                subject = milestone_ids.get(nudge["subject_id"], nudge["subject_id"])
                _insert(
                    session,
                    Reminder.__table__,
                    nudge,
                    {
                        "contract_id": new_id,
                        "subject_id": subject,
                        "key": f"{nudge['key']}#{new_id}",
                    },
                )
        return made


def _rows(session: Session, table: Any, where: Any) -> list[dict[str, Any]]:
    query = select(table).where(where).order_by(table.c.id)
    return [dict(row._mapping) for row in session.execute(query)]


def _insert(
    session: Session, table: Any, row: Mapping[str, Any], changes: Mapping[str, Any]
) -> int:
    values = {k: v for k, v in row.items() if k != "id"} | dict(changes)
    return int(session.execute(insert(table).values(values).returning(table.c.id)).scalar_one())


def submitted_milestones(session: Session, contract_ids: Sequence[int]) -> list[int]:
    with read_transaction(session):
        return list(
            session.scalars(
                select(Milestone.id).where(
                    Milestone.contract_id.in_(contract_ids),
                    Milestone.status == "submitted",
                )
            )
        )


def sweep_until_done(
    sessions: sessionmaker[Session], now: datetime, *, policy: Policy = DEFAULT_POLICY
) -> int:
    """Sweep until nothing is due (a contract skipped as busy is retried); how many released."""
    from scheduler.jobs import sweep_auto_releases

    released = 0
    for _ in range(1000):
        released += sweep_auto_releases(sessions, now, lambda ids: None, policy=policy)
        with sessions() as session:
            if not queries.due_auto_releases(session, now=now, limit=1):
                return released
    raise AssertionError("automatic releases never finished")
