"""Random sequences of operations, by anyone, keep every business invariant.

A hypothesis `RuleBasedStateMachine` drives the real services of `domain/services.py`
on one or two contracts (an individual one in USD, an agency one in JPY): milestones
are added, edited and deleted, terms agreed, changes proposed (and revised), accepted,
declined, withdrawn and countered (by either side), milestones funded, submitted, sent
back, approved and released automatically, contracts ended (by the client with a window
for the provider: refund accepted, disputed, or refunded when it runs out), work and
end-refunds disputed and settled by a split or an operator — by the client, the freelancer, agency
managers and members, and people who are not parties, while the clock moves forward.

A refusal (`DomainError`) or an "already done" answer must leave the database exactly
as it was (every row of every table the services write, which covers the export, the
history and the ledger). After every step the state is read back and checked: escrow
recomputed from the ledger, one release per released milestone, only transitions of
the tables in `domain/rules.py`, one milestone in progress at a time, closed contracts
frozen, history and ledger telling the same story, numbers never reused, and no
pending request that could no longer apply.

Runs on SQLite and on PostgreSQL, each example on an empty database. The example
count comes from the hypothesis profile (`MILESTONE_FUZZ_EXAMPLES`, 100 under CI).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import hypothesis
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Integer, Table, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from domain import queries, services
from domain.db import make_engine, make_session_factory
from domain.errors import DomainError
from domain.model import (
    SYSTEM_ACTOR,
    Base,
    ChangeKind,
    ContractStatus,
    LedgerKind,
    MilestoneStatus,
    RequestStatus,
    Role,
)
from domain.policy import DEFAULT_POLICY
from domain.rules import (
    CONTRACT_TRANSITIONS,
    MILESTONE_TRANSITIONS,
    PERMISSIONS,
    REQUEST_PERMISSIONS,
    REQUEST_TRANSITIONS,
    Act,
    ContractAction,
    MilestoneAction,
    RequestAction,
    side_of,
)
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone, Outcome
from tests.conftest import Database
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    MEMBER,
    NOW,
    OUTSIDER,
    new_contract,
)

STEPS = 30
# Ending a contract freezes it: allowed only once this many steps have run, so most
# examples get somewhere first.
END_AFTER_STEPS = 12
NO_SUCH_ID = 2**31 - 1  # the largest id an INTEGER column holds

# Escrow is held for it (a disputed milestone's is frozen, still held).
ACTIVE = (MilestoneStatus.FUNDED, MilestoneStatus.SUBMITTED, MilestoneStatus.DISPUTED)
M = MilestoneAction
R = RequestAction

T = TypeVar("T")


def mostly(valid: Sequence[T], invalid: Sequence[T] = ()) -> st.SearchStrategy[T]:
    """Valid values about nineteen times in twenty, shrinking towards the first one.

    The invalid ones sit in the middle: hypothesis favours the ends of a range.
    """
    copies = max(2, -(-10 * len(invalid) // len(valid)))
    return st.sampled_from([*valid * copies, *invalid, *valid * copies])


# --------------------------------------------------------------------------------------
# Who acts: a slot in the scene, cast per contract. In the individual contract the
# "member" slot is an agency manager of the other contract: a stranger here.

SLOTS = ("client", "provider", "colleague", "member", "outsider")
CAST: dict[bool, dict[str, str]] = {
    False: {
        "client": CLIENT,
        "provider": FREELANCER,
        "colleague": FREELANCER,
        "member": MANAGER,
        "outsider": OUTSIDER,
    },
    True: {
        "client": CLIENT,
        "provider": MANAGER,
        "colleague": MANAGER_2,
        "member": MEMBER,
        "outsider": OUTSIDER,
    },
}
ROLES: dict[bool, dict[str, Role]] = {
    False: {CLIENT: Role.CLIENT, FREELANCER: Role.FREELANCER},
    True: {
        CLIENT: Role.CLIENT,
        MANAGER: Role.MANAGER,
        MANAGER_2: Role.MANAGER,
        MEMBER: Role.MEMBER,
    },
}


def likely(*slots: str) -> st.SearchStrategy[str]:
    """Usually (four times in five) someone who may act, sometimes anyone at all."""
    return st.sampled_from(list(slots) * (15 // len(slots)) + list(SLOTS))


# --------------------------------------------------------------------------------------
# What they type: mostly valid, sometimes not (a refusal must change nothing).

# 0 and 1 name a contract; 2 and 3 mean "one the action suits, if there is one".
CONTRACT = mostly([2, 3], [0, 1])
NUMBER = st.integers(min_value=1, max_value=3)
# The milestone a button showed: none (a command), 0 for the one the action is about,
# or a number (perhaps of a stale card, perhaps of no milestone at all).
SHOWN = mostly([None, 0], [1, 2, 9])
REVISES = mostly([None, None, None], [1, 2, 9])
# The request a button showed: 0 for a pending one, or a number (perhaps of a decided
# request, perhaps of none at all).
REQUEST = mostly([0, 0, 0, 1], [2, 3, 9])
# When a timer fires, in hours from its deadline (None: whenever it is now).
FIRES_AT = st.sampled_from([None, 0, -1, 1, 48])
TITLES = mostly(["Design", "Build", "Launch"], ["   ", "x" * 201])
DESCRIPTIONS = mostly(["", "Pixel-perfect mock-ups"], ["d" * 2001])
AMOUNTS = mostly(["1500", "2500", "400", "9000", "1,250", "99.99"], ["0", "-5", "1.234", "ten"])
DUE_IN_DAYS = mostly([0, 1, 10, 20, 30, 60, 90, -1], [-3, 365 * 21])
MESSAGES = mostly(["", "Please have a look"], ["m" * 2001])
NOTES = mostly(["Done, see the link", "Header is off"], ["", "n" * 2001])
HOURS = st.sampled_from([1, 0, 5, 24, 72, 7 * 24, 13 * 24, 14 * 24, 15 * 24, 30 * 24])
PHASES = mostly(
    ["negotiating", "active", "funded", "submitted", "submitted", "ending", "disputed"], ["empty"]
)

ChangeSpec = tuple[Any, ...]
CHANGES = st.lists(
    st.one_of(
        st.tuples(st.just("add"), TITLES, AMOUNTS, DUE_IN_DAYS, DESCRIPTIONS),
        st.tuples(
            st.just("edit"),
            NUMBER,
            st.none() | TITLES,
            st.none() | AMOUNTS,
            st.none() | DUE_IN_DAYS,
            st.none() | DESCRIPTIONS,
        ),
        st.tuples(st.just("delete"), NUMBER),
    ),
    min_size=1,
    max_size=2,
)


# --------------------------------------------------------------------------------------
# What the database holds, read back after every step

Row = dict[str, Any]
# Every table: what the services write today and whatever they write tomorrow.
SNAPSHOT_TABLES: tuple[Table, ...] = tuple(Base.metadata.sorted_tables)
COLUMNS = {table.name: [column.name for column in table.columns] for table in SNAPSHOT_TABLES}
VIEWED_TABLES = (
    "contract",
    "milestone",
    "change_request",
    "change",
    "ledger_entry",
    "event",
    "outbox_message",
)


@dataclass(frozen=True)
class ContractView:
    row: Row
    agency: bool
    milestones: dict[int, Row]  # by number
    requests: dict[int, Row]  # by number, with their "changes"
    ledger: list[Row]  # in order, with the milestone's "milestone_number"
    events: list[Row]  # in order
    outbox: list[Row]

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def status(self) -> ContractStatus:
        return ContractStatus(self.row["status"])

    @property
    def milestone_ids(self) -> dict[int, int]:
        return {number: m["id"] for number, m in self.milestones.items()}

    @property
    def request_ids(self) -> dict[int, int]:
        return {number: r["id"] for number, r in self.requests.items()}

    @property
    def balance(self) -> int:
        return sum(_signed(e) for e in self.ledger)

    def events_of(self, kind: str) -> list[Row]:
        return [e for e in self.events if e["kind"] == kind]

    def entries_of(self, kind: LedgerKind) -> list[Row]:
        return [e for e in self.ledger if e["kind"] == kind]


@dataclass(frozen=True)
class World:
    """Every row the services write; equal worlds mean nothing changed."""

    tables: dict[str, tuple[tuple[Any, ...], ...]]  # rows in table column order
    contracts: dict[int, ContractView] = field(compare=False)
    fingerprint: tuple[Any, ...] | None = field(default=None, compare=False)

    def rows(self, name: str) -> list[Row]:
        return [dict(zip(COLUMNS[name], row, strict=True)) for row in self.tables[name]]


def fingerprint(session: Session) -> tuple[Any, ...] | None:
    """A digest of every row of every table in one round trip (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    digests = ", ".join(
        f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY "
        f"{', '.join(f't.{c.name}' for c in table.primary_key.columns)}), '')) "
        f"FROM {table.name} AS t)"
        for table in SNAPSHOT_TABLES
    )
    return tuple(session.execute(text(f"SELECT {digests}")).one())


def observe(session: Session, agency_of: dict[int, bool], last: World | None = None) -> World:
    """Read every table back; `last` again if its fingerprint says nothing changed."""
    digest = fingerprint(session)
    if last is not None and digest is not None and digest == last.fingerprint:
        return last
    tables = {
        table.name: tuple(
            tuple(row)
            for row in session.execute(select(table).order_by(*table.primary_key.columns))
        )
        for table in SNAPSHOT_TABLES
    }
    world = World(tables=tables, contracts={}, fingerprint=digest)
    rows = {name: world.rows(name) for name in VIEWED_TABLES}
    number_of = {m["id"]: m["number"] for m in rows["milestone"]}
    changes: dict[int, list[Row]] = {}
    for change in rows["change"]:
        changes.setdefault(change["request_id"], []).append(change)

    def of(name: str, cid: int) -> list[Row]:
        return [row for row in rows[name] if row["contract_id"] == cid]

    for row in rows["contract"]:
        cid = row["id"]
        world.contracts[cid] = ContractView(
            row=row,
            agency=agency_of[cid],
            milestones={m["number"]: m for m in of("milestone", cid)},
            requests={
                r["number"]: {
                    **r,
                    "changes": sorted(changes.get(r["id"], []), key=lambda c: c["position"]),
                }
                for r in of("change_request", cid)
            },
            ledger=[
                {**e, "milestone_number": number_of.get(e["milestone_id"])}
                for e in of("ledger_entry", cid)
            ],
            events=of("event", cid),
            outbox=of("outbox_message", cid),
        )
    return world


def _signed(entry: Row) -> int:
    """What an entry does to escrow (a bonus is paid outside it)."""
    if entry["kind"] == LedgerKind.BONUS:
        return 0
    inflow = entry["kind"] in (LedgerKind.FUND, LedgerKind.TOP_UP)
    return int(entry["amount_minor"]) * (1 if inflow else -1)


def _partial(entry: Row) -> bool:
    """A release of part of what is held (`release:<milestone>:part:<k>`)."""
    return entry["kind"] == LedgerKind.RELEASE and ":part:" in entry["key"]


def _fields(milestone: Row) -> dict[str, Any]:
    """A milestone's editable fields in the form change requests store them."""
    return {
        "title": milestone["title"],
        "description": milestone["description"],
        "amount_minor": milestone["amount_minor"],
        "due_date": milestone["due_date"].isoformat(),
    }


# --------------------------------------------------------------------------------------
# What one action may do


@dataclass(frozen=True)
class Effects:
    """The transitions an action may cause, and what it may create."""

    milestone: frozenset[MilestoneAction] = frozenset()
    request: frozenset[RequestAction] = frozenset()
    contract: frozenset[ContractAction] = frozenset()
    adds_milestones: bool = False
    adds_requests: bool = False

    def allows_milestone(self, old: MilestoneStatus, new: MilestoneStatus) -> bool:
        return any(MILESTONE_TRANSITIONS.get((old, a)) == new for a in self.milestone)

    def allows_request(self, old: RequestStatus, new: RequestStatus) -> bool:
        return any(REQUEST_TRANSITIONS.get((old, a)) == new for a in self.request)

    def allows_contract(self, old: ContractStatus, new: ContractStatus) -> bool:
        return any(CONTRACT_TRANSITIONS.get((old, a)) == new for a in self.contract)


CHANGE_EFFECTS = Effects(milestone=frozenset({M.DELETE}), adds_milestones=True, adds_requests=True)
PROPOSE_EFFECTS = Effects(request=frozenset({R.WITHDRAW}), adds_requests=True)
AGREE_EFFECTS = Effects(contract=frozenset({ContractAction.ACTIVATE}))
ACCEPT_EFFECTS = Effects(
    milestone=frozenset({M.DELETE}), request=frozenset({R.ACCEPT, R.CANCEL}), adds_milestones=True
)
DECLINE_EFFECTS = Effects(request=frozenset({R.DECLINE}))
WITHDRAW_EFFECTS = Effects(request=frozenset({R.WITHDRAW}))
COUNTER_EFFECTS = Effects(request=frozenset({R.COUNTER}), adds_requests=True)
FUND_EFFECTS = Effects(milestone=frozenset({M.FUND}), request=frozenset({R.CANCEL}))
SUBMIT_EFFECTS = Effects(milestone=frozenset({M.SUBMIT}))
SEND_BACK_EFFECTS = Effects(milestone=frozenset({M.REQUEST_CHANGES}))
APPROVE_EFFECTS = Effects(milestone=frozenset({M.APPROVE}), request=frozenset({R.CANCEL}))
AUTO_RELEASE_EFFECTS = Effects(milestone=frozenset({M.AUTO_RELEASE}), request=frozenset({R.CANCEL}))
# Releasing everything held of submitted work is an approval.
PARTIAL_RELEASE_EFFECTS = Effects(
    milestone=frozenset({M.RELEASE_PART, M.APPROVE}), request=frozenset({R.CANCEL})
)
BONUS_EFFECTS = Effects()
MORE_TIME_EFFECTS = Effects(milestone=frozenset({M.ASK_FOR_TIME, M.EXTEND_REVIEW}))
END_EFFECTS = Effects(
    milestone=frozenset({M.REFUND}),
    request=frozenset({R.CANCEL}),
    contract=frozenset({ContractAction.END, ContractAction.BEGIN_ENDING}),
)
# Accepting the end-refund, or the window running out: refunded and closed.
REFUND_EFFECTS = Effects(
    milestone=frozenset({M.REFUND}),
    request=frozenset({R.CANCEL}),
    contract=frozenset({ContractAction.END}),
)
DISPUTE_EFFECTS = Effects(milestone=frozenset({M.DISPUTE}), request=frozenset({R.CANCEL}))
# A split agreed (or decided): released, or all refunded; an ending contract closes.
SETTLE_EFFECTS = Effects(
    milestone=frozenset({M.SETTLE, M.REFUND}),
    request=frozenset({R.CANCEL}),
    contract=frozenset({ContractAction.END}),
)


@dataclass(frozen=True)
class Result:
    outcome: Outcome | None
    refusal: DomainError | None
    before: ContractView
    after: ContractView

    @property
    def done(self) -> bool:
        """The action took effect now (not refused, not a repeat)."""
        return self.outcome is not None and not self.outcome.already_done


# --------------------------------------------------------------------------------------
# Starting points, built once by the services and then replayed as rows: setting up
# contracts costs as much as the steps that follow, and the steps are what is tested.


@dataclass(frozen=True)
class Prepared:
    world: World
    agency_of: dict[int, bool]
    contract_ids: list[int]


PREPARED: dict[tuple[tuple[bool, str], ...], Prepared] = {}


def replay(database: Database, prepared: Prepared) -> None:
    """Insert the prepared rows into an empty database, ids included."""
    with database.engine.begin() as conn:
        for table in SNAPSHOT_TABLES:
            if prepared.world.tables.get(table.name):
                conn.execute(table.insert(), prepared.world.rows(table.name))
        if conn.dialect.name == "postgresql":
            # Explicit ids leave the sequences behind: move them past the rows.
            for table in SNAPSHOT_TABLES:
                if (
                    "id" in table.c
                    and table.c.id.autoincrement in (True, "auto")
                    and isinstance(table.c.id.type, Integer)  # not a provider's event id
                ):
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table.name}), false)"
                        )
                    )


# --------------------------------------------------------------------------------------
# The machine

OpenDatabase = Callable[[], tuple[Database, Callable[[], None]]]


def _any_contract(test: Callable[[ContractView], bool]) -> Callable[[ContractMachine], bool]:
    return lambda machine: any(test(view) for view in machine.world.contracts.values())


def _is_active(view: ContractView) -> bool:
    return view.status == ContractStatus.ACTIVE


def _is_open(view: ContractView) -> bool:
    return view.status != ContractStatus.CLOSED


def _is_negotiating(view: ContractView) -> bool:
    return view.status == ContractStatus.NEGOTIATING


def _has_requests(view: ContractView) -> bool:
    return bool(view.requests)


def _has_pending(view: ContractView) -> bool:
    return any(r["status"] == RequestStatus.PENDING for r in view.requests.values())


def _has_milestone(status: MilestoneStatus) -> Callable[[ContractView], bool]:
    def test(view: ContractView) -> bool:
        return _is_active(view) and any(m["status"] == status for m in view.milestones.values())

    return test


_has_funded = _has_milestone(MilestoneStatus.FUNDED)
_has_submitted = _has_milestone(MilestoneStatus.SUBMITTED)


def _is_ending(view: ContractView) -> bool:
    return view.status == ContractStatus.ENDING


def _has_disputed(view: ContractView) -> bool:
    return any(m["status"] == MilestoneStatus.DISPUTED for m in view.milestones.values())


def _can_fund(view: ContractView) -> bool:
    statuses = {m["status"] for m in view.milestones.values()}
    return _is_active(view) and MilestoneStatus.PENDING in statuses and not statuses & set(ACTIVE)


def _has_in_progress(view: ContractView) -> bool:
    return _has_funded(view) or _has_submitted(view)


def _as_typed(view: ContractView, amount_minor: int) -> str:
    """An amount as a person types it: USD with cents, JPY in whole yen."""
    if view.agency:
        return str(amount_minor)
    return f"{amount_minor // 100}.{amount_minor % 100:02d}"


class ContractMachine(RuleBasedStateMachine):
    """Subclassed per backend with `open_database`, which gives an empty database."""

    open_database: OpenDatabase

    def __init__(self) -> None:
        super().__init__()
        self.database, self._close = type(self).open_database()
        self.now = NOW
        self.steps = 0
        self.agency_of: dict[int, bool] = {}
        self.contract_ids: list[int] = []
        self.world = World(tables={}, contracts={})

    def teardown(self) -> None:
        self._close()

    # --- set-up -------------------------------------------------------------------

    @initialize(
        layout=st.sampled_from(["both", "individual", "agency"]), phases=st.tuples(PHASES, PHASES)
    )
    def open_contracts(self, layout: str, phases: tuple[str, str]) -> None:
        kinds = {"individual": [False], "agency": [True], "both": [False, True]}[layout]
        key = tuple(zip(kinds, phases, strict=False))
        if key in PREPARED:
            prepared = PREPARED[key]
            replay(self.database, prepared)
            self.agency_of = dict(prepared.agency_of)
            self.contract_ids = list(prepared.contract_ids)
            self.world = self._observe()
            assert self.world == prepared.world
            return
        for agency, phase in key:
            with self.database.session() as session:
                cid = new_contract(session, agency=agency, currency="JPY" if agency else "USD")
            self.agency_of[cid] = agency
            self.contract_ids.append(cid)
            for step in self._set_up(cid, agency, phase):
                with self.database.session() as session:
                    assert not step(session).already_done
        self.world = self._observe()
        PREPARED[key] = Prepared(self.world, dict(self.agency_of), list(self.contract_ids))

    def _set_up(self, cid: int, agency: bool, phase: str) -> list[Callable[[Session], Outcome]]:
        provider = CAST[agency]["provider"]
        steps: list[Callable[[Session], Outcome]] = []
        if phase == "empty":
            return steps
        steps.append(
            lambda s: services.change_milestones(
                s,
                contract_id=cid,
                actor_id=CLIENT,
                changes=[
                    NewMilestone("Design", "1500", self.now.date() + timedelta(days=20)),
                    NewMilestone("Build", "2500", self.now.date() + timedelta(days=40)),
                ],
                now=self.now,
            )
        )
        if phase == "negotiating":
            return steps
        steps += [
            lambda s: services.agree_to_terms(s, contract_id=cid, actor_id=CLIENT, now=self.now),
            lambda s: services.agree_to_terms(s, contract_id=cid, actor_id=provider, now=self.now),
        ]
        if phase == "active":
            return steps
        steps.append(
            lambda s: services.fund_milestone(s, contract_id=cid, actor_id=CLIENT, now=self.now)
        )
        if phase == "funded":
            return steps
        if phase == "ending":  # the client ended with milestone 1 funded: the window runs
            steps.append(
                lambda s: services.end_contract(s, contract_id=cid, actor_id=CLIENT, now=self.now)
            )
            return steps
        steps.append(
            lambda s: services.submit_work(
                s, contract_id=cid, actor_id=provider, note="done", now=self.now
            )
        )
        if phase == "disputed":  # the client disputed the submitted work
            steps.append(
                lambda s: services.dispute_milestone(
                    s, contract_id=cid, actor_id=CLIENT, reason="Not as agreed", now=self.now
                )
            )
        return steps

    # --- helpers ------------------------------------------------------------------

    def _observe(self, last: World | None = None) -> World:
        with self.database.session() as session, session.begin():
            return observe(session, self.agency_of, last)

    def _contract(self, index: int, suits: Callable[[ContractView], bool]) -> ContractView:
        views = [self.world.contracts[cid] for cid in self.contract_ids]
        if index >= 2:
            suitable = [view for view in views if suits(view)]
            if suitable:
                return suitable[index % len(suitable)]
        return views[index % len(views)]

    def _due(self, days: int) -> date:
        return self.now.date() + timedelta(days=days)

    def _change(self, spec: ChangeSpec) -> services.ChangeInput:
        if spec[0] == "add":
            _, title, amount, days, description = spec
            return NewMilestone(title, amount, self._due(days), description)
        if spec[0] == "edit":
            _, number, title, amount, days, description = spec
            return MilestoneEdit(
                number,
                title=title,
                amount=amount,
                due_date=None if days is None else self._due(days),
                description=description,
            )
        return MilestoneDeletion(spec[1])

    def _prefilled(self, view: ContractView, row: Row, tweak: int) -> services.ChangeInput:
        """A stored change as the counter-offer form shows it, its amount `tweak`ed up."""
        fields = row["fields"]
        amount = fields.get("amount_minor")
        typed = None if amount is None else _as_typed(view, amount + tweak)
        due = fields.get("due_date")
        due_date = None if due is None else date.fromisoformat(due)
        if row["kind"] == ChangeKind.ADD:
            assert typed is not None and due_date is not None
            return NewMilestone(fields["title"], typed, due_date, fields.get("description", ""))
        if row["kind"] == ChangeKind.DELETE:
            return MilestoneDeletion(row["milestone_number"])
        return MilestoneEdit(
            row["milestone_number"],
            title=fields.get("title"),
            description=fields.get("description"),
            amount=typed,
            due_date=due_date,
        )

    def _shown(self, view: ContractView, shown: int | None, statuses: Sequence[str]) -> int | None:
        """The id of the milestone a button showed (see `SHOWN`)."""
        if shown is None:
            return None
        if shown == 0:
            about = [m for m in view.milestones.values() if m["status"] in statuses]
            return about[0]["id"] if about else None
        return view.milestone_ids.get(shown, NO_SUCH_ID)

    def _request(self, view: ContractView, number: int, by_id: bool) -> dict[str, Any]:
        """Name a request by number, or by an id (possibly another contract's)."""
        if number == 0:
            pending = [n for n, r in view.requests.items() if r["status"] == RequestStatus.PENDING]
            number = pending[0] if pending else 1
        if not by_id:
            return {"contract_id": view.id, "number": number}
        ids = [
            v.request_ids[number] for v in self.world.contracts.values() if number in v.request_ids
        ]
        return {"contract_id": view.id, "request_id": ids[-1] if ids else NO_SUCH_ID}

    def _attempt(
        self,
        label: str,
        view: ContractView,
        actor: str | None,
        act: Act | None,
        effects: Effects,
        call: Callable[[Session], Outcome],
        roles: frozenset[Role] | None = None,
    ) -> Result:
        """Call a service in its own session, as a click would; check what it did.
        `roles`: who may `act` here, when not `PERMISSIONS[act]` (a request's sides)."""
        self.steps += 1
        before = self.world
        outcome: Outcome | None = None
        refusal: DomainError | None = None
        try:
            with self.database.session() as session:
                outcome = call(session)
        except DomainError as error:
            refusal = error
        after = self._observe(before)
        result = Result(outcome, refusal, before.contracts[view.id], after.contracts[view.id])
        hypothesis.event(
            f"{label}: {'refused' if refusal else 'done' if result.done else 'already done'}"
        )
        if not result.done:
            why = refusal.message if refusal else outcome.summary if outcome else ""
            assert after == before, f"{label} changed the database though it did nothing: {why}"
        else:
            assert result.after.row["version"] == result.before.row["version"] + 1
            assert len(result.after.events) > len(result.before.events), f"{label}: no history"
        if actor is not None and act is not None and outcome is not None:
            role = ROLES[view.agency].get(actor)
            allowed = PERMISSIONS[act] if roles is None else roles
            assert role in allowed, f"{actor} ({role}) was let {act.value}"
        if actor is not None and ROLES[view.agency].get(actor) is None:
            assert refusal is not None, f"{actor}, not a party, was let {label}"
        check_step(before, after, view.id, effects)
        self.world = after
        return result

    def _request_roles(
        self, view: ContractView, named: dict[str, Any], act: Act
    ) -> frozenset[Role]:
        """Who may `act` on the request named: its answering side, or its own."""
        found = [
            r
            for v in self.world.contracts.values()
            for r in v.requests.values()
            if r["id"] == named.get("request_id")
            or (v.id == named.get("contract_id") and r["number"] == named.get("number"))
        ]
        if not found:
            return PERMISSIONS[act]
        proposer = ROLES[view.agency].get(found[0]["proposed_by"])
        return REQUEST_PERMISSIONS[(act, side_of(proposer))]

    # --- rules --------------------------------------------------------------------

    @rule(hours=HOURS)
    def time_passes(self, hours: int) -> None:
        self.steps += 1
        self.now += timedelta(hours=hours)

    @precondition(_any_contract(_is_open))
    @rule(
        index=CONTRACT,
        slot=likely("client", "provider", "colleague"),
        specs=CHANGES,
        message=MESSAGES,
    )
    def change_milestones(
        self, index: int, slot: str, specs: list[ChangeSpec], message: str
    ) -> None:
        view = self._contract(index, _is_open)
        actor = CAST[view.agency][slot]
        changes = [self._change(spec) for spec in specs]
        result = self._attempt(
            "change_milestones",
            view,
            actor,
            Act.EDIT_NEGOTIATING,
            CHANGE_EFFECTS,
            lambda s: services.change_milestones(
                s,
                contract_id=view.id,
                actor_id=actor,
                changes=changes,
                message=message,
                now=self.now,
            ),
        )
        if not result.done:
            return
        old, new = result.before, result.after
        provider_side = ROLES[view.agency][actor] in (Role.FREELANCER, Role.MANAGER)
        proposing = old.status == ContractStatus.ACTIVE and provider_side
        assert result.outcome is not None and result.outcome.became_request == proposing
        if proposing:
            # A proposal changes no milestone; it waits for the client.
            assert new.milestones == old.milestones
            assert len(new.requests) == len(old.requests) + 1
        else:
            assert new.requests == old.requests
        if old.status == ContractStatus.NEGOTIATING:
            assert new.row["client_agreed_at"] is None, "a change must clear the agreement"
            assert new.row["provider_agreed_by"] is None, "a change must clear the agreement"

    @precondition(_any_contract(_is_active))
    @rule(
        index=CONTRACT,
        slot=likely("provider", "colleague"),
        specs=CHANGES,
        message=MESSAGES,
        revises=REVISES,
    )
    def propose_changes(
        self, index: int, slot: str, specs: list[ChangeSpec], message: str, revises: int | None
    ) -> None:
        view = self._contract(index, _is_active)
        actor = CAST[view.agency][slot]
        changes = [self._change(spec) for spec in specs]
        revised_id = None if revises is None else view.request_ids.get(revises, NO_SUCH_ID)
        result = self._attempt(
            "propose_changes",
            view,
            actor,
            Act.PROPOSE,
            PROPOSE_EFFECTS,
            lambda s: services.propose_changes(
                s,
                contract_id=view.id,
                actor_id=actor,
                changes=changes,
                message=message,
                now=self.now,
                revises_request_id=revised_id,
            ),
        )
        if result.done:
            assert result.after.milestones == result.before.milestones
            if revises is not None:
                assert result.after.requests[revises]["status"] == RequestStatus.WITHDRAWN

    @precondition(_any_contract(_has_in_progress))
    @rule(
        index=CONTRACT,
        slot=likely("provider", "colleague"),
        difference=mostly([25_000, 1, 300_000], [-100, 0]),
        accepted_at_once=st.booleans(),
        countered_at_once=st.booleans(),
    )
    def propose_new_amount(
        self,
        index: int,
        slot: str,
        difference: int,
        accepted_at_once: bool,
        countered_at_once: bool = False,
    ) -> None:
        """The provider asks for more (or, refused, less) for the milestone in progress,
        and the client may accept straight away (escrow is then topped up), or counter
        with half the increase, which the provider then accepts."""
        view = self._contract(index, _has_in_progress)
        actor = CAST[view.agency][slot]
        in_progress = [m for m in view.milestones.values() if m["status"] in ACTIVE]
        target = in_progress[0] if in_progress else view.milestones.get(1)
        if target is None:
            return
        amount = _as_typed(view, target["amount_minor"] + difference)
        edit = MilestoneEdit(target["number"], amount=amount)
        result = self._attempt(
            "propose_changes (amount)",
            view,
            actor,
            Act.PROPOSE,
            PROPOSE_EFFECTS,
            lambda s: services.propose_changes(
                s, contract_id=view.id, actor_id=actor, changes=[edit], now=self.now
            ),
        )
        if result.done and target["status"] in ACTIVE:
            assert difference > 0, "a funded milestone's amount may only increase"
        if result.done and accepted_at_once:
            assert result.outcome is not None
            self._accept(result.after, CLIENT, {"request_id": result.outcome.request_id})
        elif result.done and countered_at_once:
            assert result.outcome is not None
            half = _as_typed(view, target["amount_minor"] + max(1, difference // 2))
            named = {"contract_id": view.id, "request_id": result.outcome.request_id}
            counter = MilestoneEdit(target["number"], amount=half)
            countered = self._replace(result.after, CLIENT, named, [counter], "", revise=False)
            assert countered.done, countered.refusal
            assert countered.outcome is not None
            self._accept(countered.after, actor, {"request_id": countered.outcome.request_id})

    @precondition(_any_contract(_is_negotiating))
    @rule(index=CONTRACT, slot=likely("client", "provider", "colleague"))
    def agree_to_terms(self, index: int, slot: str) -> None:
        view = self._contract(index, _is_negotiating)
        actor = CAST[view.agency][slot]
        result = self._attempt(
            "agree_to_terms",
            view,
            actor,
            Act.AGREE,
            AGREE_EFFECTS,
            lambda s: services.agree_to_terms(s, contract_id=view.id, actor_id=actor, now=self.now),
        )
        if result.done:
            assert result.outcome is not None
            activated = result.after.status == ContractStatus.ACTIVE
            assert result.outcome.contract_activated == activated

    @precondition(_any_contract(_has_pending))
    @rule(index=CONTRACT, slot=likely("client", "provider"), number=REQUEST, by_id=st.booleans())
    def accept_request(self, index: int, slot: str, number: int, by_id: bool) -> None:
        view = self._contract(index, _has_pending)
        actor = CAST[view.agency][slot]
        self._accept(view, actor, self._request(view, number, by_id))

    def _accept(self, view: ContractView, actor: str, named: dict[str, Any]) -> None:
        result = self._attempt(
            "accept_request",
            view,
            actor,
            Act.ACCEPT,
            ACCEPT_EFFECTS,
            lambda s: services.accept_request(s, actor_id=actor, now=self.now, **named),
            roles=self._request_roles(view, named, Act.ACCEPT),
        )
        if result.done:
            assert result.outcome is not None and result.outcome.request_number is not None
            check_accepted_request(result.before, result.after, result.outcome.request_number)

    @precondition(_any_contract(_has_requests))
    @rule(
        index=CONTRACT,
        slot=likely("client", "provider"),
        number=REQUEST,
        reason=MESSAGES,
        by_id=st.booleans(),
    )
    def decline_request(self, index: int, slot: str, number: int, reason: str, by_id: bool) -> None:
        view = self._contract(index, _has_pending)
        actor = CAST[view.agency][slot]
        named = self._request(view, number, by_id)
        result = self._attempt(
            "decline_request",
            view,
            actor,
            Act.DECLINE,
            DECLINE_EFFECTS,
            lambda s: services.decline_request(
                s, actor_id=actor, now=self.now, reason=reason, **named
            ),
            roles=self._request_roles(view, named, Act.DECLINE),
        )
        if result.done:
            assert result.after.milestones == result.before.milestones

    @precondition(_any_contract(_has_requests))
    @rule(
        index=CONTRACT,
        slot=likely("provider", "colleague", "client"),
        number=REQUEST,
        by_id=st.booleans(),
    )
    def withdraw_request(self, index: int, slot: str, number: int, by_id: bool) -> None:
        view = self._contract(index, _has_pending)
        actor = CAST[view.agency][slot]
        named = self._request(view, number, by_id)
        result = self._attempt(
            "withdraw_request",
            view,
            actor,
            Act.WITHDRAW,
            WITHDRAW_EFFECTS,
            lambda s: services.withdraw_request(s, actor_id=actor, now=self.now, **named),
            roles=self._request_roles(view, named, Act.WITHDRAW),
        )
        if result.done:
            assert result.after.milestones == result.before.milestones

    @precondition(_any_contract(_has_pending))
    @rule(
        index=CONTRACT,
        slot=likely("client", "provider", "colleague"),
        number=REQUEST,
        specs=CHANGES,
        message=MESSAGES,
        revise=st.booleans(),
        tweak=mostly([100, 0, 5_000], [None]),
    )
    def counter_or_revise_request(
        self,
        index: int,
        slot: str,
        number: int,
        specs: list[ChangeSpec],
        message: str,
        revise: bool,
        tweak: int | None,
    ) -> None:
        """Suggest changes to the other side's pending request (a counter-offer), or
        revise one's own, in one step: the old one becomes countered (or withdrawn).
        Mostly the form as it opens, prefilled with the request, its amounts `tweak`ed
        up; sometimes any changes at all."""
        view = self._contract(index, _has_pending)
        actor = CAST[view.agency][slot]
        named = self._request(view, number, by_id=True)
        shown = [r for r in view.requests.values() if r["id"] == named["request_id"]]
        if tweak is not None and shown:
            changes = [self._prefilled(view, row, tweak) for row in shown[0]["changes"]]
        else:
            changes = [self._change(spec) for spec in specs]
        self._replace(view, actor, named, changes, message, revise=revise)

    def _replace(
        self,
        view: ContractView,
        actor: str,
        named: dict[str, Any],
        changes: list[services.ChangeInput],
        message: str,
        *,
        revise: bool,
    ) -> Result:
        act = Act.WITHDRAW if revise else Act.COUNTER
        service = services.revise_request if revise else services.counter_request
        result = self._attempt(
            "revise_request" if revise else "counter_request",
            view,
            actor,
            act,
            PROPOSE_EFFECTS if revise else COUNTER_EFFECTS,
            lambda s: service(
                s,
                contract_id=view.id,
                request_id=named["request_id"],
                actor_id=actor,
                changes=changes,
                message=message,
                now=self.now,
            ),
            roles=self._request_roles(view, named, act),
        )
        if not result.done:
            return result
        assert result.outcome is not None and result.outcome.request_number is not None
        old = next(r for r in result.after.requests.values() if r["id"] == named["request_id"])
        new = result.after.requests[result.outcome.request_number]
        assert old["status"] == (RequestStatus.WITHDRAWN if revise else RequestStatus.COUNTERED)
        assert (old["replaced_by"], old["decided_by"]) == (new["number"], actor)
        assert new["proposed_by"] == actor and new["status"] == RequestStatus.PENDING
        assert new["revision_of" if revise else "counter_of"] == old["number"]
        assert result.after.milestones == result.before.milestones
        return result

    @precondition(_any_contract(_is_active))
    @rule(index=CONTRACT, slot=likely("client"), shown=SHOWN)
    def fund_milestone(self, index: int, slot: str, shown: int | None) -> None:
        view = self._contract(index, _can_fund)
        actor = CAST[view.agency][slot]
        milestone_id = self._shown(view, shown, ("pending",))
        result = self._attempt(
            "fund_milestone",
            view,
            actor,
            Act.FUND,
            FUND_EFFECTS,
            lambda s: services.fund_milestone(
                s, contract_id=view.id, actor_id=actor, now=self.now, milestone_id=milestone_id
            ),
        )
        if result.done:
            assert result.outcome is not None
            waiting = [
                n
                for n, m in result.before.milestones.items()
                if m["status"] == "pending" and m["refunded_at"] is None  # not settled at 0
            ]
            assert result.outcome.milestone_number == min(waiting), "funded out of order"

    @precondition(_any_contract(_is_active))
    @rule(index=CONTRACT, slot=likely("provider", "colleague", "member"), note=NOTES)
    def submit_work(self, index: int, slot: str, note: str) -> None:
        view = self._contract(index, _has_funded)
        actor = CAST[view.agency][slot]
        result = self._attempt(
            "submit_work",
            view,
            actor,
            Act.SUBMIT,
            SUBMIT_EFFECTS,
            lambda s: services.submit_work(
                s, contract_id=view.id, actor_id=actor, note=note, now=self.now
            ),
        )
        if result.done:
            assert result.outcome is not None and result.outcome.milestone_number is not None
            submitted = result.after.milestones[result.outcome.milestone_number]
            assert submitted["auto_release_at"] == self.now + DEFAULT_POLICY.auto_release_period

    @precondition(_any_contract(_is_active))
    @rule(index=CONTRACT, slot=likely("client"), note=NOTES, shown=SHOWN)
    def request_changes(self, index: int, slot: str, note: str, shown: int | None) -> None:
        view = self._contract(index, _has_submitted)
        actor = CAST[view.agency][slot]
        milestone_id = self._shown(view, shown, ("submitted",))
        self._attempt(
            "request_changes",
            view,
            actor,
            Act.REQUEST_CHANGES,
            SEND_BACK_EFFECTS,
            lambda s: services.request_changes(
                s,
                contract_id=view.id,
                actor_id=actor,
                note=note,
                now=self.now,
                milestone_id=milestone_id,
            ),
        )

    @precondition(_any_contract(_is_active))
    @rule(index=CONTRACT, slot=likely("client"), shown=SHOWN)
    def approve_work(self, index: int, slot: str, shown: int | None) -> None:
        view = self._contract(index, _has_submitted)
        actor = CAST[view.agency][slot]
        milestone_id = self._shown(view, shown, ("submitted",))
        self._attempt(
            "approve_work",
            view,
            actor,
            Act.APPROVE,
            APPROVE_EFFECTS,
            lambda s: services.approve_work(
                s, contract_id=view.id, actor_id=actor, now=self.now, milestone_id=milestone_id
            ),
        )

    def _due_for_release(self, view: ContractView, number: int) -> bool:
        milestone = view.milestones[number]
        return (
            view.status == ContractStatus.ACTIVE
            and milestone["status"] == MilestoneStatus.SUBMITTED
            and milestone["auto_release_at"] <= self.now
        )

    def _fire_at(self, deadline: datetime, hours: int | None) -> None:
        """Move the clock to when a timer fires (time never runs backwards)."""
        if hours is not None:
            self.now = max(self.now, deadline + timedelta(hours=hours))

    @precondition(_any_contract(_has_submitted))
    @rule(fires_at=FIRES_AT)
    def release_what_is_due(self, fires_at: int | None) -> None:
        """The scheduler's sweep: every due milestone is released, once."""
        self._fire_at(
            min(
                m["auto_release_at"]
                for view in self.world.contracts.values()
                for m in view.milestones.values()
                if m["status"] == MilestoneStatus.SUBMITTED
            ),
            fires_at,
        )
        with self.database.session() as session, session.begin():
            due = queries.due_auto_releases(session, now=self.now)
        owner = {
            mid: cid
            for cid, view in self.world.contracts.items()
            for mid in view.milestone_ids.values()
        }
        expected = {
            view.milestone_ids[n]
            for view in self.world.contracts.values()
            for n in view.milestones
            if self._due_for_release(view, n)
        }
        assert set(due) == expected, "the sweep did not find exactly what is due"
        for milestone_id in due:
            result = self._attempt(
                "auto_release (sweep)",
                self.world.contracts[owner[milestone_id]],
                None,
                None,
                AUTO_RELEASE_EFFECTS,
                lambda s, mid=milestone_id: services.auto_release(
                    s, milestone_id=mid, now=self.now
                ),
            )
            assert result.done, "a due milestone was not released"
        with self.database.session() as session, session.begin():
            assert queries.due_auto_releases(session, now=self.now) == []

    @precondition(_any_contract(_is_active))
    @rule(index=CONTRACT, shown=mostly([0], [1, 2, 3]), fires_at=FIRES_AT)
    def auto_release_any(self, index: int, shown: int, fires_at: int | None) -> None:
        """A timer firing for a milestone, due or not, perhaps a stale one."""
        view = self._contract(index, _has_submitted)
        milestone_id = self._shown(view, shown, ("submitted",))
        if milestone_id not in view.milestone_ids.values():
            return
        number = next(n for n, mid in view.milestone_ids.items() if mid == milestone_id)
        deadline = view.milestones[number]["auto_release_at"]
        if deadline is not None:
            self._fire_at(deadline, fires_at)
        due = self._due_for_release(view, number)
        result = self._attempt(
            "auto_release (timer)",
            view,
            None,
            None,
            AUTO_RELEASE_EFFECTS,
            lambda s: services.auto_release(s, milestone_id=milestone_id, now=self.now),
        )
        assert result.refusal is None and result.done == due

    @precondition(lambda self: self.steps >= END_AFTER_STEPS and _any_contract(_is_open)(self))
    @rule(index=CONTRACT, slot=likely("client", "provider", "colleague"))
    def end_contract(self, index: int, slot: str) -> None:
        view = self._contract(index, _is_open)
        actor = CAST[view.agency][slot]
        result = self._attempt(
            "end_contract",
            view,
            actor,
            Act.END,
            END_EFFECTS,
            lambda s: services.end_contract(s, contract_id=view.id, actor_id=actor, now=self.now),
        )
        old = result.before
        review_waiting = any(m["status"] == "submitted" for m in old.milestones.values())
        if actor == CLIENT and review_waiting:
            assert result.refusal is not None, "the client ended over submitted work"
        if result.done:
            new = result.after.ledger[len(old.ledger) :]
            if result.after.status == ContractStatus.ENDING:  # the provider side's window
                assert actor == CLIENT and old.balance > 0 and not new
                assert result.after.row["ending_deadline_at"] is not None
            else:
                assert result.after.status == ContractStatus.CLOSED
                assert all(e["kind"] == LedgerKind.REFUND for e in new)
                assert sum(e["amount_minor"] for e in new) == old.balance

    # --- flexible money and time ---------------------------------------------------

    @precondition(_any_contract(_is_open))
    @rule(
        index=CONTRACT,
        slot=likely("client"),
        number=mostly([0], [1, 2, 9]),
        tenths=mostly([1, 3, 5, 9, 10], [0, 11]),
    )
    def release_part(self, index: int, slot: str, number: int, tenths: int) -> None:
        """The client releases part (a number of tenths) of what a milestone holds:
        everything, for submitted work, is an approval; more is refused."""
        view = self._contract(index, _has_in_progress)
        actor = CAST[view.agency][slot]
        in_progress = [m for m in view.milestones.values() if m["status"] in ACTIVE]
        if number == 0:
            number = in_progress[0]["number"] if in_progress else 1
        target = view.milestones.get(number)
        held = target["amount_minor"] - target["released_early_minor"] if target else 10_000
        amount = held * tenths // 10
        result = self._attempt(
            "release_part",
            view,
            actor,
            Act.RELEASE_PART,
            PARTIAL_RELEASE_EFFECTS,
            lambda s: services.release_part(
                s,
                contract_id=view.id,
                actor_id=actor,
                number=number,
                amount=_as_typed(view, amount),
                now=self.now,
            ),
        )
        if not result.done:
            return
        assert target is not None and target["status"] in ACTIVE and 0 < amount <= held
        after = result.after.milestones[number]
        assert result.before.balance - result.after.balance == amount
        if amount == held:
            assert target["status"] == MilestoneStatus.SUBMITTED
            assert after["status"] == MilestoneStatus.RELEASED
        else:
            assert after["status"] == target["status"]
            assert after["released_early_minor"] == target["released_early_minor"] + amount

    @precondition(_any_contract(_is_open))
    @rule(index=CONTRACT, slot=likely("client"), amount=AMOUNTS, note=MESSAGES)
    def pay_bonus(self, index: int, slot: str, amount: str, note: str) -> None:
        view = self._contract(index, _is_active)
        actor = CAST[view.agency][slot]
        result = self._attempt(
            "pay_bonus",
            view,
            actor,
            Act.PAY_BONUS,
            BONUS_EFFECTS,
            lambda s: services.pay_bonus(
                s, contract_id=view.id, actor_id=actor, amount=amount, note=note, now=self.now
            ),
        )
        if result.done:
            assert result.before.status not in (ContractStatus.NEGOTIATING, ContractStatus.CLOSED)
            assert result.after.balance == result.before.balance, "a bonus moved escrow"
            bonuses = len(result.after.entries_of(LedgerKind.BONUS))
            assert bonuses == len(result.before.entries_of(LedgerKind.BONUS)) + 1

    @precondition(_any_contract(_has_submitted))
    @rule(
        index=CONTRACT,
        slot=likely("client", "client", "provider", "colleague", "member"),
        days=mostly([None, 7, 3], [0, 31]),
        answer=st.sampled_from([None, "give", "keep"]),
    )
    def extend_review(self, index: int, slot: str, days: int | None, answer: str | None) -> None:
        """`/milestone extend`: the client asks for more time (and the provider side may
        answer at once); from the provider side, time given at once."""
        view = self._contract(index, _has_submitted)
        actor = CAST[view.agency][slot]
        giving = ROLES[view.agency].get(actor) in (Role.FREELANCER, Role.MANAGER)
        result = self._attempt(
            "extend_review",
            view,
            actor,
            Act.GIVE_TIME if giving else Act.ASK_FOR_TIME,
            MORE_TIME_EFFECTS,
            lambda s: services.extend_review(
                s, contract_id=view.id, actor_id=actor, days=days, now=self.now
            ),
        )
        if result.done:
            self._check_more_time(result, given=giving, days=days)
        if result.done and not giving and answer is not None:
            [asked] = [m for m in result.after.milestones.values() if m["status"] == "submitted"]
            self._answer(result.after, CAST[view.agency]["provider"], asked["id"], answer == "give")

    @precondition(_any_contract(_has_submitted))
    @rule(index=CONTRACT, slot=likely("provider", "colleague"), give=st.booleans(), shown=SHOWN)
    def answer_ask_for_more_time(
        self, index: int, slot: str, give: bool, shown: int | None
    ) -> None:
        """The provider side clicks *Give more time* or *Keep the date* on an ask."""
        view = self._contract(index, _has_submitted)
        actor = CAST[view.agency][slot]
        milestone_id = self._shown(view, 0 if shown is None else shown, ("submitted",))
        if milestone_id is not None:
            self._answer(view, actor, milestone_id, give)

    def _answer(self, view: ContractView, actor: str, milestone_id: int, give: bool) -> None:
        service = services.give_more_time if give else services.keep_review_date
        result = self._attempt(
            "give_more_time" if give else "keep_review_date",
            view,
            actor,
            Act.GIVE_TIME,
            MORE_TIME_EFFECTS,
            lambda s: service(
                s, contract_id=view.id, milestone_id=milestone_id, actor_id=actor, now=self.now
            ),
        )
        if result.done:
            self._check_more_time(result, given=give, days=None)

    def _check_more_time(self, result: Result, *, given: bool, days: int | None) -> None:
        [number] = [n for n, m in result.before.milestones.items() if m["status"] == "submitted"]
        old, new = result.before.milestones[number], result.after.milestones[number]
        assert new["status"] == MilestoneStatus.SUBMITTED
        assert new["extension_asked_days"] is None or not given
        if given:
            moved = days if days is not None else old["extension_asked_days"] or 7
            assert new["auto_release_at"] - old["auto_release_at"] == timedelta(days=moved)
        else:
            assert new["auto_release_at"] == old["auto_release_at"], "moved without consent"
            assert new["extension_asks"] <= 2

    # --- ending with consent, and disputes -----------------------------------------

    @precondition(_any_contract(_is_ending))
    @rule(index=CONTRACT, slot=likely("provider", "colleague"))
    def accept_refund(self, index: int, slot: str) -> None:
        view = self._contract(index, _is_ending)
        actor = CAST[view.agency][slot]
        result = self._attempt(
            "accept_refund",
            view,
            actor,
            Act.ACCEPT_REFUND,
            REFUND_EFFECTS,
            lambda s: services.accept_refund(s, contract_id=view.id, actor_id=actor, now=self.now),
        )
        if result.done:
            assert result.before.status == ContractStatus.ENDING
            assert result.after.status == ContractStatus.CLOSED
            new = result.after.ledger[len(result.before.ledger) :]
            assert [e["kind"] for e in new] == [LedgerKind.REFUND]
            assert new[0]["amount_minor"] == result.before.balance

    @precondition(_any_contract(lambda view: view.row["ending_deadline_at"] is not None))
    @rule(fires_at=FIRES_AT)
    def ending_window_runs_out(self, fires_at: int | None) -> None:
        """The scheduler's sweep: every ending window that ran out is refunded, once."""
        self._fire_at(
            min(
                view.row["ending_deadline_at"]
                for view in self.world.contracts.values()
                if view.row["ending_deadline_at"] is not None
            ),
            fires_at,
        )
        for view in list(self.world.contracts.values()):
            deadline = view.row["ending_deadline_at"]
            due = (
                view.status == ContractStatus.ENDING
                and deadline is not None
                and deadline <= self.now
            )
            result = self._attempt(
                "refund at the window's end",
                view,
                None,
                None,
                REFUND_EFFECTS,
                lambda s, cid=view.id: services.refund_at_window_end(
                    s, contract_id=cid, now=self.now
                ),
            )
            assert result.refusal is None and result.done == due
            if due:
                assert result.after.status == ContractStatus.CLOSED
        with self.database.session() as session:
            assert services.refund_due(session, now=self.now) == []

    @precondition(_any_contract(lambda view: _has_submitted(view) or _is_ending(view)))
    @rule(
        index=CONTRACT,
        slot=likely("client", "provider", "colleague"),
        reason=NOTES,
        shown=SHOWN,
    )
    def dispute(self, index: int, slot: str, reason: str, shown: int | None) -> None:
        """The client disputes submitted work; the provider side an end-refund."""
        view = self._contract(index, lambda v: _has_submitted(v) or _is_ending(v))
        actor = CAST[view.agency][slot]
        milestone_id = self._shown(view, shown, ("submitted", "funded"))
        result = self._attempt(
            "dispute",
            view,
            actor,
            Act.DISPUTE,
            DISPUTE_EFFECTS,
            lambda s: services.dispute_milestone(
                s,
                contract_id=view.id,
                actor_id=actor,
                reason=reason,
                now=self.now,
                milestone_id=milestone_id,
            ),
        )
        if not result.done:
            return
        old, new = result.before, result.after
        [number] = [n for n, m in new.milestones.items() if m["status"] == "disputed"]
        was = old.milestones[number]["status"]
        if actor == CLIENT:
            assert (old.status, was) == (ContractStatus.ACTIVE, MilestoneStatus.SUBMITTED)
        else:
            assert (old.status, was) == (ContractStatus.ENDING, MilestoneStatus.FUNDED)
            assert new.row["ending_deadline_at"] is None, "a disputed refund still runs out"
        assert new.balance == old.balance, "a dispute moved money"

    def _dispute_row(self, view: ContractView) -> Row | None:
        found = [d for d in self.world.rows("dispute") if d["contract_id"] == view.id]
        return found[-1] if found else None

    @precondition(_any_contract(_has_disputed))
    @rule(
        index=CONTRACT,
        slot=likely("client", "provider", "colleague"),
        tenths=mostly([0, 4, 5, 10], [11]),
        number=mostly([0], [1, 2, 9]),
    )
    def propose_split(self, index: int, slot: str, tenths: int, number: int) -> None:
        """Either side proposes a split of the frozen escrow (the same split the other
        side proposed settles it)."""
        view = self._contract(index, _has_disputed)
        actor = CAST[view.agency][slot]
        disputed = [m for m in view.milestones.values() if m["status"] == "disputed"]
        if number == 0:
            number = disputed[0]["number"] if disputed else 1
        target = view.milestones.get(number)
        held = target["amount_minor"] - target["released_early_minor"] if target else 10_000
        amount = held * tenths // 10
        result = self._attempt(
            "propose_split",
            view,
            actor,
            Act.SETTLE,
            SETTLE_EFFECTS,
            lambda s: services.propose_split(
                s,
                contract_id=view.id,
                actor_id=actor,
                milestone_number=number,
                to_provider=_as_typed(view, amount),
                now=self.now,
            ),
        )
        if result.done:
            assert target is not None and target["status"] == "disputed" and amount <= held
            self._check_settled(result, number, amount)

    def _split_proposed(self, view: ContractView) -> bool:
        row = self._dispute_row(view)
        return row is not None and row["proposed_by"] is not None and row["settled_at"] is None

    @precondition(lambda self: any(self._split_proposed(v) for v in self.world.contracts.values()))
    @rule(
        index=CONTRACT,
        slot=likely("client", "provider", "colleague"),
        stale=mostly([False], [True]),
    )
    def agree_to_split(self, index: int, slot: str, stale: bool) -> None:
        """The other side clicks *Agree to split* (perhaps on a replaced proposal)."""
        view = self._contract(index, self._split_proposed)
        actor = CAST[view.agency][slot]
        row = self._dispute_row(view)
        if row is None:
            return
        shown = max(row["proposal_number"] - (1 if stale else 0), 1)
        result = self._attempt(
            "agree_to_split",
            view,
            actor,
            Act.SETTLE,
            SETTLE_EFFECTS,
            lambda s: services.agree_to_split(
                s,
                contract_id=view.id,
                dispute_id=row["id"],
                proposal_number=shown,
                actor_id=actor,
                now=self.now,
            ),
        )
        if result.done:
            assert row["proposed_by"] is not None and shown == row["proposal_number"]
            proposer = ROLES[view.agency][row["proposed_by"]]
            assert (proposer == Role.CLIENT) != (actor == CLIENT), "a side agreed with itself"
            number = next(n for n, m in view.milestones.items() if m["id"] == row["milestone_id"])
            self._check_settled(result, number, row["proposed_to_provider_minor"])

    @precondition(_any_contract(_has_disputed))
    @rule(index=CONTRACT, tenths=mostly([0, 3, 10], [12]))
    def operator_decides(self, index: int, tenths: int) -> None:
        """`milestone-bot dispute resolve`: an operator's decision, with a reason."""
        view = self._contract(index, _has_disputed)
        disputed = [m for m in view.milestones.values() if m["status"] == "disputed"]
        number = disputed[0]["number"] if disputed else 1
        held = disputed[0]["amount_minor"] - disputed[0]["released_early_minor"] if disputed else 0
        amount = held * tenths // 10
        result = self._attempt(
            "resolve_dispute",
            view,
            None,
            None,
            SETTLE_EFFECTS,
            lambda s: services.resolve_dispute(
                s,
                contract_id=view.id,
                milestone_number=number,
                to_provider=_as_typed(view, amount),
                reason="Mediation",
                now=self.now,
            ),
        )
        if result.done:
            self._check_settled(result, number, amount)
            assert result.after.events_of("dispute_settled")[-1]["actor"] == SYSTEM_ACTOR

    def _check_settled(self, result: Result, number: int, to_provider: int) -> None:
        """A settled dispute: exactly the split, each part once; an ending contract closed."""
        old, new = result.before, result.after
        if new.milestones[number]["status"] == "disputed":
            return  # a proposal, not yet an agreement
        held = old.balance
        moved = new.ledger[len(old.ledger) :]
        released = [e["amount_minor"] for e in moved if e["kind"] == LedgerKind.RELEASE]
        refunded = [e["amount_minor"] for e in moved if e["kind"] == LedgerKind.REFUND]
        assert released == ([to_provider] if to_provider else [])
        assert refunded == ([held - to_provider] if held - to_provider else [])
        status = new.milestones[number]["status"]
        assert status == (MilestoneStatus.RELEASED if to_provider else MilestoneStatus.PENDING)
        if old.status == ContractStatus.ENDING:
            assert new.status == ContractStatus.CLOSED

    # --- invariants ---------------------------------------------------------------

    @invariant()
    def every_contract_is_consistent(self) -> None:
        for view in self.world.contracts.values():
            check_contract(view)


# --------------------------------------------------------------------------------------
# The checks


def check_step(before: World, after: World, scope: int, effects: Effects) -> None:
    """Every change between two observations is one the action may cause."""
    assert set(after.contracts) == set(before.contracts)
    for cid, new in after.contracts.items():
        old = before.contracts[cid]
        if cid != scope:
            assert new == old, f"an action on contract {scope} changed contract {cid}"
            continue
        if old.status == ContractStatus.CLOSED:
            assert new == old, f"closed contract {cid} changed"
        if new.status != old.status:
            assert effects.allows_contract(old.status, new.status), (old.status, new.status)
        # History and ledger are append-only.
        assert new.events[: len(old.events)] == old.events
        assert new.ledger[: len(old.ledger)] == old.ledger
        # Numbers only grow; a new milestone or request takes a number never used.
        for key in ("next_milestone_number", "next_request_number"):
            assert new.row[key] >= old.row[key]
        assert old.milestones.keys() <= new.milestones.keys(), "a milestone disappeared"
        for number, m in new.milestones.items():
            if number not in old.milestones:
                assert effects.adds_milestones, f"milestone {number} appeared"
                assert number >= old.row["next_milestone_number"], f"number {number} reused"
                # A new milestone starts pending; one action may also take it further
                # (`add` then `delete` of the number it got, in one command).
                status = MilestoneStatus.PENDING
                assert m["status"] == status or effects.allows_milestone(status, m["status"])
                continue
            was = old.milestones[number]
            assert m["id"] == was["id"]
            if m["status"] != was["status"]:
                assert effects.allows_milestone(was["status"], m["status"]), (
                    f"milestone {number}: {was['status']} → {m['status']}"
                )
                if m["status"] == MilestoneStatus.RELEASED:
                    automatic = M.AUTO_RELEASE in effects.milestone
                    assert m["released_automatically"] == automatic
        assert old.requests.keys() <= new.requests.keys(), "a request disappeared"
        for number, r in new.requests.items():
            if number not in old.requests:
                assert effects.adds_requests, f"request {number} appeared"
                assert number >= old.row["next_request_number"], f"request {number} reused"
                assert r["status"] == RequestStatus.PENDING
                continue
            was_status = old.requests[number]["status"]
            if r["status"] != was_status:
                assert effects.allows_request(was_status, r["status"]), (
                    f"request {number}: {was_status} → {r['status']}"
                )


def check_accepted_request(old: ContractView, new: ContractView, number: int) -> None:
    """The accepted request was pending, and every one of its changes is in place."""
    assert old.requests[number]["status"] == RequestStatus.PENDING
    assert new.requests[number]["status"] == RequestStatus.ACCEPTED
    top_up = 0
    for change in new.requests[number]["changes"]:
        milestone = new.milestones[change["milestone_number"]]
        if change["kind"] == ChangeKind.DELETE:
            assert milestone["status"] == MilestoneStatus.DELETED
            continue
        if change["kind"] == ChangeKind.ADD:
            assert change["milestone_number"] not in old.milestones
        for key, value in change["fields"].items():
            assert _fields(milestone)[key] == value, f"{key} of milestone {milestone['number']}"
        if milestone["status"] in ACTIVE:
            top_up += (
                milestone["amount_minor"] - old.milestones[milestone["number"]]["amount_minor"]
            )
    assert new.balance - old.balance == top_up, "escrow was not topped up by the increase"


def check_contract(view: ContractView) -> None:
    milestones, requests, status = view.milestones, view.requests, view.status

    # Numbers are unique, below the next number to give.
    assert all(0 < n < view.row["next_milestone_number"] for n in milestones)
    assert all(0 < n < view.row["next_request_number"] for n in requests)
    assert len(milestones) == len({m["id"] for m in milestones.values()})

    # One milestone in progress at a time; milestones are funded in order.
    in_progress = [m for m in milestones.values() if m["status"] in ACTIVE]
    assert len(in_progress) <= 1, "more than one milestone funded or submitted"
    for m in milestones.values():
        if m["status"] in (*ACTIVE, MilestoneStatus.RELEASED):
            for earlier in milestones.values():
                if earlier["number"] < m["number"]:
                    settled_at_nothing = earlier["refunded_at"] is not None  # a split of 0
                    assert earlier["status"] in ("released", "deleted") or settled_at_nothing, (
                        "funded out of order"
                    )
        if m["status"] == MilestoneStatus.SUBMITTED:
            assert m["auto_release_at"] is not None
        elif m["status"] != MilestoneStatus.RELEASED:
            assert m["auto_release_at"] is None, f"{m['status']} milestone has a review clock"

    # Escrow, recomputed from the ledger: never negative, and held exactly for the
    # milestone in progress (its amount, top-ups included, less what was released of it
    # early). Bonuses are paid outside escrow and belong to no milestone.
    balance = 0
    held: Counter[int] = Counter()
    early: Counter[int] = Counter()
    kinds: dict[int, Counter[LedgerKind]] = {n: Counter() for n in milestones}
    for entry in view.ledger:
        assert entry["amount_minor"] > 0
        if entry["kind"] == LedgerKind.BONUS:
            assert entry["milestone_number"] is None, "a bonus held for a milestone"
            continue
        balance += _signed(entry)
        assert balance >= 0, "escrow went negative"
        held[entry["milestone_number"]] += _signed(entry)
        if _partial(entry):
            early[entry["milestone_number"]] += entry["amount_minor"]
            continue
        kinds[entry["milestone_number"]][entry["kind"]] += 1
    assert balance == sum(m["amount_minor"] - m["released_early_minor"] for m in in_progress)
    for number, m in milestones.items():
        assert m["released_early_minor"] == early[number]
        still = m["amount_minor"] - m["released_early_minor"]
        assert held[number] == (still if m["status"] in ACTIVE else 0)
        if m["status"] in ACTIVE:
            assert still > 0, "a partial release took everything held"
        counted = kinds[number]
        assert counted[LedgerKind.RELEASE] == (1 if m["status"] == "released" else 0)
        assert counted[LedgerKind.FUND] == (1 if m["funded_at"] is not None else 0)
        assert counted[LedgerKind.REFUND] == (1 if m["refunded_at"] is not None else 0)
        assert counted[LedgerKind.TOP_UP] == 0 or counted[LedgerKind.FUND] == 1

    # History and ledger tell the same story.
    def ledger_of(kind: LedgerKind) -> Counter[tuple[int, int]]:
        return Counter((e["milestone_number"], e["amount_minor"]) for e in view.entries_of(kind))

    def history_of(kind: str) -> Counter[tuple[int, int]]:
        return Counter(
            (e["milestone_number"], e["data"]["amount_minor"]) for e in view.events_of(kind)
        )

    assert ledger_of(LedgerKind.FUND) == history_of("milestone_funded")
    assert ledger_of(LedgerKind.TOP_UP) == history_of("escrow_topped_up")
    finals = [e for e in view.entries_of(LedgerKind.RELEASE) if not _partial(e)]
    parts = [e for e in view.entries_of(LedgerKind.RELEASE) if _partial(e)]
    assert Counter((e["milestone_number"], e["amount_minor"]) for e in finals) == history_of(
        "milestone_released"
    )
    assert Counter((e["milestone_number"], e["amount_minor"]) for e in parts) == history_of(
        "milestone_partly_released"
    )
    assert sorted(e["amount_minor"] for e in view.entries_of(LedgerKind.BONUS)) == sorted(
        e["data"]["amount_minor"] for e in view.events_of("bonus_paid")
    )
    for event in view.events_of("milestone_released"):
        m = milestones[event["milestone_number"]]
        assert event["data"]["automatic"] == m["released_automatically"]
        assert event["actor"] == (SYSTEM_ACTOR if m["released_automatically"] else m["released_by"])
    decided = {  # disputes an operator decided: their entries are the system's
        e["milestone_number"]
        for e in view.events_of("dispute_settled")
        if e["data"]["how"] == "operator"
    }
    for entry in finals:
        automatic = milestones[entry["milestone_number"]]["released_automatically"]
        by_system = automatic or entry["milestone_number"] in decided
        assert (entry["actor"] == SYSTEM_ACTOR) == by_system
    ended = view.events_of("contract_ended")
    refunds = view.entries_of(LedgerKind.REFUND)
    assert len(ended) == (1 if status == ContractStatus.CLOSED else 0)
    assert sum(e["amount_minor"] for e in refunds) == sum(
        e["data"]["to_client_minor"] for e in view.events_of("dispute_settled")
    ) + sum(e["data"]["refunded_minor"] for e in ended)
    accepted = [r for r in requests.values() if r["status"] == RequestStatus.ACCEPTED]
    assert len(view.events_of("request_accepted")) == len(accepted)
    assert {e["request_id"] for e in view.entries_of(LedgerKind.TOP_UP)} <= {
        r["id"] for r in accepted
    }
    # A countered (or revised) request names the one that took its place, and back.
    for r in requests.values():
        if r["status"] == RequestStatus.COUNTERED:
            assert r["replaced_by"] is not None, f"request {r['number']} countered by nothing"
        if r["replaced_by"] is not None:
            newer = requests[r["replaced_by"]]
            assert r["status"] in (RequestStatus.COUNTERED, RequestStatus.WITHDRAWN)
            assert r["number"] in (newer["counter_of"], newer["revision_of"])
    countered = [r for r in requests.values() if r["status"] == RequestStatus.COUNTERED]
    assert len(view.events_of("request_countered")) == len(countered)

    # Phases.
    if status == ContractStatus.NEGOTIATING:
        assert not view.ledger and not requests
        assert all(m["status"] in ("pending", "deleted") for m in milestones.values())
    if status == ContractStatus.ACTIVE:
        assert view.row["client_agreed_at"] is not None
        assert view.row["provider_agreed_by"] is not None
    if status == ContractStatus.ENDING:  # the provider side's window, or its dispute
        assert len(in_progress) == 1 and balance > 0
        assert all(r["status"] != RequestStatus.PENDING for r in requests.values())
        disputed = in_progress[0]["status"] == MilestoneStatus.DISPUTED
        assert (view.row["ending_deadline_at"] is None) == disputed
    if status == ContractStatus.CLOSED:
        assert not in_progress and balance == 0
        assert all(r["status"] != RequestStatus.PENDING for r in requests.values())

    # A pending request can still apply as it stands (otherwise it was cancelled).
    for r in requests.values():
        if r["status"] != RequestStatus.PENDING:
            continue
        for change in r["changes"]:
            if change["kind"] == ChangeKind.ADD:
                assert change["milestone_number"] is None
                continue
            m = milestones[change["milestone_number"]]
            assert m["status"] not in ("released", "deleted"), f"request {r['number']} is stale"
            if change["kind"] == ChangeKind.DELETE:
                assert m["status"] not in ACTIVE, f"request {r['number']} deletes a funded one"
                continue
            assert _fields(m) != {**_fields(m), **change["fields"]}, "a request changes nothing"
            if m["status"] in ACTIVE and "amount_minor" in change["fields"]:
                assert change["fields"]["amount_minor"] >= m["amount_minor"], "funded decrease"


# --------------------------------------------------------------------------------------
# The tests: one per backend, each example on an empty database


def _machine_on(open_database: OpenDatabase) -> type[ContractMachine]:
    return type(
        "ContractMachineOnDatabase",
        (ContractMachine,),
        {"open_database": staticmethod(open_database)},
    )


def _fresh_sqlite_file(database: Database, template: Path) -> OpenDatabase:
    """The same engine on a fresh copy of the migrated template. Keeping the engine
    keeps its statement cache: a new engine per example compiles every query again."""
    path = Path(make_url(database.url).database or "")

    def open_database() -> tuple[Database, Callable[[], None]]:
        database.engine.dispose()
        for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copy(template, path)
        return database, database.engine.dispose

    return open_database


def _emptied(database: Database) -> OpenDatabase:
    """The same PostgreSQL database, emptied. Deleting the few rows an example leaves
    takes about 3 ms; `Database.reset()` (TRUNCATE) about 110 ms, a third of an
    example."""

    def open_database() -> tuple[Database, Callable[[], None]]:
        with database.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        return database, lambda: None

    return open_database


def machine_settings() -> settings:
    """The loaded profile's example count (conftest.py: 100 under CI, or
    MILESTONE_FUZZ_EXAMPLES), at most STEPS steps each, no deadline."""
    return settings(stateful_step_count=STEPS, deadline=None)


def test_random_operations_by_anyone_keep_every_invariant(
    db: Database, request: pytest.FixtureRequest
) -> None:
    if db.kind == "sqlite":
        open_database = _fresh_sqlite_file(db, request.getfixturevalue("sqlite_template"))
        run_state_machine_as_test(_machine_on(open_database), settings=machine_settings())
        return
    # Commits without waiting for the disk flush (about 3 ms each here, more when the
    # disk is busy): what commits and what other transactions see is unchanged, only
    # durability across a server crash, which no test relies on.
    engine = make_engine(db.url, connect_args={"options": "-c synchronous_commit=off"})
    try:
        database = Database(db.kind, db.url, engine, make_session_factory(engine))
        run_state_machine_as_test(_machine_on(_emptied(database)), settings=machine_settings())
    finally:
        engine.dispose()
