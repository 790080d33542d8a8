"""A thread that sends what the database queued for the world outside Slack: the
webhook sender (bot/webhooks.py) and the payments sender (bot/payments.py).

The request path only wakes it (`nudge`, called by `Delivery.deliver` after every
commit); it sleeps until the next row is due or `poll_seconds` pass (rows written by
other processes). A pass (`send_due`, the subclass's) claims due rows with a lease, so
several processes share the work and a dead one's claims are taken over; a failure is
tried again after `backoff(attempts)`: doubling from `base_backoff`, with jitter, up to
`max_backoff`. A database that does not answer costs a pass, never the thread.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Self

from sqlalchemy.orm import Session, sessionmaker

from domain.policy import Clock

log = logging.getLogger(__name__)


class QueueSender:
    """Runs `send_due` on its own thread whenever nudged or something is due."""

    name = "sender"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        poll_seconds: float,
        base_backoff: float,
        max_backoff: float,
        jitter: Callable[[], float] = lambda: random.uniform(1.0, 1.2),
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what a sender does ----------------------------------------------------------

    def send_due(self) -> int:
        """Send everything due now; how many rows were tried."""
        raise NotImplementedError

    def next_due(self, session: Session) -> datetime | None:
        """When the next queued row is due (None: nothing is queued)."""
        raise NotImplementedError

    # --- the thread ------------------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def nudge(self) -> None:
        """Something may have been queued: look now (returns at once)."""
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop: a send under way may finish within `timeout`; what is left stays queued
        (claimed for its lease at most) for the next sender."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` tries: doubling, with jitter."""
        doubled: float = self.base_backoff * 2.0 ** max(0, attempts - 1)
        return min(self.max_backoff, doubled) * self.jitter()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.send_due()
            except Exception:  # noqa: BLE001 - the database restarting: try again later
                log.exception("%s: pass failed; trying again", self.name)
            self._wake.wait(self._pause())

    def _pause(self) -> float:
        """Until the next row is due, or `poll_seconds` at most."""
        try:
            with self.sessions() as session:
                due = self.next_due(session)
        except Exception:  # noqa: BLE001
            log.exception("%s could not read what is due", self.name)
            return self.poll_seconds
        if due is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.05, (due - self.clock()).total_seconds()))
