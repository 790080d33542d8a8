"""The weekday-morning digest: one direct message at 09:00 in a person's own time zone,
Monday to Friday, listing everything that waits for them (domain.waiting), for people
who chose `digest` (domain.notify).

The rule of *when* lives here; the scheduler only calls `send_due` on every sweep with
a way to look up time zones. Exactly once per person and local day, however many
sweepers run: a `Digest` row with a unique (person, day) key is written in the same
transaction as the outbox intent that sends it. After downtime only today's digest is
sent (late, once); the days missed are not sent at all.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from domain.db import is_postgres, write_transaction
from domain.model import (
    Digest,
    IntentKind,
    NotificationChoice,
    Notify,
    OutboxMessage,
    OutboxState,
)
from domain.reminders import TimeZoneOf
from domain.waiting import waiting_for

log = logging.getLogger(__name__)

DIGEST_AT = time(9, 0)  # local time, Monday to Friday
# A digest not sent by then (Slack was down all day) is no longer this morning's news.
STALE_AFTER = timedelta(hours=12)

_DIGEST = cast(Table, Digest.__table__)


def zone_of(tz_name: str | None) -> ZoneInfo:
    """The person's time zone; UTC when unknown or not a zone this machine knows."""
    try:
        return ZoneInfo(tz_name) if tz_name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def morning_of(day: date, zone: ZoneInfo) -> datetime:
    """09:00 of `day` in `zone`, as a UTC instant."""
    return datetime.combine(day, DIGEST_AT, tzinfo=zone).astimezone(UTC)


def next_morning(now: datetime, zone: ZoneInfo) -> datetime:
    """The first weekday 09:00 in `zone` strictly after `now` (a UTC instant)."""
    day = now.astimezone(zone).date()
    while True:
        at = morning_of(day, zone)
        if day.weekday() < 5 and at > now:
            return at
        day += timedelta(days=1)


def todays_morning(now: datetime, zone: ZoneInfo) -> tuple[date, datetime] | None:
    """Today's date and 09:00 in `zone`, if today is a weekday there and 09:00 has come."""
    today = now.astimezone(zone).date()
    at = morning_of(today, zone)
    if today.weekday() >= 5 or at > now:
        return None
    return today, at


def due(session: Session, *, now: datetime, limit: int = 100) -> list[str]:
    """People who chose the digest and whose next morning may have come (or is not
    known yet: they chose it since the last sweep)."""
    with session.begin():
        return list(
            session.scalars(
                select(NotificationChoice.user_id)
                .where(
                    NotificationChoice.choice == Notify.DIGEST,
                    or_(
                        NotificationChoice.next_digest_at.is_(None),
                        NotificationChoice.next_digest_at <= now,
                    ),
                )
                .order_by(NotificationChoice.user_id)
                .limit(limit)
            )
        )


def send_due(
    sessions: sessionmaker[Session], *, now: datetime, time_zone_of: TimeZoneOf
) -> list[int]:
    """Queue the digests whose morning has come; returns the outbox ids."""
    with sessions() as session:
        people = due(session, now=now)
    queued: list[int] = []
    for user_id in people:
        zone = zone_of(time_zone_of(user_id))
        with sessions() as session:
            outbox_id = queue_digest(session, user_id, now=now, zone=zone)
        if outbox_id is not None:
            queued.append(outbox_id)
    return queued


def queue_digest(session: Session, user_id: str, *, now: datetime, zone: ZoneInfo) -> int | None:
    """Today's digest for `user_id`, if its morning has come and it was not sent yet:
    recorded (once per person and local day) and queued; its outbox id. The person's
    next morning is noted either way, so the sweep skips them until then."""
    with write_transaction(session):
        row = session.scalar(
            select(NotificationChoice)
            .where(NotificationChoice.user_id == user_id)
            .with_for_update(skip_locked=is_postgres(session))
        )
        if row is None or row.choice != Notify.DIGEST:
            return None  # changed their mind, or another sweeper holds the row now
        if row.next_digest_at is not None and row.next_digest_at > now:
            return None  # another sweeper did it since this one looked
        row.next_digest_at = next_morning(now, zone)
        morning = todays_morning(now, zone)
        if morning is None:
            return None
        today, at = morning
        if at <= row.chosen_at:
            return None  # chose the digest after this morning's: the first is tomorrow's
        items = len(waiting_for(session, user_id, now=now))
        insert = postgresql.insert if is_postgres(session) else sqlite.insert
        digest_id = session.scalar(
            insert(_DIGEST)
            .values(user_id=user_id, day=today, created_at=now, items=items)
            .on_conflict_do_nothing(index_elements=["user_id", "day"])
            .returning(_DIGEST.c.id)
        )
        if digest_id is None or items == 0:
            return None  # sent already today, or nothing waits: no message
        message = OutboxMessage(
            kind=IntentKind.DIGEST,
            subject_id=digest_id,
            user_id=user_id,
            team_id=row.team_id,
            created_at=now,
            next_attempt_at=now,
            attempts=0,
            state=OutboxState.PENDING,
        )
        session.add(message)
        session.flush()
        log.info("digest %s of %s for %s: %s item(s)", digest_id, today, user_id, items)
        return message.id
