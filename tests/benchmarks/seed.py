"""Seeding many contracts fast, in states the services themselves wrote.

The fast path: a handful of *template* contracts — one per state a contract can be
in — are made through the real services (`domain.services`) in a scratch SQLite
file, with a clock that walks them through their history (created, milestones
added, agreed, funded, submitted, approved or released automatically, a change
request proposed, ended). Every row they wrote (contract, parties, milestones,
change requests and their changes, ledger entries, history events, reminders,
outbox intents) is read back, and each seeded contract is a copy of one template
with fresh ids, its own channel, its own client and freelancer, and its timestamps
shifted by up to six hours. Copies go in with PostgreSQL's `COPY … FROM STDIN`
(psycopg's `cursor.copy`) — or plain multi-row inserts on SQLite — so 100,000
contracts (about two million rows) take a minute or two instead of hours of service
calls. Because each copy is what the services wrote, the domain's invariants hold:
`domain.verify.check` (`milestone-bot ledger verify`) finds nothing to report.

The mix, per 100 contracts: 10 negotiating, 5 ended (one milestone released, one
refunded), 85 active: 20 with a pending change request (an edit of milestone 5's
amount) and 10 with submitted work waiting for review; five milestones each. Outbox
intents are marked sent (as the bot would have done) and every card has a
`message_ref`; nothing is due for the scheduler for about 15 hours.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import JSON, Engine, Table, select, text
from sqlalchemy.orm import Session

from domain import services
from domain.db import make_engine, make_session_factory, upgrade_schema
from domain.model import (
    Change,
    ChangeRequest,
    Contract,
    Event,
    LedgerEntry,
    MessageRef,
    Milestone,
    OutboxMessage,
    Party,
    Reminder,
    UTCDateTime,
)
from domain.services import MilestoneEdit, NewMilestone

TEMPLATE_CLIENT = "UTPLCLIENT"
TEMPLATE_FREELANCER = "UTPLFREELA"
TEMPLATE_CHANNEL = "CTEMPLATE"
TEAM = "T0001"
CONTRACTS_PER_CLIENT = 5
MILESTONES = 5
AMOUNTS = ("1500", "2500", "1800", "3200", "2100")  # major units (USD)
MAX_SHIFT = timedelta(hours=6)

# Parent tables first: the order rows are copied in.
TABLES: tuple[type[Any], ...] = (
    Contract,
    Party,
    Milestone,
    ChangeRequest,
    Change,
    LedgerEntry,
    Event,
    Reminder,
    OutboxMessage,
)


@dataclass(frozen=True)
class Shape:
    """A state a contract can be in, made through the services."""

    name: str
    per_100: int
    released: int = 0  # milestones 1..released are released (approved, one automatically)
    current: str | None = None  # then milestone released+1 is "funded" or "submitted"
    phase: str = "active"  # or "negotiating", "ended"
    pending_request: bool = False  # an edit of milestone 5 waits for the client

    @property
    def can_take_a_request(self) -> bool:
        """Milestone 5 is still pending on an active contract: it can be edited by request."""
        return self.phase == "active" and self.released + (self.current is not None) < MILESTONES


SHAPES: tuple[Shape, ...] = (
    Shape("negotiating", 10, phase="negotiating"),
    Shape("ended", 5, released=1, current="funded", phase="ended"),
    Shape("awaiting first funding", 6),
    Shape("awaiting first funding + request", 3, pending_request=True),
    Shape("m1 funded", 17, current="funded"),
    Shape("m1 funded + request", 5, current="funded", pending_request=True),
    Shape("m1 submitted", 2, current="submitted"),
    Shape("m1 submitted + request", 2, current="submitted", pending_request=True),
    Shape("m1 released, awaiting funding", 7, released=1),
    Shape("m1 released, awaiting funding + request", 3, released=1, pending_request=True),
    Shape("m2 funded", 15, released=1, current="funded"),
    Shape("m2 funded + request", 4, released=1, current="funded", pending_request=True),
    Shape("m3 submitted", 4, released=2, current="submitted"),
    Shape("m3 submitted + request", 2, released=2, current="submitted", pending_request=True),
    Shape("m4 funded", 9, released=3, current="funded"),
    Shape("m4 funded + request", 1, released=3, current="funded", pending_request=True),
    Shape("m5 funded", 4, released=4, current="funded"),
    Shape("complete", 1, released=5),
)
assert sum(s.per_100 for s in SHAPES) == 100
assert sum(s.per_100 for s in SHAPES if s.pending_request) == 20
assert sum(s.per_100 for s in SHAPES if s.current == "submitted") == 10


# --- templates, through the services ------------------------------------------------------


def _build(session: Session, shape: Shape, base: datetime) -> int:
    """One contract in `shape`, made by the services with a clock walking its history."""
    client, freelancer = TEMPLATE_CLIENT, TEMPLATE_FREELANCER
    start = base - timedelta(days=2 if shape.phase == "negotiating" else 90)
    contract_id = services.create_contract(
        session,
        title="Website redesign",
        team_id=TEAM,
        channel_id=TEMPLATE_CHANNEL,
        creator_id=client,
        client_id=client,
        freelancer_id=freelancer,
        currency="USD",
        now=start,
        team_ids={client: TEAM, freelancer: TEAM},
    ).contract_id
    for number, amount in enumerate(AMOUNTS, start=1):
        services.change_milestones(
            session,
            contract_id=contract_id,
            actor_id=client,
            changes=[
                NewMilestone(
                    f"Milestone {number}",
                    amount,
                    (base + timedelta(days=10 * number)).date(),
                    "Deliverables as agreed in the kickoff call",
                )
            ],
            now=start,
        )
    if shape.phase == "negotiating":
        return contract_id
    for party in (client, freelancer):
        services.agree_to_terms(
            session, contract_id=contract_id, actor_id=party, now=start + timedelta(hours=1)
        )
    # Released milestones: funded, submitted, then approved — milestone 2 released itself
    # after the review period. The last release comes just before the milestone in
    # progress is funded, or an hour ago when the next one still waits for funding (so
    # the nudge to fund it, 48 hours after a release, is still to come).
    at = start + timedelta(days=1)
    for number in range(1, shape.released + 1):
        if number == shape.released:
            released = base - (timedelta(days=6) if shape.current else timedelta(hours=1))
            at = released - timedelta(days=14)
        else:
            released = at + (timedelta(days=14) if number == 2 else timedelta(days=3))
        services.fund_milestone(session, contract_id=contract_id, actor_id=client, now=at)
        services.submit_work(
            session, contract_id=contract_id, actor_id=freelancer, note="Done", now=at
        )
        if number == 2:
            with session.begin():
                milestone = session.scalar(
                    select(Milestone.id).where(
                        Milestone.contract_id == contract_id, Milestone.number == number
                    )
                )
            assert milestone is not None
            services.auto_release(session, milestone_id=milestone, now=released)
        else:
            services.approve_work(session, contract_id=contract_id, actor_id=client, now=released)
        at = released + timedelta(days=1)
    if shape.current is not None:
        services.fund_milestone(
            session, contract_id=contract_id, actor_id=client, now=base - timedelta(days=5)
        )
        if shape.current == "submitted":
            services.submit_work(
                session,
                contract_id=contract_id,
                actor_id=freelancer,
                note="Ready for review",
                now=base - timedelta(days=2),
            )
    if shape.pending_request:
        services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=freelancer,
            changes=[MilestoneEdit(number=MILESTONES, amount="2300")],
            message="The extra pages need another day",
            now=base - timedelta(hours=3),
        )
    if shape.phase == "ended":
        services.end_contract(  # the provider side ends: closed at once, escrow refunded
            session, contract_id=contract_id, actor_id=freelancer, now=base - timedelta(days=1)
        )
    return contract_id


@dataclass
class Template:
    shape: Shape
    rows: dict[str, list[dict[str, Any]]]  # table name -> rows, by id
    position: dict[str, dict[int, int]] = field(default_factory=dict)  # id -> index

    def __post_init__(self) -> None:
        self.position = {
            name: {row["id"]: i for i, row in enumerate(rows)} for name, rows in self.rows.items()
        }

    def count(self, table: str) -> int:
        return len(self.rows[table])


def build_templates(base: datetime, shapes: Sequence[Shape] = SHAPES) -> list[Template]:
    """One template per shape, made through the services in a scratch SQLite file."""
    with tempfile.TemporaryDirectory(prefix="milestone-templates-") as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'templates.sqlite3'}")
        try:
            upgrade_schema(engine)
            sessions = make_session_factory(engine)
            templates = []
            for shape in shapes:
                with sessions() as session:
                    contract_id = _build(session, shape, base)
                templates.append(Template(shape, _rows_of(engine, contract_id)))
            return templates
        finally:
            engine.dispose()


def _rows_of(engine: Engine, contract_id: int) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for model in TABLES:
            table: Table = model.__table__
            if model is Contract:
                where = table.c.id == contract_id
            elif model is Change:
                requests = select(ChangeRequest.id).where(ChangeRequest.contract_id == contract_id)
                where = table.c.request_id.in_(requests)
            else:
                where = table.c.contract_id == contract_id
            result = conn.execute(select(table).where(where).order_by(table.c.id))
            rows[table.name] = [dict(row._mapping) for row in result]
    return rows


# --- copies -------------------------------------------------------------------------------


def schedule(templates: Sequence[Template]) -> list[int]:
    """Which template each of 100 consecutive contracts copies (the mix, shuffled)."""
    order = [i for i, t in enumerate(templates) for _ in range(t.shape.per_100)]
    random.Random(20261102).shuffle(order)
    return order


def client_of(number: int) -> str:
    return f"UC{number // CONTRACTS_PER_CLIENT:07d}"


def freelancer_of(number: int, total: int) -> str:
    """Each freelancer works for five different clients."""
    people = max(1, total // CONTRACTS_PER_CLIENT)
    stride = people // CONTRACTS_PER_CLIENT + 1
    spread = (number % CONTRACTS_PER_CLIENT) * stride + number // CONTRACTS_PER_CLIENT
    return f"UF{spread % people:07d}"


def channel_of(contract_id: int) -> str:
    return f"C{contract_id:09d}"


# Columns naming a person (mapped from the template's people to the copy's).
USER_COLUMNS = frozenset(
    {
        "created_by",
        "provider_agreed_by",
        "closed_by",
        "user_id",
        "funded_by",
        "submitted_by",
        "released_by",
        "proposed_by",
        "decided_by",
        "actor",
        "recipient_id",
    }
)
# Foreign keys to rows of the same contract: column -> the table it points into.
REFERENCES = {
    ("change", "request_id"): "change_request",
    ("ledger_entry", "milestone_id"): "milestone",
    ("ledger_entry", "request_id"): "change_request",
}
OUTBOX_SUBJECTS = {
    "announce": "event",
    "contract_card": "contract",
    "request_card": "change_request",
    "work_card": "milestone",
    "reminder": "reminder",
}


@dataclass
class _TableCopy:
    """How to copy one template's rows of one table: values in column order, with the
    positions to rewrite for each copy worked out once."""

    table: Table
    rows: list[list[Any]]
    # Per row: (column index, table, position of the referenced row in the template).
    references: list[list[tuple[int, str, int]]]
    times: list[int]
    users: list[int]
    json: list[int]
    contract_column: int | None
    special: Callable[[list[Any], _Copy, int], None] | None = None


@dataclass
class _Copy:
    """The ids and names one copy gets."""

    number: int
    template: Template
    first_id: dict[str, int]  # table -> the id its first row gets
    users: dict[str, str]
    shift: timedelta

    @property
    def contract_id(self) -> int:
        return self.first_id["contract"]


def _prepare(template: Template, model: type[Any]) -> _TableCopy:
    table: Table = model.__table__
    columns = [c.name for c in table.columns]
    assert columns[0] == "id"
    index = {name: i for i, name in enumerate(columns)}
    rows, references = [], []
    for row in template.rows[table.name]:
        values = [row[c].value if isinstance(row[c], Enum) else row[c] for c in columns]
        refs = []
        for (name, column), target in REFERENCES.items():
            if name == table.name and row[column] is not None:
                refs.append((index[column], target, template.position[target][row[column]]))
        if table.name == "reminder":
            target = "change_request" if values[index["kind"]] == "request" else "milestone"
            refs.append((index["subject_id"], target, template.position[target][row["subject_id"]]))
        if table.name == "outbox_message" and row["kind"] in OUTBOX_SUBJECTS:
            target = OUTBOX_SUBJECTS[row["kind"]]
            refs.append((index["subject_id"], target, template.position[target][row["subject_id"]]))
        for i, column in enumerate(columns):
            if isinstance(table.c[column].type, JSON) and values[i] is not None:
                values[i] = json.dumps(values[i])
        rows.append(values)
        references.append(refs)
    times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UTCDateTime)]
    json_columns = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    return _TableCopy(
        table,
        rows,
        references,
        times,
        [i for i, c in enumerate(columns) if c in USER_COLUMNS],
        json_columns,
        index.get("contract_id"),
        _SPECIAL.get(table.name, lambda index: None)(index),
    )


def _contract_special(index: dict[str, int]) -> Callable[[list[Any], _Copy, int], None]:
    def fix(values: list[Any], copy: _Copy, _: int) -> None:
        values[index["channel_id"]] = channel_of(copy.contract_id)
        values[index["title"]] = f"{values[index['title']]} {copy.contract_id}"

    return fix


def _ledger_special(index: dict[str, int]) -> Callable[[list[Any], _Copy, int], None]:
    def fix(values: list[Any], copy: _Copy, _: int) -> None:
        kind, milestone = values[index["kind"]], values[index["milestone_id"]]
        request = values[index["request_id"]]
        values[index["key"]] = (
            f"top_up:{request}:{milestone}" if kind == "top_up" else f"{kind}:{milestone}"
        )

    return fix


def _reminder_special(index: dict[str, int]) -> Callable[[list[Any], _Copy, int], None]:
    def fix(values: list[Any], copy: _Copy, _: int) -> None:
        kind, _old, rest = values[index["key"]].split(":", 2)
        for old, new in copy.users.items():
            rest = rest.replace(old, new)
        values[index["key"]] = f"{kind}:{values[index['subject_id']]}:{rest}"

    return fix


def _outbox_special(index: dict[str, int]) -> Callable[[list[Any], _Copy, int], None]:
    sent = timedelta(milliseconds=300)

    def fix(values: list[Any], copy: _Copy, _: int) -> None:
        # Delivered long ago, as the bot does right after each commit.
        values[index["state"]] = "sent"
        values[index["attempts"]] = 1
        values[index["sent_at"]] = values[index["created_at"]] + sent
        values[index["next_attempt_at"]] = values[index["sent_at"]]

    return fix


_SPECIAL: dict[str, Callable[[dict[str, int]], Callable[[list[Any], _Copy, int], None]]] = {
    "contract": _contract_special,
    "ledger_entry": _ledger_special,
    "reminder": _reminder_special,
    "outbox_message": _outbox_special,
}


def _copy_rows(prepared: _TableCopy, copy: _Copy) -> Iterator[list[Any]]:
    first = copy.first_id
    name = prepared.table.name
    for position, (template_row, refs) in enumerate(
        zip(prepared.rows, prepared.references, strict=True)
    ):
        values = list(template_row)
        values[0] = first[name] + position  # `id` is every table's first column
        if prepared.contract_column is not None:
            values[prepared.contract_column] = copy.contract_id
        for i, target, target_position in refs:
            values[i] = first[target] + target_position
        for i in prepared.times:
            if values[i] is not None:
                values[i] = values[i] + copy.shift
        for i in prepared.users:
            values[i] = copy.users.get(values[i], values[i])
        for i in prepared.json:
            if values[i] is not None:
                for old, new in copy.users.items():
                    values[i] = values[i].replace(old, new)
        if prepared.special is not None:
            prepared.special(values, copy, position)
        yield values


def _copies(templates: list[Template], total: int) -> Iterator[_Copy]:
    order = schedule(templates)
    next_id = {model.__table__.name: 1 for model in TABLES}
    for number in range(total):
        template = templates[order[number % len(order)]]
        first = dict(next_id)
        for name in next_id:
            next_id[name] += template.count(name)
        users = {
            TEMPLATE_CLIENT: client_of(number),
            TEMPLATE_FREELANCER: freelancer_of(number, total),
        }
        shift = -timedelta(seconds=(number * 7919) % int(MAX_SHIFT.total_seconds()))
        yield _Copy(number, template, first, users, shift)


def _message_refs(copy: _Copy) -> Iterator[tuple[str, str, datetime]]:
    """Where this copy's cards live: its contract card, request cards and work cards."""
    rows = copy.template.rows
    channel = channel_of(copy.contract_id)
    created = rows["contract"][0]["created_at"] + copy.shift
    yield f"contract:{copy.contract_id}", channel, created
    for position, _ in enumerate(rows["change_request"]):
        yield f"request:{copy.first_id['change_request'] + position}", channel, created
    for position, milestone in enumerate(rows["milestone"]):
        for n in range(1, milestone["submission_count"] + 1):
            yield f"work:{copy.first_id['milestone'] + position}:{n}", channel, created


# --- writing ------------------------------------------------------------------------------


@dataclass
class SeedResult:
    contracts: int
    rows: dict[str, int]
    seconds: float
    method: str
    click_candidates: list[int]  # contract ids whose milestone 5 can take a change request

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


RowSource = Callable[[], Iterator[list[Any]]]


def seed(
    engine: Engine,
    contracts: int,
    *,
    base: datetime | None = None,
    shapes: Sequence[Shape] = SHAPES,
) -> SeedResult:
    """`contracts` contracts into an empty, migrated database (PostgreSQL: COPY).

    `base` is "now" for the templates' histories (default: now); `shapes` the mix.
    """
    began = time.monotonic()
    templates = build_templates(base or datetime.now(UTC), shapes)
    prepared = {
        id(template): {model.__table__.name: _prepare(template, model) for model in TABLES}
        for template in templates
    }
    sources: list[tuple[Table, RowSource]] = []
    for model in TABLES:
        name = model.__table__.name

        def rows(name: str = name) -> Iterator[list[Any]]:
            for copy in _copies(templates, contracts):
                yield from _copy_rows(prepared[id(copy.template)][name], copy)

        sources.append((model.__table__, rows))

    def refs() -> Iterator[list[Any]]:
        number = 0
        for copy in _copies(templates, contracts):
            for subject, channel, created in _message_refs(copy):
                number += 1
                yield [number, subject, channel, f"{1_700_000_000 + number}.000100", created]

    assert [c.name for c in MessageRef.__table__.columns] == [
        "id",
        "subject",
        "channel_id",
        "ts",
        "reserved_at",
    ]
    sources.append((MessageRef.__table__, refs))
    postgres = engine.dialect.name == "postgresql"
    counts = _copy_into_postgres(engine, sources) if postgres else _insert_into(engine, sources)
    candidates = [
        copy.contract_id
        for copy in _copies(templates, contracts)
        if copy.template.shape.can_take_a_request
    ]
    return SeedResult(
        contracts,
        counts,
        time.monotonic() - began,
        "COPY FROM STDIN (psycopg cursor.copy)" if postgres else "multi-row INSERT",
        candidates,
    )


def _copy_into_postgres(engine: Engine, sources: list[tuple[Table, RowSource]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert isinstance(conn, psycopg.Connection)
        with conn.cursor() as cursor:
            for table, rows in sources:
                columns = ", ".join(c.name for c in table.columns)
                written = 0
                with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                    for row in rows():
                        copy.write_row(row)
                        written += 1
                counts[table.name] = written
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)"
                )
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        conn.autocommit = False
    finally:
        raw.close()
    return counts


def _insert_into(engine: Engine, sources: list[tuple[Table, RowSource]]) -> dict[str, int]:
    """SQLite: the same rows through SQLAlchemy Core (its types store times and JSON)."""
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for table, rows in sources:
            columns = [c.name for c in table.columns]
            json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
            batch: list[dict[str, Any]] = []
            counts[table.name] = 0
            for row in rows():
                record = dict(zip(columns, row, strict=True))
                for name in json_columns:
                    if record[name] is not None:
                        record[name] = json.loads(record[name])
                batch.append(record)
                if len(batch) == 2000:
                    conn.execute(table.insert(), batch)
                    counts[table.name] += len(batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
                counts[table.name] += len(batch)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    return counts
