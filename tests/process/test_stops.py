"""Stopping `serve` the ways operators and machines do, in the middle of a burst of
clicks: SIGKILL to the whole tree (the OOM killer, a host failure), SIGTERM (systemd's
default KillMode=control-group, a container stop) and SIGINT (Ctrl+C) to the process
group, to the master alone and to one worker alone. Whatever happens, every click Slack
got an ack for is applied exactly once and its clicker told, nothing is released twice,
and the ledger verifies (tests/process/burst.py); a stop exits 0 within
SHUTDOWN_SECONDS.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest

from domain.db import upgrade_schema
from sandbox.emulator import SlackEmulator
from tests.process.burst import answers_delivered, burst, judge, seed_submitted, wait_for_work_cards
from tests.process.conftest import BotProcess, Launcher, driver_for, wait_until
from tests.process.test_processes import Database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CLICKS = 20
SHUTDOWN_SECONDS = 10.0
LEASE_SECONDS = 30  # bot.delivery: a claim held by a killed process expires after this


@dataclass
class Serve:
    launcher: Launcher
    slack: SlackEmulator
    database: Database
    url: str

    def start(self) -> BotProcess:
        env = self.launcher.env(self.slack, self.url, SWEEP_SECONDS="1")
        process = self.launcher.serve("--workers", "2", env=env)
        process.wait_healthy()
        wait_until(
            lambda: process.stderr.count("ASGI server listening") == 2,
            timeout=30,
            what="both workers to listen",
        )
        return process


@pytest.fixture
def serve(launcher: Launcher, slack: SlackEmulator, fresh_postgres_url: str) -> Iterator[Serve]:
    database = Database(fresh_postgres_url)
    upgrade_schema(database.engine)
    try:
        yield Serve(launcher, slack, database, fresh_postgres_url)
    finally:
        launcher.close()
        database.close()


def workers(process: BotProcess) -> list[psutil.Process]:
    return psutil.Process(process.popen.pid).children()


def test_sigkill_of_the_whole_tree_mid_burst_loses_nothing_acked(serve: Serve) -> None:
    applied = acked = 0
    for cycle in range(3):
        works = seed_submitted(serve.database, serve.slack, CLICKS, tag=f"K{cycle}")
        process = serve.start()
        cards = wait_for_work_cards(serve.database, works)

        def kill(process: BotProcess = process) -> None:
            os.killpg(process.popen.pid, signal.SIGKILL)

        driver = driver_for(serve.slack, process)
        clicks = burst(driver, works, cards, during=kill, after_acks=random.randint(1, CLICKS - 2))
        process.popen.wait(timeout=10)
        a, b = judge(serve.database, clicks)
        acked, applied = acked + a, applied + b
    # Restarted: what the killed processes held is delivered, once each.
    process = serve.start()
    wait_until(
        lambda: answers_delivered(serve.database),
        timeout=LEASE_SECONDS + 30,
        what="every queued answer to reach its clicker",
    )
    assert 3 <= acked < 3 * CLICKS  # the kills fell mid-burst
    assert applied >= acked


@dataclass(frozen=True)
class Stop:
    signal: signal.Signals
    target: str  # "group", "master", "worker"


STOPS = [
    Stop(sig, target)
    for sig in (signal.SIGTERM, signal.SIGINT)
    for target in ("group", "master", "worker")
]


@pytest.mark.parametrize("stop", STOPS, ids=lambda s: f"{s.signal.name}-to-{s.target}")
def test_a_stop_mid_burst_loses_nothing_and_exits_0_in_time(serve: Serve, stop: Stop) -> None:
    works = seed_submitted(serve.database, serve.slack, CLICKS, tag="S")
    process = serve.start()
    cards = wait_for_work_cards(serve.database, works)
    [worker, *_] = workers(process)
    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        if stop.target == "group":
            os.killpg(process.popen.pid, stop.signal)
        elif stop.target == "master":
            process.popen.send_signal(stop.signal)
        else:
            worker.send_signal(stop.signal)

    driver = driver_for(serve.slack, process)
    clicks = burst(driver, works, cards, during=send, after_acks=random.randint(1, CLICKS - 2))

    if stop.target == "worker":
        gone = wait_exit(worker, SHUTDOWN_SECONDS + 1)
        assert gone - sent[0] < SHUTDOWN_SECONDS
        assert f"Worker (pid:{worker.pid})" not in process.stderr  # exit 0, no signal
        assert process.running()  # gunicorn starts another one
    else:
        code = process.popen.wait(timeout=SHUTDOWN_SECONDS + 5)
        assert time.monotonic() - sent[0] < SHUTDOWN_SECONDS
        assert code == 0, process.describe()
        assert "Traceback" not in process.stderr, process.describe()
        process = serve.start()
    judge(serve.database, clicks)
    wait_until(
        lambda: answers_delivered(serve.database),
        timeout=20,
        what="every queued answer to reach its clicker",
    )
    acked = [c for c in clicks if c.response.status == 200]
    assert acked, "the stop came after every click was refused"


def wait_exit(process: psutil.Process, timeout: float) -> float:
    """When `process` was gone (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"{process.pid} still running after {timeout}s")
