"""Sweepers for the exactly-once tests, importable by `multiprocessing` spawn children.

Each child builds its own engine from the database URL, like a separate bot process.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from domain.db import make_engine, make_session_factory
from tests.scheduler.support import sweep_until_done


def sweep_in_process(url: str, now: datetime, start: Barrier, results: Queue[object]) -> None:
    """Wait for everyone, sweep until nothing is due; report (pid, released, seconds)."""
    engine = make_engine(url, pool_size=2, max_overflow=2)
    try:
        sessions = make_session_factory(engine)
        with engine.connect():
            pass  # connect before the start line, so all sweepers really start together
        start.wait(timeout=60)
        began = time.monotonic()
        released = sweep_until_done(sessions, now)
        results.put((os.getpid(), released, time.monotonic() - began))
    except BaseException as error:  # the parent asserts on what it gets back
        results.put((os.getpid(), repr(error), 0.0))
        raise
    finally:
        engine.dispose()
