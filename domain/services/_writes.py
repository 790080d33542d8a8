"""What a transaction writes besides the state: history events, reminder changes and
outbox intents (`Writes`), collected per contract by a `Tx` and written together."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, inspect, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from domain import intake, notify, payments, reminders, webhooks
from domain.db import is_postgres
from domain.model import Contract, Event, EventKind, IntentKind, OutboxMessage, OutboxState
from domain.services.inputs import Outcome
from domain.text import Said, said

_EVENT = cast(Table, Event.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)


class Writes:
    """History events, reminder changes and outbox intents, written together after the
    state changes: a statement per table for one transaction, whether it changed one
    contract (a click) or a batch of them (the automatic-release sweep). A refusal
    raised before `write` writes none of them. An announcement names its event, so the
    intents are written last; the actor's answer comes first, then the rest in the
    order they were made."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.reminders = reminders.Changes()
        self._events: list[dict[str, Any]] = []
        # (contract, kind, subject id, user id, for an announcement its event's index)
        self._intents: list[tuple[Contract, IntentKind, int | None, str | None, int | None]] = []
        self._keys: set[tuple[int, IntentKind, int | None, str | None]] = set()
        self._replies: list[tuple[Contract, str, Said]] = []  # (contract, address, what)

    def event(self, contract: Contract, row: dict[str, Any], *, announce: bool) -> None:
        if announce:
            self._intents.append((contract, IntentKind.ANNOUNCE, None, None, len(self._events)))
        self._events.append(row)

    def intent(
        self, contract: Contract, kind: IntentKind, subject_id: int | None, user_id: str | None
    ) -> None:
        key = (contract.id, kind, subject_id, user_id)
        if key not in self._keys:
            self._keys.add(key)
            self._intents.append((contract, kind, subject_id, user_id, None))

    def reply(self, contract: Contract, address: str, what: Said) -> None:
        self._replies.append((contract, address, what))

    def write(self) -> dict[int, list[int]]:
        """Write everything; the new outbox ids of each contract, in order."""
        self.session.flush()
        payments.queue_movements(self.session, now=self.now)
        event_ids = _insert(self.session, _EVENT, self._events)
        # Every event to every webhook endpoint, with the event (one statement).
        webhooks.fan_out(self.session, event_ids, now=self.now)
        self.reminders.write(self.session)
        owners: list[int] = []
        rows: list[dict[str, Any]] = []
        origin = intake.attached(self.session)

        def org_of(team_id: str | None) -> str | None:
            return origin.enterprise_of(team_id) if origin is not None else None

        for contract, address, what in self._replies:
            owners.append(contract.id)
            rows.append(  # its own address: no workspace or channel hold stops it
                _outbox_row(
                    IntentKind.REPLY,
                    contract.id,
                    address=address,
                    body=what.to_json(),
                    enterprise_id=org_of(contract.team_id),
                )
            )
        for contract, kind, subject_id, user_id, event in self._intents:
            owners.append(contract.id)
            rows.append(
                _outbox_row(
                    kind,
                    contract.id,
                    subject_id=subject_id if event is None else event_ids[event],
                    user_id=user_id,
                    team_id=contract.team_id,
                    enterprise_id=org_of(contract.team_id),
                    channel_id=None if kind == IntentKind.HOME else contract.channel_id,
                )
            )
        # Whoever now owes an answer hears it directly too, if they chose so.
        for waiting in notify.told_directly(self.session, self.reminders.take_awaiting()):
            owners.append(waiting.contract_id)
            rows.append(
                _outbox_row(
                    IntentKind.DIRECT,
                    waiting.contract_id,
                    subject_id=waiting.subject_id,
                    user_id=waiting.user_id,
                    team_id=waiting.team_id,
                    enterprise_id=org_of(waiting.team_id),
                    body=waiting.kind.value,
                )
            )
        for row in rows:
            row.update(
                created_at=self.now,
                next_attempt_at=self.now,
                attempts=0,
                state=OutboxState.PENDING,
            )
        written: dict[int, list[int]] = {}
        for owner, outbox_id in zip(owners, _insert(self.session, _OUTBOX, rows), strict=True):
            written.setdefault(owner, []).append(outbox_id)
        return written


def _outbox_row(kind: IntentKind, contract_id: int, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(
        ("subject_id", "user_id", "team_id", "enterprise_id", "channel_id", "address", "body")
    )
    row.update(kind=kind, contract_id=contract_id, **values)
    return row


def _insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the rows in one statement; their new ids, in the rows' order.

    On PostgreSQL the rows go as one array per column (`INSERT … SELECT unnest(…)`):
    a short statement whatever the number of rows, so the driver converts it once
    instead of parsing a `VALUES (…), (…), …` list of thousands of parameters every
    time (the automatic-release sweep writes hundreds of rows a batch). The ids come
    from the table's sequence in the order the rows are inserted."""
    if not rows:
        return []
    if is_postgres(session) and len(rows) > 1:
        names = list(rows[0])
        arrays = [
            func.unnest(
                bindparam(
                    f"rows_{name}", [row[name] for row in rows], type_=ARRAY(table.c[name].type)
                )
            )
            for name in names
        ]
        statement = insert(table).from_select(names, select(*arrays)).returning(table.c.id)
        return sorted(session.scalars(statement))
    inserted = session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
    )
    return list(inserted.scalars())


class Tx:
    """One contract's changes in a transaction: what the services write besides the state
    itself goes through here into `Writes` (the transaction's own, or a batch's)."""

    def __init__(
        self, session: Session, contract: Contract, now: datetime, writes: Writes | None = None
    ) -> None:
        self.session = session
        self.contract = contract
        self.now = now
        self.writes = writes or Writes(session, now)
        self.reminders = self.writes.reminders

    def event(
        self,
        kind: EventKind,
        actor: str,
        *,
        milestone_number: int | None = None,
        request_number: int | None = None,
        announce: bool = True,
        **data: Any,
    ) -> None:
        if milestone_number is not None:
            data = self._with_title(milestone_number, data)
        row = {
            "contract_id": self.contract.id,
            "at": self.now,
            "actor": actor,
            "kind": kind,
            "milestone_number": milestone_number,
            "request_number": request_number,
            "data": _jsonable(data),
        }
        self.writes.event(self.contract, row, announce=announce)

    def intent(
        self, kind: IntentKind, *, subject_id: int | None = None, user_id: str | None = None
    ) -> None:
        self.writes.intent(self.contract, kind, subject_id, user_id)

    def _with_title(self, number: int, data: dict[str, Any]) -> dict[str, Any]:
        """The event keeps the milestone's title at the time (domain.record), unless its
        `before` / `after` fields already carry it."""
        if "title" in data or any(
            isinstance(data.get(key), Mapping) and "title" in data[key]
            for key in ("before", "after")
        ):
            return data
        if "milestones" in inspect(self.contract).unloaded:
            return data
        milestone = self.contract.milestone(number)
        return data if milestone is None else {**data, "title": milestone.title}

    def changed(self) -> None:
        """The contract changed: bump its version, refresh its card and every party's Home."""
        self.contract.version += 1
        self.intent(IntentKind.CONTRACT_CARD, subject_id=self.contract.id)
        for party in self.contract.parties:
            self.intent(IntentKind.HOME, user_id=party.user_id)

    def outcome(self, summary: Said | str, **kwargs: Any) -> Outcome:
        """Write what was collected and return the outcome; with an origin that wants an
        answer (domain.intake), the actor's confirmation is an intent too, sent first."""
        summary = summary if isinstance(summary, Said) else said(summary)
        origin = intake.attached(self.session)
        if origin is not None and origin.reply_to is not None:
            self.writes.reply(self.contract, origin.reply_to, summary)
        written = self.writes.write()
        return Outcome(
            contract_id=self.contract.id,
            said=summary,
            outbox_ids=tuple(written.get(self.contract.id, ())),
            **kwargs,
        )


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, date | datetime):
            out[key] = value.isoformat()
        elif isinstance(value, Mapping):
            out[key] = _jsonable(value)
        else:
            out[key] = value
    return out
