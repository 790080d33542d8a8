"""The scheduler: APScheduler decides *when*; the domain decides *what* is due.

One in-memory interval job per process (no persistent job store, nothing pickled):
every `SWEEP_SECONDS` (with jitter) it applies what the domain says is due through the
same services a click uses, then sends undelivered outbox intents. Several processes
may sweep at once: the due rows are claimed with `FOR UPDATE SKIP LOCKED`, so they are
split between them, and every service re-checks eligibility under a row lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from domain import digest, reminders, services
from domain.policy import Clock, Policy
from domain.reminders import TimeZoneOf

log = logging.getLogger(__name__)

BATCH = 50


def sweep_auto_releases(
    sessions: sessionmaker[Session],
    now: datetime,
    deliver: Callable[[Sequence[int]], None],
    *,
    policy: Policy,
) -> int:
    """Release every submitted milestone whose review period ran out; returns how many.

    A batch at a time, each in one transaction through `services.release_due`, which
    claims contracts nobody else holds (several processes split the due work) and
    re-checks each under its lock. A contract another transaction holds is left for a
    later sweep.
    """
    released = 0
    while True:
        with sessions() as session:
            outcomes = services.release_due(session, now=now, policy=policy, limit=BATCH)
        if not outcomes:
            return released
        released += len(outcomes)
        deliver([outbox_id for outcome in outcomes for outbox_id in outcome.outbox_ids])


def sweep_ending_windows(
    sessions: sessionmaker[Session],
    now: datetime,
    deliver: Callable[[Sequence[int]], None],
) -> int:
    """Refund every ending contract whose window ran out with neither an accepted refund
    nor a dispute; returns how many. Like the automatic release: a batch at a time, each
    in one transaction through `services.refund_due`, which claims contracts nobody else
    holds and re-checks each under its lock."""
    refunded = 0
    while True:
        with sessions() as session:
            outcomes = services.refund_due(session, now=now, limit=BATCH)
        if not outcomes:
            return refunded
        refunded += len(outcomes)
        deliver([outbox_id for outcome in outcomes for outbox_id in outcome.outbox_ids])


def sweep_reminders(
    sessions: sessionmaker[Session],
    now: datetime,
    deliver: Callable[[Sequence[int]], None],
    *,
    policy: Policy,
    time_zone_of: TimeZoneOf,
) -> int:
    """Queue and deliver the reminders that are due; returns how many were queued."""
    queued = reminders.send_due(sessions, now=now, time_zone_of=time_zone_of, policy=policy)
    deliver(queued)
    return len(queued)


def sweep_digests(
    sessions: sessionmaker[Session],
    now: datetime,
    deliver: Callable[[Sequence[int]], None],
    *,
    time_zone_of: TimeZoneOf,
) -> int:
    """Queue and deliver the morning digests whose 09:00 has come in their owners' time
    zones (domain.digest decides; once per person and day); returns how many."""
    queued = digest.send_due(sessions, now=now, time_zone_of=time_zone_of)
    deliver(queued)
    return len(queued)


class Scheduler:
    """APScheduler in this process: the sweep every `every_seconds` (with jitter), and
    wake-ups — an extra outbox pass at the instant a deferred delivery may go (a rate
    limit's Retry-After), so it does not wait for the next sweep.

    In-memory jobs only (no persistent job store, nothing pickled): what is due lives in
    the database, and every process sweeps it.
    """

    WAKE = "wake"

    def __init__(
        self,
        sweep: Callable[[], None],
        deliver_due: Callable[[], object],
        *,
        every_seconds: float,
        jitter_seconds: float | None = None,
    ) -> None:
        self._deliver_due = deliver_due
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._scheduler.add_job(
            sweep,
            "interval",
            seconds=every_seconds,
            jitter=jitter_seconds if jitter_seconds is not None else max(1.0, every_seconds / 6),
            id="sweep",
            max_instances=1,
            coalesce=True,
            # Run once right away: a deadline passed while the bot was down is acted on now.
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )

    def start(self) -> Scheduler:
        self._scheduler.start()
        return self

    def wake_at(self, at: datetime) -> None:
        """Deliver what is due at `at` (the earliest of the wake-ups asked for wins)."""
        with self._lock:
            if not self._scheduler.running:
                return
            job = self._scheduler.get_job(self.WAKE)
            if job is not None and job.next_run_time is not None and job.next_run_time <= at:
                return
            self._scheduler.add_job(
                self._deliver_due,
                "date",
                run_date=at,
                id=self.WAKE,
                replace_existing=True,
                misfire_grace_time=None,
            )

    def shutdown(self) -> None:
        """Stop; a sweep under way finishes first."""
        with self._lock:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=True)


class Outbox(Protocol):
    def deliver(self, ids: Sequence[int]) -> None: ...

    def sweep(self, *, limit: int = 50) -> int: ...


def sweep_once(
    sessions: sessionmaker[Session],
    clock: Clock,
    *,
    policy: Policy,
    outbox: Outbox,
    time_zone_of: TimeZoneOf,
    housekeeping: Callable[[], None] = lambda: None,
) -> None:
    """One tick: everything that came due since the last one, then outbox retries."""
    now = clock()
    for step, run in (
        (
            "automatic releases",
            lambda: sweep_auto_releases(sessions, now, outbox.deliver, policy=policy),
        ),
        ("ending windows", lambda: sweep_ending_windows(sessions, now, outbox.deliver)),
        (
            "reminders",
            lambda: sweep_reminders(
                sessions, now, outbox.deliver, policy=policy, time_zone_of=time_zone_of
            ),
        ),
        (
            "digests",
            lambda: sweep_digests(sessions, now, outbox.deliver, time_zone_of=time_zone_of),
        ),
        ("outbox", outbox.sweep),
        ("housekeeping", housekeeping),
    ):
        try:
            run()
        except Exception:
            # One failing step (say, the database restarting) must not stop the others
            # or kill the ticker; the next tick tries again.
            log.exception("sweep step %s failed", step)
