"""`Scheduler`: a real BackgroundScheduler running the sweep in memory, and waking the
outbox at the instant a deferred delivery may go."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from scheduler.jobs import Scheduler


def scheduler_for(
    sweep: Callable[[], None],
    *,
    every_seconds: float,
    jitter_seconds: float | None = None,
    deliver_due: Callable[[], object] = lambda: None,
) -> Scheduler:
    return Scheduler(
        sweep, deliver_due, every_seconds=every_seconds, jitter_seconds=jitter_seconds
    ).start()


class Recorder:
    """A sweep that records when it ran."""

    def __init__(self) -> None:
        self.runs: list[float] = []
        self.threads: set[str] = set()
        self.enough = threading.Event()
        self.wanted = 2

    def __call__(self) -> None:
        self.runs.append(time.monotonic())
        self.threads.add(threading.current_thread().name)
        if len(self.runs) >= self.wanted:
            self.enough.set()


def test_the_sweep_runs_repeatedly_at_a_tiny_interval_and_the_scheduler_shuts_down_cleanly() -> (
    None
):
    sweep = Recorder()
    sweep.wanted = 3
    scheduler = scheduler_for(sweep, every_seconds=0.05, jitter_seconds=0)
    try:
        assert sweep.enough.wait(timeout=10), f"ran {len(sweep.runs)} times"
    finally:
        scheduler.shutdown()

    assert not scheduler._scheduler.running
    assert threading.main_thread().name not in sweep.threads  # in the background
    ran = len(sweep.runs)
    time.sleep(0.3)
    assert len(sweep.runs) == ran  # nothing runs after shutdown


def test_the_first_sweep_runs_right_away_not_after_the_first_interval() -> None:
    sweep = Recorder()
    sweep.wanted = 1
    started = time.monotonic()
    scheduler = scheduler_for(sweep, every_seconds=3600)
    try:
        [job] = scheduler._scheduler.get_jobs()
        assert sweep.enough.wait(timeout=10)
        assert sweep.runs[0] - started < 5
        # After the first run the next one is an interval (plus jitter) away.
        next_run = job.next_run_time
        assert next_run is not None
        assert next_run.astimezone(UTC) > datetime.now(UTC) + timedelta(minutes=50)
    finally:
        scheduler.shutdown()


def test_the_sweep_job_is_in_memory_single_instance_and_never_dropped_as_misfired() -> None:
    sweep = Recorder()
    scheduler = scheduler_for(sweep, every_seconds=30)
    try:
        [job] = scheduler._scheduler.get_jobs()
        assert job.id == "sweep"
        assert job.max_instances == 1
        assert job.coalesce is True
        assert job.misfire_grace_time is None
        # The default jitter stays below the interval (30 s → 5 s).
        assert job.trigger.jitter == 5
    finally:
        scheduler.shutdown()


def test_a_slow_sweep_does_not_overlap_itself() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    done = threading.Event()
    calls = 0

    def slow_sweep() -> None:
        nonlocal running, most, calls
        with lock:
            running += 1
            most = max(most, running)
            calls += 1
        time.sleep(0.2)
        with lock:
            running -= 1
            if calls >= 3:
                done.set()

    scheduler = scheduler_for(slow_sweep, every_seconds=0.02, jitter_seconds=0)
    try:
        assert done.wait(timeout=10)
    finally:
        scheduler.shutdown()
    assert most == 1


def test_a_wake_up_delivers_at_the_instant_asked_not_at_the_next_sweep() -> None:
    sweep, delivered = Recorder(), Recorder()
    delivered.wanted = 1
    scheduler = scheduler_for(sweep, every_seconds=3600, deliver_due=delivered)
    try:
        asked = time.monotonic()
        scheduler.wake_at(datetime.now(UTC) + timedelta(seconds=0.5))
        assert delivered.enough.wait(timeout=5)
        assert 0.4 <= delivered.runs[0] - asked < 2.0
    finally:
        scheduler.shutdown()


def test_of_two_wake_ups_the_earlier_wins_and_a_later_one_does_not_postpone_it() -> None:
    delivered = Recorder()
    delivered.wanted = 1
    scheduler = scheduler_for(Recorder(), every_seconds=3600, deliver_due=delivered)
    try:
        asked = time.monotonic()
        scheduler.wake_at(datetime.now(UTC) + timedelta(seconds=0.3))
        scheduler.wake_at(datetime.now(UTC) + timedelta(seconds=30))
        assert delivered.enough.wait(timeout=5)
        assert delivered.runs[0] - asked < 2.0
    finally:
        scheduler.shutdown()
