"""Automatic release exactly once, with sweepers in several processes and threads at once.

Hundreds of milestones whose review period ran out are swept by two separate processes
(spawned, each with its own engine) and two threads, all released at the same instant:
every milestone must get exactly one release ledger entry, one `milestone_released`
event, and one `announce` intent for that event — and every release is counted by
exactly one sweeper.
"""

from __future__ import annotations

import multiprocessing
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from domain.db import make_engine, make_session_factory, read_transaction
from domain.model import LedgerEntry, LedgerKind, Milestone, MilestoneStatus
from tests.conftest import Database
from tests.factories import NOW, submitted_contract
from tests.scheduler.support import (
    announcements_per_event,
    clone_contract,
    release_events,
    releases_per_milestone,
    submitted_milestones,
    sweep_until_done,
)
from tests.scheduler.workers import sweep_in_process

AFTER_REVIEW = NOW + timedelta(days=15)
MILESTONES = 200
PROCESSES = 2
THREADS = 2


def seed(database: Database, count: int) -> list[int]:
    """`count` contracts with submitted work whose review period ran out; milestone ids."""
    with database.session() as session:
        template = submitted_contract(session)
        contracts = [template, *clone_contract(session, template, count - 1)]
        milestones = submitted_milestones(session, contracts)
    assert len(milestones) == count
    return milestones


def assert_released_exactly_once(database: Database, milestones: list[int]) -> None:
    with database.session() as session:
        assert releases_per_milestone(session) == dict.fromkeys(milestones, 1)
        with read_transaction(session):
            statuses = dict(
                session.execute(
                    select(Milestone.status, func.count()).group_by(Milestone.status)
                ).all()
            )
            total = session.scalar(
                select(func.sum(LedgerEntry.amount_minor)).where(
                    LedgerEntry.kind == LedgerKind.RELEASE
                )
            )
        assert statuses.get(MilestoneStatus.RELEASED) == len(milestones)
        assert MilestoneStatus.SUBMITTED not in statuses
        assert total == 150000 * len(milestones)

        events = release_events(session)
        assert len(events) == len(milestones)
        assert len({(e.contract_id, e.milestone_number) for e in events}) == len(milestones)
        assert all(e.data["automatic"] for e in events)
        announced = announcements_per_event(session)
        assert {e.id: announced.get(e.id, 0) for e in events} == {e.id: 1 for e in events}


def test_two_processes_and_two_threads_release_each_milestone_exactly_once_on_postgresql(
    pg: Database,
) -> None:
    milestones = seed(pg, MILESTONES)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES + THREADS)
    results = context.Queue()
    processes = [
        context.Process(
            target=sweep_in_process, args=(pg.url, AFTER_REVIEW, start, results), daemon=True
        )
        for _ in range(PROCESSES)
    ]
    counted: list[tuple[str, int]] = []
    sweeping: list[float] = []
    errors: list[BaseException] = []

    def sweep_in_thread(name: str) -> None:
        try:
            start.wait(timeout=60)
            counted.append((name, sweep_until_done(pg.sessions, AFTER_REVIEW)))
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    threads = [
        threading.Thread(target=sweep_in_thread, args=(f"thread-{i}",)) for i in range(THREADS)
    ]
    for process in processes:
        process.start()
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for _ in processes:
        pid, released, seconds = results.get(timeout=90)
        assert isinstance(released, int), f"sweeper process {pid} failed: {released}"
        counted.append((f"process-{pid}", released))
        sweeping.append(seconds)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    elapsed = time.monotonic() - began

    assert errors == []
    assert sum(n for _, n in counted) == MILESTONES, counted
    assert_released_exactly_once(pg, milestones)
    print(
        f"{MILESTONES} releases by {counted}; {elapsed:.1f}s with process start-up, "
        f"{max(sweeping):.1f}s sweeping"
    )


@pytest.fixture
def sqlite_file(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "sweepers.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    yield Database("sqlite", url, engine, make_session_factory(engine))
    engine.dispose()


def test_threads_with_their_own_engines_release_each_milestone_exactly_once_on_sqlite(
    sqlite_file: Database,
) -> None:
    count = 200
    sweepers = 4
    milestones = seed(sqlite_file, count)
    start = threading.Barrier(sweepers)
    counted: list[int] = []
    errors: list[BaseException] = []

    def sweep_with_own_engine() -> None:
        engine = make_engine(sqlite_file.url)
        try:
            sessions = make_session_factory(engine)
            start.wait(timeout=60)
            counted.append(sweep_until_done(sessions, AFTER_REVIEW))
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=sweep_with_own_engine) for _ in range(sweepers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert errors == []
    assert sum(counted) == count, counted
    assert_released_exactly_once(sqlite_file, milestones)
