"""Reminder changes collected in a transaction end as if each had been written at once.

The services' hooks collect what they do to reminders (`reminders.Changes`) and write
it at the end of the transaction in one UPDATE and one INSERT: a cancellation still
cancels what was scheduled before it in the same transaction and not what comes
after it, and a reminder whose key exists is not written twice.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import reminders
from domain.db import read_transaction, write_transaction
from domain.model import Reminder, ReminderKind, ReminderState
from tests.factories import CLIENT, FREELANCER, NOW, new_contract

HOUR = timedelta(hours=1)


def schedule(changes: reminders.Changes, contract_id: int, subject_id: int, slot: int = 1) -> None:
    changes.schedule(
        contract_id=contract_id,
        kind=ReminderKind.REQUEST,
        subject_id=subject_id,
        slot=slot,
        recipient_id=CLIENT,
        due_at=NOW + HOUR,
        now=NOW,
    )


def write(session: Session, changes: reminders.Changes) -> None:
    with write_transaction(session):
        changes.write(session)


def states(session: Session) -> dict[tuple[int, int], str]:
    """(subject, slot) -> state."""
    with read_transaction(session):
        rows = session.execute(select(Reminder.subject_id, Reminder.slot, Reminder.state))
        return {(subject, slot): state for subject, slot, state in rows}


def test_a_reminder_scheduled_then_cancelled_in_one_transaction_is_written_cancelled(
    session: Session,
) -> None:
    contract_id = new_contract(session)
    changes = reminders.Changes()
    schedule(changes, contract_id, 7)
    changes.cancel(ReminderKind.REQUEST, 7)
    schedule(changes, contract_id, 7, slot=2)  # after the cancellation: stays pending
    schedule(changes, contract_id, 8)
    write(session, changes)

    assert states(session) == {
        (7, 1): ReminderState.CANCELLED,
        (7, 2): ReminderState.PENDING,
        (8, 1): ReminderState.PENDING,
    }


def test_a_cancellation_reaches_reminders_written_by_earlier_transactions(
    session: Session,
) -> None:
    contract_id = new_contract(session)
    first = reminders.Changes()
    schedule(first, contract_id, 7)
    schedule(first, contract_id, 8)
    write(session, first)

    then = reminders.Changes()
    then.cancel(ReminderKind.REQUEST, 7)
    then.cancel(ReminderKind.REVIEW, 8)  # another kind: not the request's nudge
    write(session, then)

    assert states(session) == {(7, 1): ReminderState.CANCELLED, (8, 1): ReminderState.PENDING}


def test_a_reminder_whose_key_exists_is_not_written_again(session: Session) -> None:
    contract_id = new_contract(session)
    first = reminders.Changes()
    schedule(first, contract_id, 7)
    first.cancel(ReminderKind.REQUEST, 7)
    write(session, first)

    again = reminders.Changes()
    schedule(again, contract_id, 7)  # the same key: the cancelled row stays as it is
    schedule(again, contract_id, 7)
    write(session, again)

    with read_transaction(session):
        rows = session.scalars(select(Reminder)).all()
        assert [(r.subject_id, r.state) for r in rows] == [(7, ReminderState.CANCELLED)]


def test_ending_a_contract_cancels_its_reminders_old_and_new_but_no_others(
    session: Session,
) -> None:
    ended = new_contract(session)
    other = new_contract(session, creator=FREELANCER)
    first = reminders.Changes()
    schedule(first, ended, 7)
    schedule(first, other, 8)
    write(session, first)

    changes = reminders.Changes()
    schedule(changes, ended, 9)
    changes.end_contract(ended)
    write(session, changes)

    assert states(session) == {
        (7, 1): ReminderState.CANCELLED,
        (8, 1): ReminderState.PENDING,
        (9, 1): ReminderState.CANCELLED,
    }
