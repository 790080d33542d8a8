"""The ending window runs out: the refund happens by itself, exactly once, whoever sweeps
(several processes and threads at once), and a window that ran out while the bot was
down is refunded at the next sweep."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from domain import services
from domain.db import read_transaction
from domain.model import Contract, ContractStatus, Event, EventKind, LedgerEntry, LedgerKind
from scheduler.jobs import sweep_ending_windows
from tests.conftest import Database
from tests.factories import CLIENT, NOW, funded_contract
from tests.scheduler.ending_workers import sweep_windows_in_process, sweep_windows_until_done

ENDED_AT = NOW + timedelta(days=1)
AFTER_WINDOW = ENDED_AT + timedelta(days=7, minutes=1)
CONTRACTS = 24
PROCESSES = 2
THREADS = 2


def ending_contracts(database: Database, count: int) -> list[int]:
    made = []
    for _ in range(count):
        with database.session() as session:
            contract_id = funded_contract(session)
            services.end_contract(session, contract_id=contract_id, actor_id=CLIENT, now=ENDED_AT)
        made.append(contract_id)
    return made


def assert_refunded_exactly_once(database: Database, contracts: list[int]) -> None:
    with database.session() as session, read_transaction(session):
        refunds = dict(
            session.execute(
                select(LedgerEntry.contract_id, func.count())
                .where(LedgerEntry.kind == LedgerKind.REFUND)
                .group_by(LedgerEntry.contract_id)
            ).all()
        )
        ended = dict(
            session.execute(
                select(Event.contract_id, func.count())
                .where(Event.kind == EventKind.CONTRACT_ENDED)
                .group_by(Event.contract_id)
            ).all()
        )
        statuses = set(session.scalars(select(Contract.status).where(Contract.id.in_(contracts))))
    assert refunds == dict.fromkeys(contracts, 1)
    assert ended == dict.fromkeys(contracts, 1)
    assert statuses == {ContractStatus.CLOSED}


def test_a_window_that_ran_out_while_the_bot_was_down_is_refunded_by_the_next_sweep(
    db: Database,
) -> None:
    contracts = ending_contracts(db, 2)
    delivered: list[int] = []

    assert (
        sweep_ending_windows(db.sessions, AFTER_WINDOW - timedelta(days=1), delivered.extend) == 0
    )
    assert (
        sweep_ending_windows(db.sessions, AFTER_WINDOW + timedelta(days=30), delivered.extend) == 2
    )
    assert (
        sweep_ending_windows(db.sessions, AFTER_WINDOW + timedelta(days=31), delivered.extend) == 0
    )

    assert delivered, "the sweep hands the cards and news to the delivery"
    assert_refunded_exactly_once(db, contracts)


@pytest.mark.postgres
def test_processes_and_threads_sweeping_at_once_refund_each_window_exactly_once(
    pg: Database,
) -> None:
    contracts = ending_contracts(pg, CONTRACTS)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES + THREADS)
    results = context.Queue()
    processes = [
        context.Process(
            target=sweep_windows_in_process,
            args=(pg.url, AFTER_WINDOW, start, results),
            daemon=True,
        )
        for _ in range(PROCESSES)
    ]
    counted: list[int] = []
    errors: list[BaseException] = []

    def sweep_in_thread() -> None:
        try:
            start.wait(timeout=60)
            counted.append(sweep_windows_until_done(pg.sessions, AFTER_WINDOW))
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    threads = [threading.Thread(target=sweep_in_thread) for _ in range(THREADS)]
    for process in processes:
        process.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for _ in processes:
        pid, refunded = results.get(timeout=90)
        assert isinstance(refunded, int), f"sweeper process {pid} failed: {refunded}"
        counted.append(refunded)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert errors == []
    assert sum(counted) == CONTRACTS, counted
    assert_refunded_exactly_once(pg, contracts)
