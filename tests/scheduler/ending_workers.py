"""A sweeper of ending windows for the exactly-once test, importable by `multiprocessing`
spawn children: each builds its own engine from the URL, like a separate bot process."""

from __future__ import annotations

import os
from datetime import datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from sqlalchemy.orm import Session, sessionmaker

from domain.db import make_engine, make_session_factory
from domain.model import Contract, ContractStatus


def sweep_windows_until_done(sessions: sessionmaker[Session], now: datetime) -> int:
    """Sweep until no window that ran out is left (a contract skipped as busy is
    retried); how many this sweeper refunded."""
    from sqlalchemy import select

    from scheduler.jobs import sweep_ending_windows

    refunded = 0
    for _ in range(1000):
        refunded += sweep_ending_windows(sessions, now, lambda ids: None)
        with sessions() as session, session.begin():
            left = session.scalar(
                select(Contract.id)
                .where(Contract.status == ContractStatus.ENDING, Contract.ending_deadline_at <= now)
                .limit(1)
            )
        if left is None:
            return refunded
    raise AssertionError("the ending windows never finished")


def sweep_windows_in_process(
    url: str, now: datetime, start: Barrier, results: Queue[object]
) -> None:
    """Wait for everyone, sweep until nothing is due; report (pid, refunded)."""
    engine = make_engine(url, pool_size=2, max_overflow=2)
    try:
        sessions = make_session_factory(engine)
        with engine.connect():
            pass  # connect before the start line, so all sweepers really start together
        start.wait(timeout=60)
        results.put((os.getpid(), sweep_windows_until_done(sessions, now)))
    except BaseException as error:  # the parent asserts on what it gets back
        results.put((os.getpid(), repr(error)))
        raise
    finally:
        engine.dispose()
