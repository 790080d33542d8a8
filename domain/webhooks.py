"""Signed outgoing webhooks, the domain's half: endpoints, one delivery row per
(endpoint, event) written with the event, the JSON body of each event type, and the
claims, retries and dead letters of the sender (bot/webhooks.py does the HTTP).

A delivery row is written in the transaction that writes its event (`fan_out`, called
by `_writes.Writes`), so an event that was committed is never lost to a receiver; the
unique (endpoint, event) pair means it is queued at most once. The body is rendered
from the event row, which is append-only: every retry sends the same bytes. The
schema is documented in docs/webhooks.md; `TYPES` names every event kind.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, func, insert, literal, select, update
from sqlalchemy.orm import Session

from domain.db import read_transaction, write_transaction
from domain.errors import InvalidInput, NotFound
from domain.model import (
    Contract,
    Event,
    EventKind,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookState,
)

SCHEMA_VERSION = 1

# Every history event, by the stable dotted name receivers see as `type`.
TYPES: dict[EventKind, str] = {
    EventKind.CONTRACT_CREATED: "contract.created",
    EventKind.MILESTONE_ADDED: "milestone.added",
    EventKind.MILESTONE_EDITED: "milestone.edited",
    EventKind.MILESTONE_DELETED: "milestone.deleted",
    EventKind.AGREEMENT_CLEARED: "contract.agreement_cleared",
    EventKind.TERMS_AGREED: "contract.terms_agreed",
    EventKind.CONTRACT_ACTIVATED: "contract.activated",
    EventKind.REQUEST_PROPOSED: "change_request.proposed",
    EventKind.REQUEST_ACCEPTED: "change_request.accepted",
    EventKind.REQUEST_DECLINED: "change_request.declined",
    EventKind.REQUEST_WITHDRAWN: "change_request.withdrawn",
    EventKind.REQUEST_CANCELLED: "change_request.cancelled",
    EventKind.REQUEST_COUNTERED: "change_request.countered",
    EventKind.ESCROW_TOPPED_UP: "milestone.topped_up",
    EventKind.MILESTONE_FUNDED: "milestone.funded",
    EventKind.WORK_SUBMITTED: "milestone.submitted",
    EventKind.CHANGES_REQUESTED: "milestone.changes_requested",
    EventKind.MILESTONE_RELEASED: "milestone.released",
    EventKind.MILESTONE_PARTLY_RELEASED: "milestone.partly_released",
    EventKind.BONUS_PAID: "contract.bonus_paid",
    EventKind.REVIEW_TIME_ASKED: "milestone.review_time_asked",
    EventKind.REVIEW_EXTENDED: "milestone.review_extended",
    EventKind.REVIEW_TIME_DECLINED: "milestone.review_time_declined",
    EventKind.CONTRACT_ENDING: "contract.ending",
    EventKind.CONTRACT_ENDED: "contract.ended",
    EventKind.MILESTONE_DISPUTED: "dispute.opened",
    EventKind.SPLIT_PROPOSED: "dispute.split_proposed",
    EventKind.DISPUTE_SETTLED: "dispute.settled",
}

# What each type carries in `data` besides the common fields, always present (null when
# the event did not say). The stored history may hold more; only these are promised.
FIELDS: dict[EventKind, tuple[str, ...]] = {
    EventKind.CONTRACT_CREATED: ("title", "parties"),
    EventKind.MILESTONE_ADDED: ("after", "message"),
    EventKind.MILESTONE_EDITED: ("before", "after", "message"),
    EventKind.MILESTONE_DELETED: ("before", "message"),
    EventKind.AGREEMENT_CLEARED: (),
    EventKind.TERMS_AGREED: ("side", "total_minor"),
    EventKind.CONTRACT_ACTIVATED: ("total_minor",),
    EventKind.REQUEST_PROPOSED: ("changes", "message", "revises", "counters"),
    EventKind.REQUEST_ACCEPTED: ("top_up",),
    EventKind.REQUEST_DECLINED: ("reason",),
    EventKind.REQUEST_WITHDRAWN: ("replaced_by",),
    EventKind.REQUEST_CANCELLED: ("reason",),
    EventKind.REQUEST_COUNTERED: ("replaced_by",),
    EventKind.ESCROW_TOPPED_UP: ("amount_minor",),
    EventKind.MILESTONE_FUNDED: ("amount_minor",),
    EventKind.WORK_SUBMITTED: ("note", "auto_release_at"),
    EventKind.CHANGES_REQUESTED: ("note",),
    EventKind.MILESTONE_RELEASED: ("amount_minor", "automatic", "split"),
    EventKind.MILESTONE_PARTLY_RELEASED: ("amount_minor", "held_minor", "released_early_minor"),
    EventKind.BONUS_PAID: ("amount_minor", "note"),
    EventKind.REVIEW_TIME_ASKED: ("days", "auto_release_at"),
    EventKind.REVIEW_EXTENDED: (
        "days",
        "asked_days",
        "previous_auto_release_at",
        "auto_release_at",
    ),
    EventKind.REVIEW_TIME_DECLINED: ("days", "auto_release_at"),
    EventKind.CONTRACT_ENDING: ("held_minor", "window_ends_at"),
    EventKind.CONTRACT_ENDED: ("refunded_minor", "how"),
    EventKind.MILESTONE_DISPUTED: ("reason", "held_minor", "side"),
    EventKind.SPLIT_PROPOSED: ("to_provider_minor", "to_client_minor", "proposal"),
    EventKind.DISPUTE_SETTLED: (
        "to_provider_minor",
        "to_client_minor",
        "how",
        "reason",
        "proposed_by",
        "closes_contract",
    ),
}

_DEFAULT_FALSE = {"automatic", "split", "closes_contract"}
_ISO_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)")


def event_type(kind: EventKind | str) -> str:
    """The `type` of an event kind (one added later without a name here: `event.<kind>`)."""
    try:
        return TYPES[EventKind(kind)]
    except (KeyError, ValueError):
        return f"event.{kind}"


# --- written with the event ------------------------------------------------------------


def fan_out(session: Session, event_ids: Sequence[int], *, now: datetime) -> None:
    """Queue these new events for every endpoint, in the caller's transaction: one
    `INSERT … SELECT` whether or not there are endpoints (none: it inserts nothing)."""
    if not event_ids:
        return
    source = (
        select(
            WebhookEndpoint.id,
            Event.id,
            literal(now, WebhookDelivery.created_at.type),
            literal(now, WebhookDelivery.next_attempt_at.type),
            literal(0),
            literal(WebhookState.PENDING.value),
        )
        .select_from(WebhookEndpoint)
        .join(Event, Event.id.in_(list(event_ids)))
        .where(WebhookEndpoint.removed_at.is_(None))
    )
    session.execute(
        insert(cast(Table, WebhookDelivery.__table__)).from_select(
            ["endpoint_id", "event_id", "created_at", "next_attempt_at", "attempts", "state"],
            source,
        )
    )


# --- an operator's endpoints -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    id: int
    url: str
    secret_hint: str  # the secret as it may be shown: its last four characters
    created_at: datetime
    removed_at: datetime | None
    pending: int = 0
    sent: int = 0
    dead: int = 0


def hint(secret: str) -> str:
    """A secret as it may be printed: never in full."""
    return "…" + secret[-4:] if len(secret) >= 12 else "…"


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"{url!r} is not a web address: give the full URL, e.g. https://example.com/hooks",
            field="url",
        )
    return url


def add_endpoint(session: Session, *, url: str, secret: str, now: datetime) -> Endpoint:
    """A new receiver: every event from now on is delivered to it."""
    url = check_url(url)
    if not secret or secret != secret.strip():
        raise InvalidInput(
            "The secret must be non-empty, without spaces around it.", field="secret"
        )
    with write_transaction(session):
        same = session.scalar(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.url == url, WebhookEndpoint.removed_at.is_(None)
            )
        )
        if same is not None:  # every event would go there twice
            raise InvalidInput(
                f"Endpoint {same} already receives the events at {url}; to change its "
                f"secret, remove it (`webhooks remove {same}`) and add it again.",
                field="url",
            )
        row = WebhookEndpoint(url=url, secret=secret, created_at=now)
        session.add(row)
        session.flush()
        return _endpoint(row)


def _endpoint(row: WebhookEndpoint, counts: Mapping[str, int] | None = None) -> Endpoint:
    counts = counts or {}
    return Endpoint(
        row.id,
        row.url,
        hint(row.secret),
        row.created_at,
        row.removed_at,
        counts.get(WebhookState.PENDING.value, 0),
        counts.get(WebhookState.SENT.value, 0),
        counts.get(WebhookState.DEAD.value, 0),
    )


def endpoints(session: Session, *, include_removed: bool = False) -> list[Endpoint]:
    """The endpoints with how many deliveries are pending, sent and dead."""
    with read_transaction(session):
        query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
        if not include_removed:
            query = query.where(WebhookEndpoint.removed_at.is_(None))
        rows = list(session.scalars(query))
        counts: dict[int, dict[str, int]] = {}
        for endpoint_id, state, count in session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.state, func.count())
            .where(WebhookDelivery.endpoint_id.in_([r.id for r in rows]))
            .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.state)
        ):
            counts.setdefault(endpoint_id, {})[WebhookState(state).value] = int(count)
        return [_endpoint(row, counts.get(row.id)) for row in rows]


def remove_endpoint(session: Session, endpoint_id: int, *, now: datetime) -> int:
    """Stop delivering to an endpoint: nothing new is queued for it, and what waited is
    cancelled (its log stays). How many deliveries were cancelled."""
    with write_transaction(session):
        row = session.get(WebhookEndpoint, endpoint_id)
        if row is None or row.removed_at is not None:
            raise NotFound(f"There is no webhook endpoint {endpoint_id}.")
        row.removed_at = now
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.state == WebhookState.PENDING,
            )
            .values(state=WebhookState.CANCELLED, last_error="endpoint removed")
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


# --- the body of an event ----------------------------------------------------------------


def instant(value: datetime) -> str:
    """ISO-8601 in UTC, ending in `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _utc(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_utc(item) for item in value]
    if isinstance(value, str) and _ISO_INSTANT.fullmatch(value):
        return instant(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return value


def _milestone_title(data: Mapping[str, Any]) -> str | None:
    for source in (data, data.get("after"), data.get("before")):
        if isinstance(source, Mapping) and isinstance(source.get("title"), str):
            return str(source["title"])
    return None


def body_of(event: Event, contract: Contract) -> dict[str, Any]:
    """The JSON body of one event (docs/webhooks.md): the same however often it is sent."""
    stored: Mapping[str, Any] = event.data if isinstance(event.data, Mapping) else {}
    kind = EventKind(event.kind)
    data: dict[str, Any] = {
        "actor_id": event.actor,
        "currency": contract.currency,
        "contract_title": contract.title,
        "milestone": None,
        "change_request": None,
    }
    if event.milestone_number is not None:
        data["milestone"] = {
            "number": event.milestone_number,
            "title": _milestone_title(stored),
        }
    if event.request_number is not None:
        data["change_request"] = {"number": event.request_number}
    names = FIELDS.get(kind)
    for name in names if names is not None else tuple(stored):
        value = stored.get(name, False if name in _DEFAULT_FALSE else None)
        if kind == EventKind.CONTRACT_CREATED and name == "parties" and isinstance(value, dict):
            value = [{"user_id": user, "role": role} for user, role in value.items()]
        data[name] = _utc(value)
    return {
        "id": f"evt_{event.id}",
        "type": event_type(kind),
        "created_at": instant(event.at),
        "contract_id": event.contract_id,
        "api_version": SCHEMA_VERSION,
        "data": data,
    }


def bodies(session: Session, event_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """`body_of` for several events, from one read."""
    if not event_ids:
        return {}
    with read_transaction(session):
        rows = session.execute(
            select(Event, Contract)
            .join(Contract, Contract.id == Event.contract_id)
            .where(Event.id.in_(list(event_ids)))
        ).all()
        return {event.id: body_of(event, contract) for event, contract in rows}


# --- the sender's claims -----------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    endpoint_id: int
    url: str
    secret: str
    event_id: int
    attempts: int  # counting this one


def claim_due(
    session: Session, *, now: datetime, lease: timedelta, limit: int = 100
) -> list[Claimed]:
    """Claim up to `limit` due deliveries, oldest first, for `lease` (another sender may
    take them over after it); rows another sender holds are skipped (PostgreSQL)."""
    with write_transaction(session, durable=False):
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.state == WebhookState.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(next_attempt_at=now + lease, attempts=WebhookDelivery.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        rows = session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.endpoint_id,
                WebhookEndpoint.url,
                WebhookEndpoint.secret,
                WebhookDelivery.event_id,
                WebhookDelivery.attempts,
            )
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id.in_(ids))
            .order_by(WebhookDelivery.id)
        ).all()
    return [Claimed(*row) for row in rows]


def mark_sent(session: Session, ids: Collection[int], *, status: int, now: datetime) -> None:
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(ids)), WebhookDelivery.state == WebhookState.PENDING)
            .values(state=WebhookState.SENT, sent_at=now, last_status=status, last_error=None)
            .execution_options(synchronize_session=False)
        )


def failed(
    session: Session,
    delivery_id: int,
    *,
    at: datetime,
    error: str,
    status: int | None,
    dead: bool,
) -> None:
    """A try failed: again at `at`, or dead-lettered."""
    with write_transaction(session, durable=False):
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == WebhookState.PENDING)
            .values(
                state=WebhookState.DEAD if dead else WebhookState.PENDING,
                next_attempt_at=at,
                last_error=error[:2000],
                last_status=status,
            )
            .execution_options(synchronize_session=False)
        )


def put_back(session: Session, ids: Collection[int], *, at: datetime, reason: str) -> None:
    """Claims never tried (their endpoint failed on an earlier delivery of the same pass,
    or the sender is stopping): due again at `at`, the attempt not counted."""
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(ids)), WebhookDelivery.state == WebhookState.PENDING)
            .values(
                next_attempt_at=at,
                attempts=WebhookDelivery.attempts - 1,
                last_error=reason[:2000],
            )
            .execution_options(synchronize_session=False)
        )


def drop_orphans(session: Session, ids: Collection[int]) -> None:
    """Deliveries whose event is gone (the contract was deleted): nothing to send."""
    if not ids:
        return
    with write_transaction(session, durable=False):
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(ids)))
            .values(state=WebhookState.CANCELLED, last_error="event gone")
            .execution_options(synchronize_session=False)
        )


def next_due(session: Session) -> datetime | None:
    with read_transaction(session):
        return session.scalar(
            select(WebhookDelivery.next_attempt_at)
            .where(WebhookDelivery.state == WebhookState.PENDING)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(1)
        )


def retry_dead(session: Session, *, now: datetime, endpoint_id: int | None = None) -> int:
    """An operator's retry: dead letters of live endpoints are due again now."""
    with write_transaction(session):
        live = select(WebhookEndpoint.id).where(WebhookEndpoint.removed_at.is_(None))
        if endpoint_id is not None:
            live = live.where(WebhookEndpoint.id == endpoint_id)
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.state == WebhookState.DEAD,
                WebhookDelivery.endpoint_id.in_(live),
            )
            .values(state=WebhookState.PENDING, next_attempt_at=now, attempts=0)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


# --- the log -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    id: int
    endpoint_id: int
    event_id: int
    type: str
    contract_id: int
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


def log(session: Session, *, limit: int = 100, endpoint_id: int | None = None) -> list[LogLine]:
    """The latest deliveries, newest first."""
    with read_transaction(session):
        query = (
            select(WebhookDelivery, Event.kind, Event.contract_id)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        return [
            LogLine(
                row.id,
                row.endpoint_id,
                row.event_id,
                event_type(kind),
                contract_id,
                WebhookState(row.state).value,
                row.attempts,
                row.last_status,
                row.last_error,
                row.created_at,
                row.next_attempt_at,
                row.sent_at,
            )
            for row, kind, contract_id in session.execute(query)
        ]
