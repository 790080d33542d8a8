"""Use cases: every state change of a contract goes through one of these functions.

Each service owns its transaction (`write_transaction`): it locks the contract row
(`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds the database write
lock), re-reads every fact it needs, checks the transition tables and the actor's
role, writes history, ledger and outbox rows, and returns a small frozen `Outcome`.
A `DomainError` rolls everything back. Repeating an action that is already done
returns the current outcome with `already_done=True`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, func, insert, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, joinedload, selectinload

from domain import intake, ledger, queries, reminders
from domain.db import is_postgres, write_transaction
from domain.errors import (
    ContractClosed,
    DomainError,
    InvalidAmount,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    MilestoneLocked,
    NotAllowed,
    NotFound,
    OutOfOrder,
    RequestPending,
    WrongPhase,
)
from domain.model import (
    SYSTEM_ACTOR,
    Change,
    ChangeKind,
    ChangeRequest,
    Contract,
    ContractStatus,
    Event,
    IntentKind,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    OutboxMessage,
    OutboxState,
    Party,
    RequestStatus,
    Role,
)
from domain.money import format_amount, normalize_currency, parse_amount
from domain.policy import DEFAULT_POLICY, MAX_MILESTONES, MAX_TEXT, MAX_TITLE, Policy
from domain.rules import (
    REQUEST_TARGET,
    Act,
    ContractAction,
    MilestoneAction,
    RequestAction,
    contract_next,
    mid_sentence,
    milestone_next,
    request_next,
    require,
    who_can,
)
from domain.text import Command, Person, Said, said

# --------------------------------------------------------------------------------------
# Inputs and outcomes


@dataclass(frozen=True)
class NewMilestone:
    title: str
    amount: str
    due_date: date
    description: str = ""


@dataclass(frozen=True)
class MilestoneEdit:
    number: int
    title: str | None = None
    description: str | None = None
    amount: str | None = None
    due_date: date | None = None


@dataclass(frozen=True)
class MilestoneDeletion:
    number: int


ChangeInput = NewMilestone | MilestoneEdit | MilestoneDeletion


@dataclass(frozen=True)
class Agency:
    name: str
    manager_ids: Sequence[str]
    member_ids: Sequence[str] = ()


@dataclass(frozen=True)
class Outcome:
    """What a service did, for the caller to confirm to the person who acted."""

    contract_id: int
    said: Said  # what to tell the person who acted
    already_done: bool = False
    milestone_number: int | None = None
    request_id: int | None = None
    request_number: int | None = None
    became_request: bool = False
    contract_activated: bool = False
    outbox_ids: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.said, str):  # plain words
            object.__setattr__(self, "said", said(self.said))

    @property
    def summary(self) -> str:
        """What was said, in plain words (people as @ids)."""
        return str(self.said)


# --------------------------------------------------------------------------------------
# Loading and locking
#
# A service reads its facts in three statements: the contract row, locked, with its
# parties; then (a statement of its own, so PostgreSQL reads it after the lock is
# granted) its milestones; then, where it needs them, the change requests with their
# changes. Parties come with the locking statement: that statement reads joined rows
# as of its start, so if it had to wait for the lock they could be older than the
# contract row; but a contract's parties are written once, with the contract, and
# never change after (only `team_id` is filled in later, and no service reads it).
# Milestones and requests do change, so they are never joined to the locking select.


def _lock_contract(session: Session, contract_id: int) -> Contract:
    """Lock the contract row (the aggregate root) and load parties and milestones."""
    contract = _select_contract_for_update(session, Contract.id == contract_id)
    if contract is None:
        raise NotFound(f"There is no contract {contract_id}.")
    return contract


def _select_contract_for_update(
    session: Session,
    where: ColumnElement[bool],
    *,
    via: type[ChangeRequest] | type[Milestone] | None = None,
    skip_locked: bool = False,
) -> Contract | None:
    """The contract `where` names (through the request or milestone `via`, whose
    `contract_id` never changes), locked: `FOR UPDATE OF contract` on PostgreSQL (the
    outer join to its parties can't be locked); SQLite's `BEGIN IMMEDIATE` already
    serialises writers. `skip_locked`: None when another transaction holds the row."""
    query = select(Contract)
    if via is not None:
        query = query.join(via, via.contract_id == Contract.id)
    return (
        session.scalars(
            query.where(where)
            .options(joinedload(Contract.parties), selectinload(Contract.milestones))
            .with_for_update(of=Contract, skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        .unique()
        .one_or_none()
    )


def _requests(
    session: Session,
    contract: Contract,
    *,
    pending: bool = True,
    also: ColumnElement[bool] | None = None,
) -> list[ChangeRequest]:
    """The contract's pending change requests and/or the one `also` names (whatever its
    status), with their changes, in one statement."""
    wanted = [ChangeRequest.status == RequestStatus.PENDING] if pending else []
    if also is not None:
        wanted.append(also)
    return list(
        session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.contract_id == contract.id, or_(*wanted))
            .options(joinedload(ChangeRequest.changes))
            .order_by(ChangeRequest.number)
            .execution_options(populate_existing=True)
        ).unique()
    )


def _pending_requests(session: Session, contract: Contract) -> list[ChangeRequest]:
    return _requests(session, contract)


def _contract_id_of_milestone(session: Session, milestone_id: int) -> int:
    contract_id = session.scalar(select(Milestone.contract_id).where(Milestone.id == milestone_id))
    if contract_id is None:
        raise NotFound(f"There is no milestone with id {milestone_id}.")
    return contract_id


def _milestone(contract: Contract, number: int) -> Milestone:
    milestone = contract.milestone(number)
    if milestone is None:
        raise NotFound(f"Contract {contract.id} has no milestone {number}.")
    return milestone


def _milestone_by_id(contract: Contract, milestone_id: int) -> Milestone:
    for m in contract.milestones:
        if m.id == milestone_id:
            return m
    raise NotFound(f"That milestone is not part of contract {contract.id}.")


def _require_open(contract: Contract) -> None:
    if contract.status == ContractStatus.CLOSED:
        raise ContractClosed(
            f"Contract {contract.id} ({contract.title}) has ended; it is read-only now."
        )


def _require_active(contract: Contract, doing: str) -> None:
    _require_open(contract)
    if contract.status != ContractStatus.ACTIVE:
        raise WrongPhase(
            said(
                f"Contract {contract.id} is still being negotiated, so you can't {doing} yet. "
                "It becomes active once the client and the provider both type ",
                Command("start"),
                ".",
            )
        )


# --------------------------------------------------------------------------------------
# Writing history, outbox intents and the version


_EVENT = cast(Table, Event.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)


class _Writes:
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
        event_ids = _insert(self.session, _EVENT, self._events)
        self.reminders.write(self.session)
        owners: list[int] = []
        rows: list[dict[str, Any]] = []
        for contract, address, what in self._replies:
            owners.append(contract.id)
            rows.append(  # its own address: no workspace or channel hold stops it
                _outbox_row(IntentKind.REPLY, contract.id, address=address, body=what.to_json())
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
                    channel_id=None if kind == IntentKind.HOME else contract.channel_id,
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
    row = dict.fromkeys(("subject_id", "user_id", "team_id", "channel_id", "address", "body"))
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


class _Tx:
    """One contract's changes in a transaction: what the services write besides the state
    itself goes through here into `_Writes` (the transaction's own, or a batch's)."""

    def __init__(
        self, session: Session, contract: Contract, now: datetime, writes: _Writes | None = None
    ) -> None:
        self.session = session
        self.contract = contract
        self.now = now
        self.writes = writes or _Writes(session, now)
        self.reminders = self.writes.reminders

    def event(
        self,
        kind: str,
        actor: str,
        *,
        milestone_number: int | None = None,
        request_number: int | None = None,
        announce: bool = True,
        **data: Any,
    ) -> None:
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


# --------------------------------------------------------------------------------------
# Validation of user-typed values


def _clean_text(value: str, *, what: str, limit: int, required: bool) -> str:
    # NUL can't be stored in PostgreSQL text (and shows nothing): drop it.
    text = value.replace("\x00", "").strip()
    field = what.replace(" ", "_")
    if required and not text:
        raise InvalidInput(f"The {what} can't be empty.", field=field)
    if len(text) > limit:
        raise LimitExceeded(
            f"The {what} is {len(text):,} characters long; the limit is {limit:,}.",
            field=field,
        )
    return text


def _check_due_date(due: date, now: datetime) -> date:
    # A calendar date: allow "today" anywhere on Earth (UTC−12 is a day behind).
    earliest = (now - timedelta(days=1)).date()
    if due < earliest:
        raise InvalidInput(f"The due date {due.isoformat()} is in the past.", field="due_date")
    if due.year > now.year + 20:
        raise InvalidInput(
            f"The due date {due.isoformat()} is too far in the future.", field="due_date"
        )
    return due


def _amount(contract: Contract, text: str, policy: Policy) -> int:
    try:
        return parse_amount(text, contract.currency, max_major=policy.max_amount_major)
    except InvalidAmount as refusal:
        raise InvalidAmount(refusal.message, field="amount_minor") from None


def _money(contract: Contract, amount_minor: int) -> str:
    return format_amount(amount_minor, contract.currency)


@dataclass(frozen=True)
class _Change:
    """A validated change, in the milestone's own keys (export form)."""

    kind: ChangeKind
    number: int | None
    fields: dict[str, Any]


def _validate_change(
    contract: Contract, change: ChangeInput, *, now: datetime, policy: Policy
) -> _Change:
    if isinstance(change, NewMilestone):
        return _Change(
            ChangeKind.ADD,
            None,
            {
                "title": _clean_text(change.title, what="title", limit=MAX_TITLE, required=True),
                "description": _clean_text(
                    change.description, what="description", limit=MAX_TEXT, required=False
                ),
                "amount_minor": _amount(contract, change.amount, policy),
                "due_date": _check_due_date(change.due_date, now).isoformat(),
            },
        )
    if isinstance(change, MilestoneEdit):
        fields: dict[str, Any] = {}
        if change.title is not None:
            fields["title"] = _clean_text(
                change.title, what="title", limit=MAX_TITLE, required=True
            )
        if change.description is not None:
            fields["description"] = _clean_text(
                change.description, what="description", limit=MAX_TEXT, required=False
            )
        if change.amount is not None:
            fields["amount_minor"] = _amount(contract, change.amount, policy)
        if change.due_date is not None:
            fields["due_date"] = _check_due_date(change.due_date, now).isoformat()
        if not fields:
            raise InvalidInput(
                f"Say what to change in milestone {change.number}: "
                "title=, amount=, due= or description=."
            )
        return _Change(ChangeKind.EDIT, change.number, fields)
    return _Change(ChangeKind.DELETE, change.number, {})


def _check_applicable(
    contract: Contract, change: _Change, *, direct: bool, milestones_added: int = 0
) -> None:
    """Raise if `change` can't be applied to the contract as it stands now."""
    if change.kind == ChangeKind.ADD:
        if len(contract.live_milestones) + milestones_added + 1 > MAX_MILESTONES:
            raise LimitExceeded(f"A contract can have at most {MAX_MILESTONES} milestones.")
        return
    assert change.number is not None
    milestone = _milestone(contract, change.number)
    if milestone.status == MilestoneStatus.DELETED:
        raise InvalidTransition(f"Milestone {milestone.number} was deleted.")
    if milestone.status == MilestoneStatus.RELEASED:
        raise InvalidTransition(
            f"Milestone {milestone.number} was already released; it can't change any more."
        )
    if change.kind == ChangeKind.DELETE:
        if milestone.is_active:
            raise MilestoneLocked(
                f"Milestone {milestone.number} is {milestone.status.value}, so it can't be "
                "deleted: escrow is held for it. Ending the contract refunds escrow."
            )
        return
    # An edit.
    current = milestone.fields()
    if all(current[key] == value for key, value in change.fields.items()):
        raise InvalidInput(f"Milestone {milestone.number} already has those values.")
    if milestone.is_active:
        if direct:
            raise MilestoneLocked(
                f"Milestone {milestone.number} is {milestone.status.value} and locked: "
                "it can't be edited directly. The provider side can propose a change "
                "to its title, description, due date or an increase of its amount."
            )
        new_amount = change.fields.get("amount_minor")
        if new_amount is not None and new_amount < milestone.amount_minor:
            raise MilestoneLocked(
                f"The amount of milestone {milestone.number} is funded, so it can only "
                f"increase (it is {_money(contract, milestone.amount_minor)})."
            )


def _apply_change(
    tx: _Tx,
    change: _Change,
    *,
    actor: str,
    request: ChangeRequest | None,
    message: str,
) -> Milestone:
    """Apply one validated, applicable change; write its history (and top-up)."""
    contract = tx.contract
    request_number = request.number if request else None
    if change.kind == ChangeKind.ADD:
        number = contract.next_milestone_number
        contract.next_milestone_number += 1
        milestone = Milestone(
            contract_id=contract.id,
            number=number,
            title=change.fields["title"],
            description=change.fields["description"],
            amount_minor=change.fields["amount_minor"],
            due_date=date.fromisoformat(change.fields["due_date"]),
            status=MilestoneStatus.PENDING,
            created_at=tx.now,
            submission_count=0,
            released_automatically=False,
        )
        tx.session.add(milestone)
        contract.milestones.append(milestone)
        tx.event(
            "milestone_added",
            actor,
            milestone_number=number,
            request_number=request_number,
            announce=request is None,
            after=milestone.fields(),
            message=message,
        )
        return milestone
    assert change.number is not None
    milestone = _milestone(contract, change.number)
    before = milestone.fields()
    if change.kind == ChangeKind.DELETE:
        milestone.status = milestone_next(milestone.status, MilestoneAction.DELETE)
        milestone.deleted_at = tx.now
        tx.event(
            "milestone_deleted",
            actor,
            milestone_number=milestone.number,
            request_number=request_number,
            announce=request is None,
            before=before,
            message=message,
        )
        return milestone
    old_amount = milestone.amount_minor
    for key, value in change.fields.items():
        setattr(milestone, key, date.fromisoformat(value) if key == "due_date" else value)
    after = milestone.fields()
    if "due_date" in change.fields:
        reminders.on_due_date_changed(tx.reminders, contract, milestone, now=tx.now)
    tx.event(
        "milestone_edited",
        actor,
        milestone_number=milestone.number,
        request_number=request_number,
        announce=request is None,
        before={k: before[k] for k in change.fields},
        after={k: after[k] for k in change.fields},
        message=message,
    )
    if milestone.is_active and milestone.amount_minor > old_amount:
        # An accepted increase of a funded milestone tops escrow up at once.
        assert request is not None
        difference = milestone.amount_minor - old_amount
        ledger.record(
            tx.session,
            contract_id=contract.id,
            milestone_id=milestone.id,
            kind=LedgerKind.TOP_UP,
            amount_minor=difference,
            actor=request.decided_by or actor,
            at=tx.now,
            key=f"top_up:{request.id}:{milestone.id}",
            request_id=request.id,
        )
        tx.event(
            "escrow_topped_up",
            request.decided_by or actor,
            milestone_number=milestone.number,
            request_number=request.number,
            amount_minor=difference,
        )
    return milestone


def _cancel_inapplicable(tx: _Tx, pending: Sequence[ChangeRequest], *, because: str) -> None:
    """Requests that can no longer apply become `cancelled`, with the reason."""
    for request in pending:
        if request.status != RequestStatus.PENDING:
            continue
        reason: str | None = None
        added = 0
        for change in request.changes:
            try:
                _check_applicable(
                    tx.contract,
                    _Change(change.kind, change.milestone_number, dict(change.fields)),
                    direct=False,
                    milestones_added=added,
                )
            except DomainError as refusal:
                reason = refusal.message
                break
            if change.kind == ChangeKind.ADD:
                added += 1
        if reason is not None:
            _cancel(tx, request, reason=f"{because}: {reason}")


def _cancel(tx: _Tx, request: ChangeRequest, *, reason: str) -> None:
    request.status = request_next(request.status, RequestAction.CANCEL, request.number)
    request.cancel_reason = reason
    request.decided_at = tx.now
    reminders.on_request_closed(tx.reminders, request)
    tx.event("request_cancelled", SYSTEM_ACTOR, request_number=request.number, reason=reason)
    tx.intent(IntentKind.REQUEST_CARD, subject_id=request.id)


def _clear_agreement(contract: Contract) -> None:
    contract.client_agreed_at = None
    contract.provider_agreed_by = None
    contract.provider_agreed_at = None


# --------------------------------------------------------------------------------------
# Contracts


def create_contract(
    session: Session,
    *,
    title: str,
    team_id: str,
    channel_id: str,
    creator_id: str,
    client_id: str,
    freelancer_id: str | None = None,
    agency: Agency | None = None,
    currency: str = "USD",
    now: datetime,
    team_ids: Mapping[str, str] | None = None,
) -> Outcome:
    """A new contract in `channel_id`; the creator must be one of its parties."""
    clean_title = _clean_text(title, what="title", limit=MAX_TITLE, required=True)
    code = normalize_currency(currency)
    if (freelancer_id is None) == (agency is None):
        raise InvalidInput("A contract has either a freelancer or an agency (not both).")
    parties: list[tuple[str, Role]] = [(client_id, Role.CLIENT)]
    agency_name: str | None = None
    if freelancer_id is not None:
        parties.append((freelancer_id, Role.FREELANCER))
    elif agency is not None:
        agency_name = _clean_text(agency.name, what="agency name", limit=MAX_TITLE, required=True)
        if not agency.manager_ids:
            raise InvalidInput("An agency needs at least one manager.")
        parties += [(u, Role.MANAGER) for u in agency.manager_ids]
        parties += [(u, Role.MEMBER) for u in agency.member_ids]
    seen: dict[str, Role] = {}
    for user_id, role in parties:
        if user_id in seen:
            raise InvalidInput(
                said(Person(user_id), f" can't be both {seen[user_id].value} and {role.value}."),
                field="parties",
            )
        seen[user_id] = role
    if creator_id not in seen:
        raise NotAllowed(
            "You can only create a contract you are a party to: name yourself as the client, "
            "the freelancer or an agency manager or member."
        )
    known_teams = {creator_id: team_id, **(team_ids or {})}
    with write_transaction(session):
        contract = Contract(
            title=clean_title,
            team_id=team_id,
            channel_id=channel_id,
            currency=code,
            status=ContractStatus.NEGOTIATING,
            agency_name=agency_name,
            created_by=creator_id,
            created_at=now,
            next_milestone_number=1,
            next_request_number=1,
            version=1,
            parties=[
                Party(user_id=user_id, role=role, team_id=known_teams.get(user_id))
                for user_id, role in parties
            ],
            milestones=[],
        )
        session.add(contract)
        session.flush()
        tx = _Tx(session, contract, now)
        tx.event(
            "contract_created",
            creator_id,
            title=clean_title,
            currency=code,
            parties={user_id: role.value for user_id, role in parties},
        )
        tx.changed()
        return tx.outcome(
            said(
                f"Contract {contract.id} ({clean_title}) created in {code}. "
                "Add milestones, then both sides type ",
                Command("start"),
                " to agree.",
            )
        )


def record_team(session: Session, *, contract_id: int, user_id: str, team_id: str) -> None:
    """Record the workspace a party acts from (Slack Connect), if not yet known."""
    with write_transaction(session):
        party = session.scalar(
            select(Party).where(Party.contract_id == contract_id, Party.user_id == user_id)
        )
        if party is not None and party.team_id is None:
            party.team_id = team_id


# --------------------------------------------------------------------------------------
# Milestone changes: directly, or as a change request


def change_milestones(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """`add`, `edit`, `delete`: applied directly where the rules allow, else proposed.

    While negotiating, the client, the freelancer or an agency manager change the
    milestones directly. Once active, the client changes future milestones directly;
    the provider side's changes become a change request for the client to answer.
    """
    if not changes:
        raise InvalidInput("There is nothing to change.")
    with write_transaction(session):
        contract = _lock_contract(session, contract_id)
        _require_open(contract)
        role = contract.role_of(actor_id)
        if contract.status == ContractStatus.ACTIVE and role in (
            Role.FREELANCER,
            Role.MANAGER,
            Role.MEMBER,  # refused by `_propose`, with a message naming the managers
        ):
            return _propose(session, contract, actor_id, changes, message, now, policy)
        act = (
            Act.EDIT_NEGOTIATING
            if contract.status == ContractStatus.NEGOTIATING
            else Act.EDIT_DIRECTLY
        )
        require(contract, actor_id, act)
        clean_message = _clean_text(message, what="message", limit=MAX_TEXT, required=False)
        if contract.status == ContractStatus.ACTIVE:
            pending = _pending_requests(session, contract)
            if len(pending) == 1:
                raise RequestPending(
                    said(
                        f"Change request {pending[0].number} from ",
                        Person(pending[0].proposed_by),
                        " is waiting for your answer: accept or decline it before changing "
                        "milestones directly.",
                    )
                )
            if pending:
                numbers = [str(r.number) for r in pending]
                listed = f"{', '.join(numbers[:-1])} and {numbers[-1]}"
                raise RequestPending(
                    f"Change requests {listed} are waiting for your answer: accept or "
                    "decline them before changing milestones directly."
                )
        tx = _Tx(session, contract, now)
        validated = [_validate_change(contract, c, now=now, policy=policy) for c in changes]
        touched: list[Milestone] = []
        for change in validated:
            _check_applicable(contract, change, direct=True)
            touched.append(
                _apply_change(tx, change, actor=actor_id, request=None, message=clean_message)
            )
        if contract.status == ContractStatus.NEGOTIATING and (
            contract.client_agreed_at or contract.provider_agreed_by
        ):
            _clear_agreement(contract)
            tx.event("agreement_cleared", SYSTEM_ACTOR, announce=False)
        tx.changed()
        return tx.outcome(_describe_direct(validated, touched), milestone_number=touched[-1].number)


def _describe_direct(changes: Sequence[_Change], touched: Sequence[Milestone]) -> str:
    parts = []
    for change, milestone in zip(changes, touched, strict=True):
        verb = {"add": "added", "edit": "updated", "delete": "deleted"}[change.kind.value]
        parts.append(f"Milestone {milestone.number} ({milestone.title}) {verb}.")
    return " ".join(parts)


def propose_changes(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
    revises_request_id: int | None = None,
) -> Outcome:
    """A change request from the freelancer or an agency manager on an active contract.

    With `revises_request_id`, the pending request is withdrawn and the new one sent
    in the same transaction ("revise").
    """
    if not changes:
        raise InvalidInput("A change request needs at least one change.")
    with write_transaction(session):
        contract = _lock_contract(session, contract_id)
        return _propose(
            session, contract, actor_id, changes, message, now, policy, revises_request_id
        )


def _propose(
    session: Session,
    contract: Contract,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str,
    now: datetime,
    policy: Policy,
    revises_request_id: int | None = None,
) -> Outcome:
    _require_open(contract)
    require(contract, actor_id, Act.PROPOSE)
    if contract.status != ContractStatus.ACTIVE:
        raise WrongPhase(
            said(
                "While the contract is being negotiated, change the milestones directly (",
                Command("add"),
                ", ",
                Command("edit"),
                ", ",
                Command("delete"),
                "); requests are for active contracts.",
            )
        )
    clean_message = _clean_text(message, what="message", limit=MAX_TEXT, required=False)
    tx = _Tx(session, contract, now)
    pending = _pending_requests(session, contract)
    revised: ChangeRequest | None = None
    if revises_request_id is not None:
        revised = next((r for r in pending if r.id == revises_request_id), None)
        if revised is None:
            old = queries.load_request(session, revises_request_id)
            if old.contract_id != contract.id:
                raise NotFound("That request is not part of this contract.")
            request_next(old.status, RequestAction.WITHDRAW, old.number)  # raises
        assert revised is not None
        _withdraw(tx, revised, actor_id)
        pending = [r for r in pending if r.id != revised.id]
    validated = [_validate_change(contract, c, now=now, policy=policy) for c in changes]
    numbers = [c.number for c in validated if c.number is not None]
    if len(numbers) != len(set(numbers)):
        raise InvalidInput("Each milestone can appear only once in a change request.")
    added = 0
    for change in validated:
        _check_applicable(contract, change, direct=False, milestones_added=added)
        added += change.kind == ChangeKind.ADD
        for other in pending:
            if change.number is not None and any(
                c.milestone_number == change.number for c in other.changes
            ):
                raise RequestPending(
                    f"Milestone {change.number} already has a pending change in request "
                    f"{other.number}; withdraw or revise that request instead."
                )
    request = ChangeRequest(
        contract_id=contract.id,
        number=contract.next_request_number,
        status=RequestStatus.PENDING,
        proposed_by=actor_id,
        proposed_at=now,
        message=clean_message,
        revision_of=revised.number if revised else None,
        changes=[
            Change(
                position=position,
                kind=change.kind,
                milestone_number=change.number,
                fields=change.fields,
                before=(
                    _milestone(contract, change.number).fields()
                    if change.number is not None
                    else None
                ),
            )
            for position, change in enumerate(validated)
        ],
    )
    session.add(request)
    session.flush()  # the request's id names its reminder and its card
    contract.next_request_number += 1
    tx.event(
        "request_proposed",
        actor_id,
        request_number=request.number,
        announce=False,  # the request's own card is the announcement
        changes=[
            {"kind": c.kind.value, "milestone_number": c.number, "fields": c.fields}
            for c in validated
        ],
        message=clean_message,
        revises=revised.number if revised else None,
    )
    reminders.on_request_proposed(tx.reminders, contract, request, now=now, policy=policy)
    tx.intent(IntentKind.REQUEST_CARD, subject_id=request.id)
    tx.changed()
    revised_note = f" It replaces request {revised.number}." if revised else ""
    return tx.outcome(
        said(
            f"Sent change request {request.number} to ",
            Person(contract.client_id),
            f" for a decision.{revised_note}",
        ),
        request_id=request.id,
        request_number=request.number,
        became_request=True,
    )


def _withdraw(tx: _Tx, request: ChangeRequest, actor_id: str) -> None:
    request.status = request_next(request.status, RequestAction.WITHDRAW, request.number)
    request.decided_by = actor_id
    request.decided_at = tx.now
    reminders.on_request_closed(tx.reminders, request)
    tx.event("request_withdrawn", actor_id, request_number=request.number)
    tx.intent(IntentKind.REQUEST_CARD, subject_id=request.id)


def _locked_request(
    session: Session,
    *,
    contract_id: int | None,
    request_id: int | None,
    number: int | None,
    others: bool = False,
) -> tuple[Contract, ChangeRequest, list[ChangeRequest]]:
    """The contract, locked, and the request named; with `others`, also the contract's
    other pending requests (read in the same statement)."""
    if request_id is not None:
        contract = _select_contract_for_update(
            session, ChangeRequest.id == request_id, via=ChangeRequest
        )
        if contract is None:
            raise NotFound(f"There is no change request with id {request_id}.")
        if contract_id is not None and contract.id != contract_id:
            raise NotFound(f"That request is not part of contract {contract_id}.")
        named = ChangeRequest.id == request_id
    else:
        if contract_id is None or number is None:
            raise InvalidInput("Say which request: its number.")
        contract = _lock_contract(session, contract_id)
        named = ChangeRequest.number == number
    requests = _requests(session, contract, pending=others, also=named)
    request: ChangeRequest | None
    if request_id is not None:
        request = next((r for r in requests if r.id == request_id), None)
    else:
        request = next((r for r in requests if r.number == number), None)
    if request is None:
        raise NotFound(f"Contract {contract.id} has no change request {number}.")
    return contract, request, [r for r in requests if r is not request]


def _already(
    tx: _Tx, request: ChangeRequest, action: RequestAction, actor_id: str
) -> Outcome | None:
    """A repeat of the action that already decided the request is a harmless no-op."""
    if request.status == REQUEST_TARGET[action] and request.decided_by == actor_id:
        return tx.outcome(
            f"Request {request.number} is already {request.status.value}.",
            already_done=True,
            request_id=request.id,
            request_number=request.number,
        )
    return None


def accept_request(
    session: Session,
    *,
    actor_id: str,
    now: datetime,
    request_id: int | None = None,
    contract_id: int | None = None,
    number: int | None = None,
) -> Outcome:
    """The client accepts: every change applies at once, or none of them."""
    with write_transaction(session):
        contract, request, others = _locked_request(
            session, contract_id=contract_id, request_id=request_id, number=number, others=True
        )
        tx = _Tx(session, contract, now)
        require(contract, actor_id, Act.ACCEPT, f"accept request {request.number}")
        if (done := _already(tx, request, RequestAction.ACCEPT, actor_id)) is not None:
            return done
        _require_open(contract)
        request_next(request.status, RequestAction.ACCEPT, request.number)
        # Re-check every change against the contract as it is now.
        changes = [_Change(c.kind, c.milestone_number, dict(c.fields)) for c in request.changes]
        added = 0
        for change in changes:
            _check_applicable(contract, change, direct=False, milestones_added=added)
            added += change.kind == ChangeKind.ADD
        request.status = RequestStatus.ACCEPTED
        request.decided_by = actor_id
        request.decided_at = now
        reminders.on_request_closed(tx.reminders, request)
        top_up = 0
        for stored, change in zip(request.changes, changes, strict=True):
            old = (
                _milestone(contract, change.number).amount_minor if change.number is not None else 0
            )
            milestone = _apply_change(
                tx, change, actor=request.proposed_by, request=request, message=request.message
            )
            if milestone.is_active:
                top_up += milestone.amount_minor - old
            if stored.kind == ChangeKind.ADD:
                stored.milestone_number = milestone.number
        tx.event("request_accepted", actor_id, request_number=request.number, top_up=top_up)
        tx.intent(IntentKind.REQUEST_CARD, subject_id=request.id)
        _cancel_inapplicable(tx, others, because=f"request {request.number} was accepted")
        tx.changed()
        note = f" Escrow topped up by {_money(contract, top_up)}." if top_up else ""
        return tx.outcome(
            f"Accepted request {request.number}.{note}",
            request_id=request.id,
            request_number=request.number,
        )


def decline_request(
    session: Session,
    *,
    actor_id: str,
    now: datetime,
    reason: str = "",
    request_id: int | None = None,
    contract_id: int | None = None,
    number: int | None = None,
) -> Outcome:
    with write_transaction(session):
        contract, request, _ = _locked_request(
            session, contract_id=contract_id, request_id=request_id, number=number
        )
        tx = _Tx(session, contract, now)
        require(contract, actor_id, Act.DECLINE, f"decline request {request.number}")
        if (done := _already(tx, request, RequestAction.DECLINE, actor_id)) is not None:
            return done
        _require_open(contract)
        clean_reason = _clean_text(reason, what="reason", limit=MAX_TEXT, required=False)
        request.status = request_next(request.status, RequestAction.DECLINE, request.number)
        request.decided_by = actor_id
        request.decided_at = now
        request.decline_reason = clean_reason or None
        reminders.on_request_closed(tx.reminders, request)
        tx.event("request_declined", actor_id, request_number=request.number, reason=clean_reason)
        tx.intent(IntentKind.REQUEST_CARD, subject_id=request.id)
        tx.changed()
        return tx.outcome(
            f"Declined request {request.number}.",
            request_id=request.id,
            request_number=request.number,
        )


def withdraw_request(
    session: Session,
    *,
    actor_id: str,
    now: datetime,
    request_id: int | None = None,
    contract_id: int | None = None,
    number: int | None = None,
) -> Outcome:
    """The proposer (or, in an agency, another manager) takes a pending request back."""
    with write_transaction(session):
        contract, request, _ = _locked_request(
            session, contract_id=contract_id, request_id=request_id, number=number
        )
        tx = _Tx(session, contract, now)
        role = require(contract, actor_id, Act.WITHDRAW, f"withdraw request {request.number}")
        if (done := _already(tx, request, RequestAction.WITHDRAW, actor_id)) is not None:
            return done
        _require_open(contract)
        if role == Role.FREELANCER and request.proposed_by != actor_id:
            raise NotAllowed(
                said(
                    "Only the proposer, ",
                    Person(request.proposed_by),
                    f", can withdraw request {request.number}.",
                )
            )
        _withdraw(tx, request, actor_id)
        tx.changed()
        return tx.outcome(
            f"Withdrew request {request.number}.",
            request_id=request.id,
            request_number=request.number,
        )


# --------------------------------------------------------------------------------------
# Agreement and activation


def agree_to_terms(session: Session, *, contract_id: int, actor_id: str, now: datetime) -> Outcome:
    """`start`: one side agrees to the terms as they stand; both → active."""
    with write_transaction(session):
        contract = _lock_contract(session, contract_id)
        tx = _Tx(session, contract, now)
        role = require(contract, actor_id, Act.AGREE)
        if contract.status == ContractStatus.ACTIVE:
            return tx.outcome(f"Contract {contract.id} is already active.", already_done=True)
        _require_open(contract)
        if not contract.live_milestones:
            raise InvalidInput("Add at least one milestone before agreeing to the terms.")
        side_done = (
            contract.client_agreed_at is not None
            if role == Role.CLIENT
            else contract.provider_agreed_by is not None
        )
        if side_done:
            waiting = (
                who_can(contract, Act.PROPOSE)
                if role == Role.CLIENT
                else said("the client, ", Person(contract.client_id))
            )
            return tx.outcome(
                said("Your side has already agreed; waiting for ", waiting, "."),
                already_done=True,
            )
        if role == Role.CLIENT:
            contract.client_agreed_at = now
        else:
            contract.provider_agreed_by = actor_id
            contract.provider_agreed_at = now
        tx.event(
            "terms_agreed",
            actor_id,
            side="client" if role == Role.CLIENT else "provider",
            total_minor=contract.total_minor,
        )
        activated = contract.client_agreed_at is not None and contract.provider_agreed_by
        if activated:
            contract.status = contract_next(contract.status, ContractAction.ACTIVATE)
            contract.activated_at = now
            tx.event("contract_activated", SYSTEM_ACTOR, total_minor=contract.total_minor)
            summary = said(
                f"Contract {contract.id} is active. Next: the client funds milestone "
                f"{contract.next_to_fund.number if contract.next_to_fund else 1}."
            )
        else:
            other = (
                who_can(contract, Act.PROPOSE)
                if role == Role.CLIENT
                else said("the client, ", Person(contract.client_id))
            )
            summary = said(
                "You agreed to the terms. Waiting for ", mid_sentence(other), " to agree."
            )
        tx.changed()
        return tx.outcome(summary, contract_activated=bool(activated))


# --------------------------------------------------------------------------------------
# Escrow: fund, submit, approve, request changes, automatic release


def fund_milestone(
    session: Session,
    *,
    contract_id: int,
    actor_id: str,
    now: datetime,
    milestone_id: int | None = None,
) -> Outcome:
    """Fund the next milestone in order (a button names the one it showed)."""
    with write_transaction(session):
        contract = _lock_contract(session, contract_id)
        tx = _Tx(session, contract, now)
        require(contract, actor_id, Act.FUND)
        if milestone_id is not None:
            shown = _milestone_by_id(contract, milestone_id)
            if shown.funded_at is not None and shown.refunded_at is None:
                return tx.outcome(
                    f"Milestone {shown.number} is already funded.",
                    already_done=True,
                    milestone_number=shown.number,
                )
        _require_active(contract, "fund milestones")
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
        pending = _pending_requests(session, contract)
        milestone.status = milestone_next(milestone.status, MilestoneAction.FUND)
        milestone.funded_at = now
        milestone.funded_by = actor_id
        reminders.on_milestone_funded(tx.reminders, contract, milestone, now=now)
        ledger.record(
            session,
            contract_id=contract.id,
            milestone_id=milestone.id,
            kind=LedgerKind.FUND,
            amount_minor=milestone.amount_minor,
            actor=actor_id,
            at=now,
            key=f"fund:{milestone.id}",
        )
        tx.event(
            "milestone_funded",
            actor_id,
            milestone_number=milestone.number,
            amount_minor=milestone.amount_minor,
        )
        _cancel_inapplicable(tx, pending, because=f"milestone {milestone.number} was funded")
        tx.changed()
        return tx.outcome(
            f"Funded milestone {milestone.number} ({milestone.title}) with "
            f"{_money(contract, milestone.amount_minor)}. The provider can start.",
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
        contract = _lock_contract(session, contract_id)
        tx = _Tx(session, contract, now)
        require(contract, actor_id, Act.SUBMIT)
        _require_active(contract, "submit work")
        clean_note = _clean_text(note, what="note", limit=MAX_TEXT, required=False)
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
        milestone.status = milestone_next(milestone.status, MilestoneAction.SUBMIT)
        milestone.submitted_at = now
        milestone.submitted_by = actor_id
        milestone.submission_note = clean_note or None
        milestone.submission_count += 1
        milestone.auto_release_at = now + policy.auto_release_period
        reminders.on_work_submitted(tx.reminders, contract, milestone, now=now, policy=policy)
        tx.event(
            "work_submitted",
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


def _release(
    tx: _Tx,
    milestone: Milestone,
    *,
    actor: str,
    automatic: bool,
    policy: Policy,
    pending: Sequence[ChangeRequest] | None = None,
    held: int | None = None,
) -> int:
    """Release what is held for `milestone` to the provider. `pending` and `held`: the
    contract's pending requests and the escrow held for the milestone, when the caller
    read them already (for a whole batch at once)."""
    contract = tx.contract
    # Read before anything changes, so no read has to flush half-made changes first.
    if pending is None:
        pending = _pending_requests(tx.session, contract)
    if held is None:
        held = ledger.held_for_milestone(tx.session, milestone.id)
    action = MilestoneAction.AUTO_RELEASE if automatic else MilestoneAction.APPROVE
    milestone.status = milestone_next(milestone.status, action)
    milestone.released_at = tx.now
    milestone.released_by = actor
    milestone.released_automatically = automatic
    ledger.record(
        tx.session,
        contract_id=contract.id,
        milestone_id=milestone.id,
        kind=LedgerKind.RELEASE,
        amount_minor=held,
        actor=actor,
        at=tx.now,
        key=f"release:{milestone.id}",
        held_minor=held,
        flush=False,  # with the rest of the transaction (the unique key still holds)
    )
    tx.event(
        "milestone_released",
        actor,
        milestone_number=milestone.number,
        amount_minor=held,
        automatic=automatic,
    )
    tx.intent(IntentKind.WORK_CARD, subject_id=milestone.id)
    reminders.on_milestone_released(tx.reminders, contract, milestone, now=tx.now, policy=policy)
    _cancel_inapplicable(tx, pending, because=f"milestone {milestone.number} was released")
    tx.changed()
    return held


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
        contract = _lock_contract(session, contract_id)
        tx = _Tx(session, contract, now)
        require(contract, actor_id, Act.APPROVE)
        if milestone_id is not None:
            shown = _milestone_by_id(contract, milestone_id)
            if shown.status == MilestoneStatus.RELEASED:
                how = "automatically" if shown.released_automatically else "already"
                return tx.outcome(
                    f"Milestone {shown.number} was {how} released.",
                    already_done=True,
                    milestone_number=shown.number,
                )
        _require_active(contract, "approve work")
        milestone = contract.in_progress
        if milestone is None or milestone.status != MilestoneStatus.SUBMITTED:
            raise InvalidTransition(
                "There is no submitted work to approve: approval applies to submitted work."
            )
        if milestone_id is not None and milestone.id != milestone_id:
            raise InvalidTransition("That submission is no longer waiting for review.")
        held = _release(tx, milestone, actor=actor_id, automatic=False, policy=policy)
        return tx.outcome(
            f"Approved milestone {milestone.number}: {_money(contract, held)} released.",
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
        contract = _lock_contract(session, contract_id)
        tx = _Tx(session, contract, now)
        require(contract, actor_id, Act.REQUEST_CHANGES)
        _require_active(contract, "request changes")
        clean_note = _clean_text(note, what="note", limit=MAX_TEXT, required=True)
        milestone = contract.in_progress
        target = _milestone_by_id(contract, milestone_id) if milestone_id is not None else milestone
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
            shown = _milestone_by_id(contract, milestone_id)
            if shown is not milestone or shown.status != MilestoneStatus.SUBMITTED:
                raise InvalidTransition(
                    f"Milestone {shown.number} is {shown.status.value}, not waiting for review."
                )
        if milestone is None or milestone.status != MilestoneStatus.SUBMITTED:
            raise InvalidTransition("There is no submitted work to send back.")
        milestone.status = milestone_next(milestone.status, MilestoneAction.REQUEST_CHANGES)
        milestone.changes_requested_at = now
        milestone.changes_requested_note = clean_note
        milestone.auto_release_at = None
        reminders.on_review_closed(tx.reminders, milestone)
        tx.event("changes_requested", actor_id, milestone_number=milestone.number, note=clean_note)
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
    approval uses, `_release`."""
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
            contract_id = _contract_id_of_milestone(session, one)  # NotFound if there is none
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
        pending = _pending_requests_of(session, [m.contract_id for m in releasing])
        held = ledger.held_for_milestones(session, [m.id for m in releasing])
        writes = _Writes(session, now)
        released: list[tuple[Contract, Milestone, int]] = []
        for contract in contracts:
            milestone = due[contract.id]
            if milestone is None:
                continue
            tx = _Tx(session, contract, now, writes)
            amount = _release(
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
                    f"{_money(contract, amount)}."
                ),
                milestone_number=milestone.number,
                outbox_ids=tuple(written.get(contract.id, ())),
            )
            for contract, milestone, amount in released
        ]
        if one is not None and not released:
            [contract] = contracts
            milestone = _milestone_by_id(contract, one)
            outcomes = [
                Outcome(
                    contract.id,
                    said(f"Milestone {milestone.number} is not due for automatic release."),
                    already_done=True,
                    milestone_number=milestone.number,
                )
            ]
        return outcomes


def _pending_requests_of(
    session: Session, contract_ids: Sequence[int]
) -> dict[int, list[ChangeRequest]]:
    """The pending change requests of several contracts, with their changes."""
    if not contract_ids:
        return {}
    found: dict[int, list[ChangeRequest]] = {}
    for request in session.scalars(
        select(ChangeRequest)
        .where(
            ChangeRequest.contract_id.in_(contract_ids),
            ChangeRequest.status == RequestStatus.PENDING,
        )
        .options(joinedload(ChangeRequest.changes))
        .order_by(ChangeRequest.contract_id, ChangeRequest.number)
        .execution_options(populate_existing=True)
    ).unique():
        found.setdefault(request.contract_id, []).append(request)
    return found


def due_auto_releases(session: Session, *, now: datetime, limit: int = 100) -> list[int]:
    """Ids of submitted milestones whose automatic release is due."""
    return list(
        session.scalars(
            select(Milestone.id)
            .where(Milestone.status == MilestoneStatus.SUBMITTED, Milestone.auto_release_at <= now)
            .order_by(Milestone.auto_release_at)
            .limit(limit)
        )
    )


# --------------------------------------------------------------------------------------
# Ending


def end_contract(session: Session, *, contract_id: int, actor_id: str, now: datetime) -> Outcome:
    """Either side ends the contract: escrow is refunded, pending requests cancelled."""
    with write_transaction(session):
        contract = _lock_contract(session, contract_id)
        tx = _Tx(session, contract, now)
        role = require(contract, actor_id, Act.END)
        if contract.status == ContractStatus.CLOSED:
            return tx.outcome(f"Contract {contract.id} has already ended.", already_done=True)
        current = contract.in_progress
        if role == Role.CLIENT and current and current.status == MilestoneStatus.SUBMITTED:
            raise InvalidTransition(
                f"Milestone {current.number} has submitted work waiting for your review: "
                "approve it or request changes before ending the contract."
            )
        pending = _pending_requests(session, contract)
        active = [m for m in contract.milestones if m.is_active]
        held_for = {m.id: ledger.held_for_milestone(session, m.id) for m in active}
        contract.status = contract_next(contract.status, ContractAction.END)
        contract.closed_at = now
        contract.closed_by = actor_id
        refunded = 0
        for milestone in active:
            held = held_for[milestone.id]
            milestone.status = milestone_next(milestone.status, MilestoneAction.REFUND)
            milestone.refunded_at = now
            milestone.auto_release_at = None
            if held:
                ledger.record(
                    session,
                    contract_id=contract.id,
                    milestone_id=milestone.id,
                    kind=LedgerKind.REFUND,
                    amount_minor=held,
                    actor=actor_id,
                    at=now,
                    key=f"refund:{milestone.id}",
                    held_minor=held,
                )
                refunded += held
        for request in pending:
            _cancel(tx, request, reason="the contract ended")
        reminders.on_contract_ended(tx.reminders, contract)
        tx.event("contract_ended", actor_id, refunded_minor=refunded)
        tx.changed()
        note = f" {_money(contract, refunded)} refunded to the client." if refunded else ""
        return tx.outcome(f"Contract {contract.id} ended.{note}")
