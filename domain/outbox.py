"""The outbox: claiming, retrying and completing intents; holds; where cards live.

Delivery is at-least-once. A sender claims rows by pushing their `next_attempt_at`
forward by a lease in one guarded UPDATE, without holding a transaction open during
the network calls, sends, then marks them sent. A sender that dies mid-send loses its
lease and the rows are tried again. Claims skip rows another sender has locked at that
instant (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several processes sweeping at once
split the due rows instead of queueing on them. A sender whose batch outlasts half the
lease renews each claim (`renew`) before sending, so it never sends what another sender
has taken over.

A workspace that refuses our token, or a channel that is gone, gets a `DeliveryHold`:
its intents are parked (`held`) rather than retried or dead-lettered, the refusal is
checked again with backoff, and `release_hold` sends what waited once it works again.

Distribution: each intent records its workspace and, when the request that wrote it
named one, its Enterprise Grid org (`enterprise_id`). In a Slack Connect channel the
owning workspace's bot may not be a member; the installation whose bot is gets a
`ChannelSpeaker` row (`remember_speaker`), and the delivery posts there with its token.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.db import read_transaction, write_transaction
from domain.model import (
    ChannelSpeaker,
    Contract,
    DeliveryHold,
    HomeViewer,
    IntentKind,
    MessageRef,
    OutboxMessage,
    OutboxState,
    Party,
)


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: IntentKind
    contract_id: int | None
    subject_id: int | None
    user_id: str | None
    team_id: str | None
    channel_id: str | None
    address: str | None
    body: str | None
    attempts: int
    created_at: datetime
    lease_until: datetime | None = None  # the claim's `next_attempt_at`: whose it is
    enterprise_id: str | None = None  # the Grid org of `team_id`, when known

    @property
    def scopes(self) -> tuple[str, ...]:
        """The holds that would stop this intent."""
        found = []
        if self.team_id:
            found.append(team_scope(self.team_id))
        if self.channel_id:
            found.append(channel_scope(self.channel_id))
        return tuple(found)


_CLAIMED_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.kind,
    OutboxMessage.contract_id,
    OutboxMessage.subject_id,
    OutboxMessage.user_id,
    OutboxMessage.team_id,
    OutboxMessage.enterprise_id,
    OutboxMessage.channel_id,
    OutboxMessage.address,
    OutboxMessage.body,
    OutboxMessage.attempts,
    OutboxMessage.created_at,
)

_CLAIMABLE = (OutboxMessage.state == OutboxState.PENDING,)


def _claim(
    session: Session, candidates: Select[Any], *, now: datetime, lease: timedelta
) -> list[Claimed]:
    """Claim the due rows `candidates` selects, skipping rows another transaction holds
    (PostgreSQL; SQLite's BEGIN IMMEDIATE already lets one writer in at a time)."""
    locked = candidates.where(*_CLAIMABLE, OutboxMessage.next_attempt_at <= now).with_for_update(
        skip_locked=True
    )
    # Claims, completions and retries need no flush to disk before going on: delivery is
    # at-least-once, and one lost in a database crash only means a message sent again.
    with write_transaction(session, durable=False):
        ids = list(session.scalars(locked))  # SQLite renders no FOR UPDATE
        if not ids:
            return []
        rows = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(next_attempt_at=now + lease, attempts=OutboxMessage.attempts + 1)
            .returning(*_CLAIMED_COLUMNS)
            .execution_options(synchronize_session=False)
        ).all()
    return [Claimed(**row._asdict(), lease_until=now + lease) for row in rows]


def claim_due(
    session: Session, *, now: datetime, lease: timedelta, limit: int = 50
) -> list[Claimed]:
    """Claim up to `limit` due intents, oldest first (the sweep)."""
    candidates = (
        select(OutboxMessage.id)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    return _claim(session, candidates, now=now, lease=lease)


def claim_many(
    session: Session, ids: Sequence[int], *, now: datetime, lease: timedelta
) -> list[Claimed]:
    """Claim those of `ids` that are due and nobody holds; in the order of `ids`."""
    if not ids:
        return []
    candidates = select(OutboxMessage.id).where(OutboxMessage.id.in_(ids))
    by_id = {c.id: c for c in _claim(session, candidates, now=now, lease=lease)}
    return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]


def renew(session: Session, claimed: Claimed, *, now: datetime, lease: timedelta) -> Claimed | None:
    """Extend a claim that is still this sender's; None if its lease ran out and another
    sender has claimed the row since (or it is no longer pending)."""
    with write_transaction(session, durable=False):
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == claimed.id,
                OutboxMessage.state == OutboxState.PENDING,
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
    """Give back claims that were never attempted (their batch stopped early, or the
    process is stopping): due now, and the attempt the claim counted is returned."""
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.state == OutboxState.PENDING)
            .values(next_attempt_at=now, attempts=OutboxMessage.attempts - 1)
            .execution_options(synchronize_session=False)
        )


def give_back(
    session: Session, ids: Collection[int], *, lease_until: datetime, now: datetime
) -> None:
    """Give back the claims on `ids` that were made with the lease `lease_until`: the
    sender could not tell whether its claim was committed (the database stopped
    answering), so it returns whichever of them did take, and no other sender's."""
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.next_attempt_at == lease_until,
            )
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
            .values(state=OutboxState.SENT, sent_at=now, last_error=None)
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
    yet), so the attempt the claim counted is given back and never leads to a dead letter."""
    attempts = OutboxMessage.attempts if count_attempt else OutboxMessage.attempts - 1
    with write_transaction(session, durable=False):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .values(
                state=OutboxState.DEAD if dead else OutboxState.PENDING,
                next_attempt_at=at,
                last_error=error[:2000],
                attempts=attempts,
            )
        )


def next_due(session: Session) -> datetime | None:
    """When the earliest pending intent is due (a sender sleeping until then wakes on time)."""
    with read_transaction(session):
        return session.scalar(
            select(OutboxMessage.next_attempt_at)
            .where(OutboxMessage.state == OutboxState.PENDING)
            .order_by(OutboxMessage.next_attempt_at)
            .limit(1)
        )


# --- holds: a workspace or channel that refuses our messages for now -----------------


def team_scope(team_id: str) -> str:
    return f"team:{team_id}"


def channel_scope(channel_id: str) -> str:
    return f"channel:{channel_id}"


def _matching(scope: str) -> object:
    kind, _, value = scope.partition(":")
    column = OutboxMessage.team_id if kind == "team" else OutboxMessage.channel_id
    return column == value


@dataclass(frozen=True)
class Hold:
    scope: str
    reason: str
    since: datetime
    next_check_at: datetime
    checks: int

    @property
    def kind(self) -> str:
        return self.scope.partition(":")[0]

    @property
    def target(self) -> str:
        return self.scope.partition(":")[2]


def _hold(row: DeliveryHold) -> Hold:
    return Hold(row.scope, row.reason, row.since, row.next_check_at, row.checks)


def hold(
    session: Session,
    scope: str,
    *,
    reason: str,
    now: datetime,
    check_at: datetime,
    parked: Iterable[int] = (),
) -> bool:
    """Hold `scope` (a workspace or channel refusing us), park its waiting intents and
    `parked`; True if the hold is new. A channel's hold also refreshes the App Home of
    the parties of its contracts, which tells them where they can still be reached."""
    with write_transaction(session):
        found = session.get(DeliveryHold, scope, populate_existing=True)
        new = found is None
        if found is None:
            session.add(
                DeliveryHold(scope=scope, reason=reason[:100], since=now, next_check_at=check_at)
            )
            if scope.startswith("channel:"):
                _refresh_homes_in(session, scope.partition(":")[2], now=now)
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.state == OutboxState.PENDING,
                or_(_matching(scope), OutboxMessage.id.in_(list(parked))),  # type: ignore[arg-type]
            )
            .values(state=OutboxState.HELD, last_error=reason[:2000])
            .execution_options(synchronize_session=False)
        )
        return new


def park(session: Session, ids: Collection[int], *, reason: str) -> None:
    """Park these claimed intents: their workspace or channel is held."""
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.state == OutboxState.PENDING)
            .values(state=OutboxState.HELD, last_error=reason[:2000], attempts=0)
            .execution_options(synchronize_session=False)
        )


def held_scopes(session: Session, scopes: Collection[str]) -> dict[str, Hold]:
    """Which of these scopes are held."""
    if not scopes:
        return {}
    with read_transaction(session):
        rows = session.scalars(select(DeliveryHold).where(DeliveryHold.scope.in_(scopes)))
        return {row.scope: _hold(row) for row in rows}


def holds(session: Session) -> list[Hold]:
    with read_transaction(session):
        return [_hold(row) for row in session.scalars(select(DeliveryHold).order_by("since"))]


def claim_checks(
    session: Session, *, now: datetime, lease: timedelta, limit: int = 10
) -> list[Hold]:
    """Holds whose refusal is due to be checked again; claimed for `lease`."""
    with write_transaction(session, durable=False):
        rows = list(
            session.scalars(
                select(DeliveryHold)
                .where(DeliveryHold.next_check_at <= now)
                .order_by(DeliveryHold.next_check_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for row in rows:
            row.next_check_at = now + lease
            row.checks += 1
        return [_hold(row) for row in rows]


def still_refused(session: Session, scope: str, *, reason: str, check_at: datetime) -> None:
    with write_transaction(session, durable=False):
        found = session.get(DeliveryHold, scope, populate_existing=True)
        if found is not None:
            found.reason = reason[:100]
            found.next_check_at = check_at


def release_hold(session: Session, scope: str, *, now: datetime) -> list[int]:
    """The workspace or channel works again: what waited is due now; its ids."""
    with write_transaction(session):
        session.execute(delete(DeliveryHold).where(DeliveryHold.scope == scope))
        ids = list(
            session.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.state == OutboxState.HELD, _matching(scope))  # type: ignore[arg-type]
                .values(state=OutboxState.PENDING, next_attempt_at=now, attempts=0)
                .returning(OutboxMessage.id)
                .execution_options(synchronize_session=False)
            )
        )
        if scope.startswith("channel:"):
            ids += _refresh_homes_in(session, scope.partition(":")[2], now=now)
        return ids


def _refresh_homes_in(session: Session, channel_id: str, *, now: datetime) -> list[int]:
    """Queue an App Home refresh for every party of the open contracts in a channel."""
    people = session.execute(
        select(Party.user_id, Contract.id, Contract.team_id)
        .join(Contract, Contract.id == Party.contract_id)
        .where(Contract.channel_id == channel_id)
    ).all()
    seen: dict[str, tuple[int, str]] = {}
    for user_id, contract_id, team_id in people:
        seen.setdefault(user_id, (contract_id, team_id))
    if not seen:
        return []
    rows = [
        OutboxMessage(
            kind=IntentKind.HOME,
            contract_id=contract_id,
            user_id=user_id,
            team_id=team_id,
            created_at=now,
            next_attempt_at=now,
            attempts=0,
            state=OutboxState.PENDING,
        )
        for user_id, (contract_id, team_id) in seen.items()
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


# --- who speaks in a Slack Connect channel (distribution) ---------------------------


@dataclass(frozen=True)
class Speaker:
    """An installation, by its Grid org and workspace: (None, T) a workspace's own
    outside a Grid, (E, T) one inside it, (E, None) an org-wide one."""

    enterprise_id: str | None
    team_id: str | None


def speakers(session: Session, channel_ids: Collection[str]) -> dict[str, Speaker]:
    """The installations remembered to post in these channels (those that have one)."""
    if not channel_ids:
        return {}
    with read_transaction(session):
        rows = session.execute(
            select(
                ChannelSpeaker.channel_id, ChannelSpeaker.enterprise_id, ChannelSpeaker.team_id
            ).where(ChannelSpeaker.channel_id.in_(channel_ids))
        )
        return {row.channel_id: Speaker(row.enterprise_id, row.team_id) for row in rows}


def remember_speaker(session: Session, channel_id: str, speaker: Speaker, *, now: datetime) -> None:
    """From now on `speaker` posts in the channel (replacing whoever did)."""
    try:
        with write_transaction(session, durable=False):
            found = session.get(ChannelSpeaker, channel_id, populate_existing=True)
            if found is None:
                session.add(
                    ChannelSpeaker(
                        channel_id=channel_id,
                        enterprise_id=speaker.enterprise_id,
                        team_id=speaker.team_id,
                        since=now,
                    )
                )
            elif (found.enterprise_id, found.team_id) != (speaker.enterprise_id, speaker.team_id):
                found.enterprise_id, found.team_id = speaker.enterprise_id, speaker.team_id
                found.since = now
    except IntegrityError:
        pass  # another sender remembered one at the same instant: it works as well


def enterprise_of_team(session: Session, team_id: str) -> str | None:
    """The Grid org a request from `team_id` named last (an intent written by a sweep
    does not know it)."""
    with read_transaction(session):
        return session.scalar(
            select(OutboxMessage.enterprise_id)
            .where(OutboxMessage.team_id == team_id, OutboxMessage.enterprise_id.is_not(None))
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )


# --- App Home viewers ------------------------------------------------------------------


def home_opened(session: Session, user_id: str, *, now: datetime) -> None:
    """`user_id` opened the Home tab: from now on their Home follows every change."""
    try:
        with write_transaction(session, durable=False):
            if session.get(HomeViewer, user_id) is None:
                session.add(HomeViewer(user_id=user_id, first_opened_at=now))
    except IntegrityError:
        pass  # opened in two places at once: recorded by the other


def home_viewers(session: Session, user_ids: Collection[str]) -> set[str]:
    """Those of `user_ids` who have opened their Home tab."""
    if not user_ids:
        return set()
    with read_transaction(session):
        return set(
            session.scalars(select(HomeViewer.user_id).where(HomeViewer.user_id.in_(user_ids)))
        )


# --- for an operator ----------------------------------------------------------------


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
    """Dead-lettered, held and pending intents, in that order, oldest first."""
    order = {OutboxState.DEAD: 0, OutboxState.HELD: 1, OutboxState.PENDING: 2}
    with read_transaction(session):
        rows = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.state.in_([OutboxState.PENDING, OutboxState.DEAD, OutboxState.HELD])
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        found = [
            Waiting(
                r.id,
                r.kind.value,
                r.state.value,
                r.contract_id,
                r.subject_id,
                r.user_id,
                r.attempts,
                r.next_attempt_at,
                r.last_error,
            )
            for r in rows
        ]
    return sorted(found, key=lambda w: (order[OutboxState(w.state)], w.id))


def retry_now(session: Session, *, now: datetime) -> int:
    """An operator's retry: dead letters and held intents come back, holds are lifted,
    and everything waiting is due now."""
    with write_transaction(session):
        session.execute(delete(DeliveryHold))
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.state.in_([OutboxState.PENDING, OutboxState.DEAD, OutboxState.HELD])
            )
            .values(state=OutboxState.PENDING, next_attempt_at=now, attempts=0)
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


class Reservation(StrEnum):
    """The answer to `reserve`."""

    FIRST = "first"  # nobody posted this card: post it
    TAKEN_OVER = "taken_over"  # an earlier sender may have posted it: look before posting
    BUSY = "busy"  # another sender is posting it now


def reserve(
    session: Session, subject: str, *, channel_id: str, now: datetime, stale_after: timedelta
) -> Reservation:
    """Take the right to post `subject` for the first time.

    A reservation older than `stale_after` without a ts belongs to a sender that died
    or whose post ended without an answer (`abandon`): it is taken over, and the new
    sender looks for the earlier post before posting again.
    """
    try:
        with write_transaction(session):
            ref = session.scalar(select(MessageRef).where(MessageRef.subject == subject))
            if ref is None:
                session.add(
                    MessageRef(subject=subject, channel_id=channel_id, ts="", reserved_at=now)
                )
                return Reservation.FIRST
            if ref.ts == "" and ref.reserved_at <= now - stale_after:
                ref.reserved_at = now
                return Reservation.TAKEN_OVER
            return Reservation.BUSY
    except IntegrityError:
        return Reservation.BUSY


def release(session: Session, subject: str, *, reserved_at: datetime) -> None:
    """Give back a reservation whose first post certainly failed, so that the next
    attempt posts at once instead of waiting for the reservation to go stale."""
    with write_transaction(session):
        session.execute(
            delete(MessageRef).where(
                MessageRef.subject == subject,
                MessageRef.ts == "",
                MessageRef.reserved_at == reserved_at,
            )
        )


def abandon(session: Session, subject: str, *, reserved_at: datetime) -> None:
    """The first post ended without an answer (a timeout, a dropped connection): it may
    be in the channel. The reservation goes stale at once, so the next sender takes it
    over and looks for the post before posting again."""
    with write_transaction(session):
        session.execute(
            update(MessageRef)
            .where(
                MessageRef.subject == subject,
                MessageRef.ts == "",
                MessageRef.reserved_at == reserved_at,
            )
            .values(reserved_at=datetime(2000, 1, 1, tzinfo=UTC))
        )


def store(session: Session, subject: str, *, channel_id: str, ts: str, now: datetime) -> None:
    with write_transaction(session):
        ref = session.scalar(select(MessageRef).where(MessageRef.subject == subject))
        if ref is None:
            session.add(MessageRef(subject=subject, channel_id=channel_id, ts=ts, reserved_at=now))
        else:
            ref.channel_id = channel_id
            ref.ts = ts
