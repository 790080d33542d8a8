"""The outbox: claiming, retrying and completing intents; where cards live.

Delivery is at-least-once. A sender claims a row by pushing its `next_attempt_at`
forward by a lease in a guarded UPDATE (one winner, on every database, without
holding a transaction open during the network call), sends, then marks it sent.
A sender that dies mid-send loses its lease and the row is tried again. A batch of
intents is claimed in one statement (`claim_many`) and marked sent in one
(`mark_sent_many`); a sender whose batch outlasts half the lease renews each claim
(`renew`) before sending, so it never sends what another sender has taken over.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.db import read_transaction, write_transaction
from domain.model import MessageRef, OutboxMessage

PENDING = "pending"
SENT = "sent"
DEAD = "dead"


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    contract_id: int | None
    subject_id: int | None
    user_id: str | None
    attempts: int
    lease_until: datetime | None = None  # the claim's `next_attempt_at`: whose it is


_CLAIMED_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.kind,
    OutboxMessage.contract_id,
    OutboxMessage.subject_id,
    OutboxMessage.user_id,
    OutboxMessage.attempts,
)


def due_ids(session: Session, *, now: datetime, limit: int = 50) -> list[int]:
    with session.begin():
        return list(
            session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.state == PENDING, OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            )
        )


def claim(session: Session, outbox_id: int, *, now: datetime, lease: timedelta) -> Claimed | None:
    # Claims, completions and retries need no flush to disk before going on: delivery is
    # at-least-once, and one lost in a database crash only means a message sent again.
    with write_transaction(session, durable=False):
        row = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == outbox_id,
                OutboxMessage.state == PENDING,
                OutboxMessage.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + lease, attempts=OutboxMessage.attempts + 1)
            .returning(*_CLAIMED_COLUMNS)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if row is None:
            return None
        return Claimed(*row, lease_until=now + lease)


def claim_many(
    session: Session, ids: Sequence[int], *, now: datetime, lease: timedelta
) -> list[Claimed]:
    """Claim those of `ids` that are due and nobody holds, in one statement; the claims
    come back in the order of `ids`.

    The rows are locked in id order first (PostgreSQL), so two senders claiming
    overlapping batches queue behind each other instead of deadlocking; the one that
    waited finds the rows claimed and leaves them.
    """
    if not ids:
        return []
    claimable = (
        OutboxMessage.state == PENDING,
        OutboxMessage.next_attempt_at <= now,
    )
    locked = (
        select(OutboxMessage.id)
        .where(OutboxMessage.id.in_(ids), *claimable)
        .order_by(OutboxMessage.id)
        .with_for_update()
    )
    with write_transaction(session, durable=False):
        rows = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(locked.scalar_subquery()), *claimable)
            .values(next_attempt_at=now + lease, attempts=OutboxMessage.attempts + 1)
            .returning(*_CLAIMED_COLUMNS)
            .execution_options(synchronize_session=False)
        ).all()
    by_id = {row.id: Claimed(*row, lease_until=now + lease) for row in rows}
    return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]


def renew(session: Session, claimed: Claimed, *, now: datetime, lease: timedelta) -> Claimed | None:
    """Extend a claim that is still this sender's; None if its lease ran out and another
    sender has claimed the row since (or it is no longer pending)."""
    with write_transaction(session, durable=False):
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == claimed.id,
                OutboxMessage.state == PENDING,
                OutboxMessage.attempts == claimed.attempts,
                OutboxMessage.next_attempt_at == claimed.lease_until,
            )
            .values(next_attempt_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
    return replace(claimed, lease_until=now + lease)


def unclaim(session: Session, ids: Collection[int], *, now: datetime) -> None:
    """Give back claims that were never attempted (their batch stopped early): due now,
    and the attempt `claim_many` counted is returned."""
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.state == PENDING)
            .values(next_attempt_at=now, attempts=OutboxMessage.attempts - 1)
            .execution_options(synchronize_session=False)
        )


def mark_sent_many(session: Session, ids: Collection[int], *, now: datetime) -> None:
    """These were delivered: done, in one statement."""
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(state=SENT, sent_at=now, last_error=None)
            .execution_options(synchronize_session=False)
        )


def retry_later(
    session: Session,
    outbox_id: int,
    *,
    at: datetime,
    error: str,
    dead: bool = False,
    count_attempt: bool = True,
) -> None:
    """`count_attempt=False`: the send was only deferred (rate limit, card not posted
    yet), so the attempt `claim` counted is given back and never leads to a dead letter."""
    attempts = OutboxMessage.attempts if count_attempt else OutboxMessage.attempts - 1
    with write_transaction(session, durable=False):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .values(
                state=DEAD if dead else PENDING,
                next_attempt_at=at,
                last_error=error[:2000],
                attempts=attempts,
            )
        )


def requeue_dead(session: Session, *, now: datetime) -> int:
    """An operator's retry of dead letters."""
    with write_transaction(session):
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.state == DEAD)
            .values(state=PENDING, next_attempt_at=now, attempts=0)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Waiting:
    """An undelivered intent, for an operator."""

    id: int
    kind: str
    state: str
    contract_id: int | None
    subject_id: int | None
    user_id: str | None
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


def waiting(session: Session, *, limit: int = 200) -> list[Waiting]:
    """Pending and dead-lettered intents, dead ones first, oldest first."""
    with session.begin():
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.state.in_([PENDING, DEAD]))
            .order_by((OutboxMessage.state == PENDING), OutboxMessage.id)
            .limit(limit)
        )
        return [
            Waiting(
                r.id,
                r.kind,
                r.state,
                r.contract_id,
                r.subject_id,
                r.user_id,
                r.attempts,
                r.next_attempt_at,
                r.last_error,
            )
            for r in rows
        ]


def retry_now(session: Session, *, now: datetime) -> int:
    """An operator's retry: dead letters come back, and everything waiting is due now."""
    with write_transaction(session):
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.state.in_([PENDING, DEAD]))
            .values(state=PENDING, next_attempt_at=now, attempts=0)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


# --- where a card lives -------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    channel_id: str
    ts: str  # "" while someone else is posting it


def placement(session: Session, subject: str) -> Placement | None:
    """Where the card `subject` lives (inside the caller's transaction, if any)."""
    with read_transaction(session):
        ref = session.scalar(select(MessageRef).where(MessageRef.subject == subject))
        return Placement(ref.channel_id, ref.ts) if ref else None


def placements(session: Session, subjects: Collection[str]) -> dict[str, Placement]:
    """`placement` of several cards in one query; cards not posted yet are left out."""
    if not subjects:
        return {}
    with read_transaction(session):
        rows = session.execute(
            select(MessageRef.subject, MessageRef.channel_id, MessageRef.ts).where(
                MessageRef.subject.in_(subjects)
            )
        )
        return {row.subject: Placement(row.channel_id, row.ts) for row in rows}


def reserve(
    session: Session, subject: str, *, channel_id: str, now: datetime, stale_after: timedelta
) -> bool:
    """Take the right to post `subject` for the first time; False if another sender has it.

    A reservation older than `stale_after` without a ts belongs to a sender that died:
    it is taken over.
    """
    try:
        with write_transaction(session):
            ref = session.scalar(select(MessageRef).where(MessageRef.subject == subject))
            if ref is None:
                session.add(
                    MessageRef(subject=subject, channel_id=channel_id, ts="", reserved_at=now)
                )
                return True
            if ref.ts == "" and ref.reserved_at <= now - stale_after:
                ref.reserved_at = now
                return True
            return False
    except IntegrityError:
        return False


def release(session: Session, subject: str, *, reserved_at: datetime) -> None:
    """Give back a reservation whose first post failed, so that the next attempt posts
    at once instead of waiting for the reservation to go stale."""
    with write_transaction(session):
        session.execute(
            delete(MessageRef).where(
                MessageRef.subject == subject,
                MessageRef.ts == "",
                MessageRef.reserved_at == reserved_at,
            )
        )


def store(session: Session, subject: str, *, channel_id: str, ts: str, now: datetime) -> None:
    with write_transaction(session):
        ref = session.scalar(select(MessageRef).where(MessageRef.subject == subject))
        if ref is None:
            session.add(MessageRef(subject=subject, channel_id=channel_id, ts=ts, reserved_at=now))
        else:
            ref.channel_id = channel_id
            ref.ts = ts
