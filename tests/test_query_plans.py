"""Every query on the hot paths is answered through an index (PostgreSQL, EXPLAIN).

The real code runs each path — `/milestone status` (resolve the channel's contract,
then its snapshot), an Accept click (the service, then the cards, Home and outbox
bookkeeping its delivery does), the sweep (automatic releases, reminders, outbox
retries, receipt housekeeping) — while every statement it sends is captured. Each
captured SELECT, UPDATE and DELETE is then planned again with `EXPLAIN (FORMAT JSON)`
and `SET enable_seqscan = off`: a table without a usable index still gets a
`Seq Scan` then, and one whose only usable index doesn't match the condition gets a
full index scan with a `Filter` and no `Index Cond`. Both fail the test, naming the
statement and the table. (The benchmark's EXPLAIN check on 100,000 seeded contracts,
`scripts/bench`, shows the planner picks the same indexes with sequential scans on.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, func, select, text

from bot.delivery import Delivery
from domain import intake, outbox, queries, services, snapshot
from domain.db import write_transaction
from domain.model import (
    ChangeRequest,
    Milestone,
    MilestoneStatus,
    OutboxMessage,
    RequestReceipt,
    RequestStatus,
)
from domain.policy import DEFAULT_POLICY
from domain.services import MilestoneEdit
from scheduler.jobs import sweep_auto_releases, sweep_reminders
from tests.conftest import Database
from tests.factories import CLIENT, FREELANCER, NOW, add, new_contract, submitted_contract

pytestmark = pytest.mark.postgres

SCAN_NODES = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan"}
PLANNED_VERBS = ("SELECT", "UPDATE", "DELETE", "WITH")  # statements that scan tables


class _FakeSlack:
    """Just enough of a WebClient for `Delivery` to render and 'send' everything."""

    def __init__(self) -> None:
        self.sent = 0

    def _ok(self, **_: Any) -> dict[str, Any]:
        self.sent += 1
        return {"ok": True, "ts": f"1700000000.{self.sent:06d}"}

    chat_postMessage = chat_update = views_publish = chat_postEphemeral = _ok

    def users_info(self, **_: Any) -> dict[str, Any]:
        return {"ok": True, "user": {"tz": "UTC"}}

    def conversations_open(self, users: str, **_: Any) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": "D" + users[1:]}}


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (with its parameters) the engine sends while inside the block."""
    statements: list[tuple[str, Any]] = []

    def remember(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(PLANNED_VERBS) and not many:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", remember)


def partial_indexes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%% WHERE %%'")
        )
        return {row[0] for row in rows}


def scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if plan.get("Node Type") in SCAN_NODES and "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


def _has_index_cond(node: dict[str, Any]) -> bool:
    if "Index Cond" in node:
        return True
    return any(_has_index_cond(child) for child in node.get("Plans", []))


def plan_problems(plan: dict[str, Any], partial_indexes: set[str]) -> list[str]:
    """The table scans of one plan that no index answers."""
    problems = []
    for scan in scans(plan):
        kind, table, index = scan["Node Type"], scan["Relation Name"], scan.get("Index Name")
        if kind == "Seq Scan":
            problems.append(f"Seq Scan on {table}")
        elif kind in ("Index Scan", "Index Only Scan") and not (
            _has_index_cond(scan) or index in partial_indexes
        ):
            problems.append(f"{kind} on {table} using {index} without an Index Cond")
    return problems


def explain_plans(
    engine: Engine, statements: list[tuple[str, Any]], *, enable_seqscan: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(statement, plan) for each distinct captured statement, planned again."""
    unique = {(statement, repr(params)): (statement, params) for statement, params in statements}
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        assert isinstance(dbapi, psycopg.Connection)
        with psycopg.ClientCursor(dbapi) as cursor:
            cursor.execute(f"SET enable_seqscan = {'on' if enable_seqscan else 'off'}")
            for statement, params in unique.values():
                cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
                row = cursor.fetchone()
                assert row is not None
                yield statement, row[0][0]["Plan"]
        dbapi.rollback()  # SET is transactional: the pooled connection is as it was
    finally:
        raw.close()


def unindexedscans(
    engine: Engine, statements: list[tuple[str, Any]], *, enable_seqscan: bool = False
) -> list[str]:
    """One line per table scan in these statements' plans that an index does not answer."""
    partial = partial_indexes(engine)
    return [
        f"{problem}: {_short(statement)}"
        for statement, plan in explain_plans(engine, statements, enable_seqscan=enable_seqscan)
        for problem in plan_problems(plan, partial)
    ]


def _short(statement: str) -> str:
    return " ".join(statement.split())[:300]


# --- the data: one contract of each kind the hot paths meet ------------------------------

STATUS_CHANNEL = "C0PLANS"


def pending_request(pg: Database) -> tuple[int, int]:
    """(contract id, request id): alone in its channel, active, milestone 1 funded and an
    edit of milestone 2 waiting for the client."""
    with pg.session() as session:
        contract_id = new_contract(session, channel=STATUS_CHANNEL)
        for number, amount in enumerate(("1500", "2500", "900"), start=1):
            add(session, contract_id, f"Milestone {number}", amount)
        for party in (CLIENT, FREELANCER):
            services.agree_to_terms(session, contract_id=contract_id, actor_id=party, now=NOW)
        services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
        outcome = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            changes=[MilestoneEdit(number=2, amount="2600")],
            now=NOW,
        )
    assert outcome.request_id is not None
    return contract_id, outcome.request_id


def seeded(pg: Database) -> dict[str, int]:
    """That contract, another with submitted work (due for automatic release a fortnight
    later, with its review reminders), and an old request receipt."""
    contract_id, request_id = pending_request(pg)
    with pg.session() as session:
        submitted = submitted_contract(session)
    with pg.session() as session, write_transaction(session):
        session.add(RequestReceipt(key="command:old", at=NOW - timedelta(hours=1)))
    return {"contract": contract_id, "request": request_id, "submitted": submitted}


def run_path(pg: Database, work: Callable[[], object]) -> list[str]:
    with captured(pg.engine) as statements:
        work()
    assert statements, "the path sent no statement at all"
    return unindexedscans(pg.engine, statements)


# --- the paths ---------------------------------------------------------------------------


def test_status_resolves_the_channels_contract_and_its_snapshot_through_indexes(
    pg: Database,
) -> None:
    seeded(pg)

    def status(contract_id: int | None) -> None:
        """What `/milestone status [contract=N]` asks the database (handlers/commands.py)."""
        with pg.session() as session, session.begin():
            found = queries.resolve_contract(
                session, channel_id=STATUS_CHANNEL, contract_id=contract_id
            ).id
        with pg.session() as session, session.begin():
            snapshot.snapshot(session, found)

    assert run_path(pg, lambda: status(None)) == []
    assert run_path(pg, lambda: status(1)) == []


def test_accept_and_everything_its_delivery_does_use_indexes(pg: Database) -> None:
    ids = seeded(pg)
    delivery = Delivery(pg.sessions, _FakeSlack(), lambda: NOW)  # type: ignore[arg-type]

    def accept() -> None:
        """What an Accept click does (handlers/actions.py): the service, then delivery."""
        with pg.session() as session:
            outcome = services.accept_request(
                session,
                actor_id=CLIENT,
                now=NOW,
                request_id=ids["request"],
                contract_id=ids["contract"],
            )
        assert not outcome.already_done and outcome.outbox_ids
        delivery.deliver(outcome.outbox_ids)  # claim, render cards and Home, mark sent

    assert run_path(pg, accept) == []
    with pg.session() as session, session.begin():
        request = session.get_one(ChangeRequest, ids["request"])
        assert request.status == RequestStatus.ACCEPTED


def test_the_sweep_and_the_outbox_claim_use_indexes(pg: Database) -> None:
    ids = seeded(pg)
    later = NOW + timedelta(days=15)
    delivery = Delivery(pg.sessions, _FakeSlack(), lambda: later)  # type: ignore[arg-type]
    # Something for the outbox retry to claim: an intent whose first attempt failed.
    with pg.session() as session:
        stale = session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)).first()
        assert stale is not None
    with pg.session() as session:
        outbox.retry_later(session, stale, at=later - timedelta(hours=1), error="timeout")

    def sweep() -> None:
        """One tick of scheduler/jobs.py `sweep_once`, step by step."""
        released = sweep_auto_releases(pg.sessions, later, delivery.deliver, policy=DEFAULT_POLICY)
        assert released == 1
        sweep_reminders(
            pg.sessions,
            later,
            delivery.deliver,
            policy=DEFAULT_POLICY,
            time_zone_of=lambda _: "UTC",
        )
        assert delivery.sweep() > 0  # claim_due / render / mark_sent_many
        intake.forget_receipts(pg.sessions, now=later)

    assert run_path(pg, sweep) == []
    with pg.session() as session, session.begin():
        status = session.scalar(
            select(Milestone.status).where(
                Milestone.contract_id == ids["submitted"], Milestone.number == 1
            )
        )
        receipts = session.scalar(select(func.count()).select_from(RequestReceipt))
    assert status == MilestoneStatus.RELEASED
    assert receipts == 0


def test_the_check_catches_a_condition_no_index_answers(pg: Database) -> None:
    """So that a pass means something: a filter on an unindexed column is reported."""

    def unindexed() -> None:
        with pg.session() as session, session.begin():
            session.scalars(select(Milestone.id).where(Milestone.title == "Design")).all()

    pending_request(pg)
    problems = run_path(pg, unindexed)
    assert len(problems) == 1 and "on milestone" in problems[0], problems
