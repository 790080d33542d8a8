"""A digest sweeper for the exactly-once test, importable by `multiprocessing` spawn
children: its own engine from the database URL, like a separate bot process."""

from __future__ import annotations

import os
from datetime import datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from domain import digest
from domain.db import make_engine, make_session_factory


def digests_until_done(url: str, now: datetime, start: Barrier, results: Queue[object]) -> None:
    """Wait for everyone, queue digests until none is due; report (pid, how many queued)."""
    engine = make_engine(url, pool_size=2, max_overflow=2)
    try:
        sessions = make_session_factory(engine)
        with engine.connect():
            pass  # connect before the start line, so all sweepers really start together
        start.wait(timeout=60)
        queued = 0
        while True:
            queued += len(digest.send_due(sessions, now=now, time_zone_of=lambda _: None))
            with sessions() as session:
                if not digest.due(session, now=now):
                    break
        results.put((os.getpid(), queued))
    except BaseException as error:  # the parent asserts on what it gets back
        results.put((os.getpid(), repr(error)))
        raise
    finally:
        engine.dispose()
