"""PostgreSQL connection killed mid-transaction (`pg_terminate_backend`).

A service is stopped half-way through its transaction — after it has written the
milestone, the ledger entry and history, before its last insert — by a lock another
connection holds on the table it writes last; a second, admin connection then
terminates the service's backend. Nothing is half-applied (ledger, milestone,
request, events, outbox: all or nothing), the person is told so (the apology with an
error id) and the action goes through when retried; the sweeper's release is retried
by the next sweep. Under CI these tests fail, not skip, when PostgreSQL is down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from domain import services
from domain.policy import DEFAULT_POLICY
from domain.services import MilestoneEdit
from scheduler.jobs import sweep_auto_releases
from tests import factories as f
from tests.adversarial.support import (
    assert_ledger_verifies,
    click,
    click_reply,
    command,
    exported,
    ledger_entries,
    table_rows,
)
from tests.conftest import Database
from tests.e2e.conftest import CLIENT, FREELANCER, Bot

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def ledger_verified_at_the_end(pg: Database) -> Iterator[None]:
    yield
    assert_ledger_verifies(pg.url)


@dataclass
class Victim:
    """The service running in its own thread, and what happened to it."""

    pid: int = 0
    written: set[str] = field(default_factory=set)
    outcome: Any = None
    error: BaseException | None = None


def _admin(pg: Database) -> Connection:
    return pg.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _blocked_backend(admin: Connection, blocker_pid: int, timeout: float = 10.0) -> int:
    """The backend waiting for the blocker's lock: the service, half-way through."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = admin.scalar(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND :blocker = ANY(pg_blocking_pids(pid))"
            ),
            {"blocker": blocker_pid},
        )
        if pid is not None:
            return int(pid)
        time.sleep(0.02)
    raise AssertionError("the service never reached the locked table")


def _tables_written(admin: Connection, pid: int) -> set[str]:
    rows = admin.execute(
        text(
            "SELECT DISTINCT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE l.pid = :pid AND l.mode = 'RowExclusiveLock' AND c.relkind = 'r'"
        ),
        {"pid": pid},
    )
    return {str(name) for (name,) in rows}


@contextmanager
def table_locked(pg: Database, table: str) -> Iterator[int]:
    """Another connection holds `table` so that nobody can write it; yields its pid."""
    with pg.engine.connect() as blocker:
        blocker.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
        try:
            yield int(blocker.scalar(text("SELECT pg_backend_pid()")) or 0)
        finally:
            blocker.rollback()


def kill_mid_transaction(pg: Database, last_table: str, run: Callable[[], Any]) -> Victim:
    """Run `run` until it blocks on `last_table`, then terminate its backend."""
    victim = Victim()

    def target() -> None:
        try:
            victim.outcome = run()
        except BaseException as error:  # noqa: BLE001 - recorded for the test to check
            victim.error = error

    with _admin(pg) as admin, table_locked(pg, last_table) as blocker_pid:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        victim.pid = _blocked_backend(admin, blocker_pid)
        victim.written = _tables_written(admin, victim.pid)
        assert admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim.pid})
        thread.join(timeout=15)
        assert not thread.is_alive()
    return victim


def snapshot(pg: Database) -> tuple[Any, Any]:
    return exported(pg.sessions), table_rows(pg.sessions)


def service(pg: Database, call: Callable[[Session], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with pg.sessions() as session:
            return call(session)

    return run


def assert_nothing_half_applied(pg: Database, before: tuple[Any, Any], victim: Victim) -> None:
    assert isinstance(victim.error, OperationalError), victim.error or victim.outcome
    assert snapshot(pg) == before
    assert_ledger_verifies(pg.url)


@pytest.mark.parametrize("last_table", ["event", "outbox_message"])
def test_funding_killed_half_way_leaves_nothing_and_goes_through_on_retry(
    pg: Database, last_table: str
) -> None:
    with pg.sessions() as session:
        contract_id = f.active_contract(session)
    before = snapshot(pg)

    def fund(session: Session) -> services.Outcome:
        return services.fund_milestone(
            session, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW
        )

    victim = kill_mid_transaction(pg, last_table, service(pg, fund))
    assert {"milestone", "ledger_entry"} <= victim.written  # it was half-way
    assert_nothing_half_applied(pg, before, victim)
    assert "Funded milestone 1" in service(pg, fund)().summary
    assert [e.kind for e in ledger_entries(pg.sessions)] == ["fund"]
    assert_ledger_verifies(pg.url)


def test_a_release_killed_after_its_ledger_entry_leaves_the_work_submitted(pg: Database) -> None:
    with pg.sessions() as session:
        contract_id = f.submitted_contract(session)
    before = snapshot(pg)

    def approve(session: Session) -> services.Outcome:
        return services.approve_work(session, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW)

    victim = kill_mid_transaction(pg, "outbox_message", service(pg, approve))
    assert {"milestone", "ledger_entry", "event"} <= victim.written
    assert_nothing_half_applied(pg, before, victim)
    assert exported(pg.sessions)["contracts"][0]["milestones"][0]["status"] == "submitted"
    assert "Approved milestone 1" in service(pg, approve)().summary
    assert [e.kind for e in ledger_entries(pg.sessions)] == ["fund", "release"]


def test_an_accepted_top_up_killed_half_way_is_all_or_nothing(pg: Database) -> None:
    with pg.sessions() as session:
        contract_id = f.funded_contract(session)
        request_id = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=f.FREELANCER,
            changes=[MilestoneEdit(1, amount="2000", title="Bigger")],
            now=f.NOW,
        ).request_id
    before = snapshot(pg)

    def accept(session: Session) -> services.Outcome:
        return services.accept_request(session, actor_id=f.CLIENT, now=f.NOW, request_id=request_id)

    victim = kill_mid_transaction(pg, "outbox_message", service(pg, accept))
    assert {"change_request", "milestone", "ledger_entry", "event"} <= victim.written
    assert_nothing_half_applied(pg, before, victim)
    assert "Escrow topped up by $500.00" in service(pg, accept)().summary
    assert [e.amount_minor for e in ledger_entries(pg.sessions)] == [150000, 50000]


def test_ending_killed_half_way_refunds_nothing_twice(pg: Database) -> None:
    with pg.sessions() as session:
        contract_id = f.funded_contract(session)
    before = snapshot(pg)

    def end(session: Session) -> services.Outcome:
        return services.end_contract(
            session, contract_id=contract_id, actor_id=f.FREELANCER, now=f.NOW
        )

    victim = kill_mid_transaction(pg, "outbox_message", service(pg, end))
    assert {"contract", "milestone", "ledger_entry", "event"} <= victim.written
    assert_nothing_half_applied(pg, before, victim)
    assert "$1,500.00 refunded" in service(pg, end)().summary
    assert [e.kind for e in ledger_entries(pg.sessions)] == ["fund", "refund"]


def test_an_automatic_release_killed_half_way_is_retried_by_the_next_sweep(pg: Database) -> None:
    with pg.sessions() as session:
        f.submitted_contract(session)
    before = snapshot(pg)
    later = f.NOW + timedelta(days=15)

    def sweep() -> int:
        return sweep_auto_releases(pg.sessions, later, lambda ids: None, policy=DEFAULT_POLICY)

    victim = kill_mid_transaction(pg, "outbox_message", sweep)
    assert {"milestone", "ledger_entry"} <= victim.written
    assert_nothing_half_applied(pg, before, victim)
    assert sweep() == 1  # the next tick
    assert sweep() == 0
    assert [e.kind for e in ledger_entries(pg.sessions)] == ["fund", "release"]
    assert_ledger_verifies(pg.url)


def test_a_click_whose_connection_is_killed_is_told_nothing_changed_and_works_when_clicked_again(
    pg_bot: Bot, pg: Database, caplog: pytest.LogCaptureFixture
) -> None:
    bot = pg_bot
    command(bot, CLIENT, f'new "Killed" client=<@{CLIENT}> freelancer=<@{FREELANCER}>')
    command(bot, CLIENT, 'add "One" 1500 2030-01-01')
    command(bot, CLIENT, "start")
    command(bot, FREELANCER, "start")
    before = snapshot(pg)
    victim = kill_mid_transaction(  # (the refusal is the click's own answer)
        pg, "outbox_message", lambda: bot.reply_to(click(bot, CLIENT, "contract:1", "Fund"))
    )
    assert {"milestone", "ledger_entry", "event"} <= victim.written
    reply = victim.outcome
    assert isinstance(reply, str), reply
    assert "can't reach my database" in reply and "nothing changed" in reply, reply
    assert "the database did not answer" in caplog.text
    assert snapshot(pg) == before
    assert "Funded" in click_reply(bot, CLIENT, "contract:1", "Fund")  # the card, in place
    assert [e.kind for e in ledger_entries(pg.sessions)] == ["fund"]
