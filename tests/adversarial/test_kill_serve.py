"""kill -9 of a real `milestone-bot serve` at random points of a scripted negotiation.

The bot runs as an operator runs it (a subprocess: gunicorn, its ticker every second,
a SQLite file, the Slack emulator behind SLACK_API_URL). A driver plays the client
and the freelancer through a negotiation — create, add milestones, agree, fund,
submit, request changes, propose and accept an increase, approve (or let the short
review period release automatically), end, and start the next contract — reading
the database to decide each next step. Each cycle the whole process group is killed
with SIGKILL at a random moment (while a request is being handled, while the ticker
works, or while the process is still starting) and started again.

Afterwards: `milestone-bot ledger verify` passes, no milestone was released twice,
and every outbox intent is delivered — after a final run of `serve` with its ticker
and then one more tick with the clock moved past the 60-second claim lease that the
killed processes left on the intents they were sending (instead of waiting it out).

`MILESTONE_KILL_CYCLES` (default 20) sets the number of kills, `MILESTONE_KILL_SEED`
the random seed (printed on failure).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlalchemy import func, select

from bot.delivery import Delivery
from bot.directory import SlackTimeZones
from domain.db import make_engine, make_session_factory
from domain.model import (
    ChangeRequest,
    Contract,
    ContractStatus,
    Event,
    LedgerEntry,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    OutboxMessage,
    RequestStatus,
)
from domain.policy import DEFAULT_POLICY
from sandbox.emulator import SlackDriver, SlackEmulator
from scheduler.jobs import sweep_once

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
CYCLES = int(os.environ.get("MILESTONE_KILL_CYCLES", "20"))
SEED = int(os.environ.get("MILESTONE_KILL_SEED", "20261122"))
SECRET = "kill-signing-secret"
CHANNEL = "C0KILL"
CLIENT, FREELANCER = "U0CLIENT", "U0FREELA"
NEW = f'new "Killed {{n}}" client=<@{CLIENT}> freelancer=<@{FREELANCER}>'
LEASE = timedelta(seconds=60)  # bot.delivery.Delivery's default claim lease
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_BOT_SETTINGS = ("SLACK_", "DATABASE_URL", "AUTO_RELEASE", "REQUEST_REMINDER", "REVIEW_REMINDER")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Serve:
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()[-3000:]}")
            try:
                with _NO_PROXY.open(self.url + "/healthz", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.03)
        raise AssertionError(f"serve never became healthy: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: the gunicorn master and its worker."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=25)
        finally:
            self.kill()


class Operator:
    """Starts `milestone-bot` processes with their own environment and working directory."""

    def __init__(self, workdir: Path, slack: SlackEmulator, database_url: str) -> None:
        self.workdir = workdir
        self.started: list[Serve] = []
        env = {
            k: v
            for k, v in os.environ.items()
            if "proxy" not in k.lower() and not k.startswith(_BOT_SETTINGS)
        }
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
            SKIP_SLACK_SDK_WARNING="1",
            NO_PROXY="127.0.0.1,localhost",
            SLACK_BOT_TOKEN="xoxb-kill",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.api_url,
            DATABASE_URL=database_url,
            SWEEP_SECONDS="1",
            AUTO_RELEASE_DAYS="0.00002",  # about 1.7 s of review
        )
        self.env = env

    def serve(self) -> Serve:
        port = free_port()
        log = self.workdir / f"serve-{len(self.started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"]
                + ["--port", str(port), "--workers", "1"],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Serve(popen, f"http://127.0.0.1:{port}", log)
        self.started.append(process)
        return process

    def ledger_verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", "ledger", "verify"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def close(self) -> None:
        for process in self.started:
            process.kill()


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator(validate_blocks=True) as emulator:
        emulator.add_user(CLIENT, "carol", tz="America/New_York", tz_offset=-18000)
        emulator.add_user(FREELANCER, "fred", tz="Europe/Berlin", tz_offset=3600)
        emulator.add_channel(CHANNEL, "deals", members=[CLIENT, FREELANCER])
        yield emulator


class Negotiation:
    """Reads the database and says what the people do next (a fixed script)."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.sessions = make_session_factory(self.engine)
        self.contracts_started = 0

    def next_step(self) -> tuple[str, str]:
        with self.sessions() as session, session.begin():
            contract = session.scalar(select(Contract).order_by(Contract.id.desc()).limit(1))
            if contract is None or contract.status == ContractStatus.CLOSED:
                self.contracts_started += 1
                return CLIENT, NEW.format(n=self.contracts_started)
            milestones = list(
                session.scalars(
                    select(Milestone)
                    .where(Milestone.contract_id == contract.id)
                    .order_by(Milestone.number)
                )
            )
            requests = list(
                session.scalars(
                    select(ChangeRequest).where(ChangeRequest.contract_id == contract.id)
                )
            )
        if contract.status == ContractStatus.NEGOTIATING:
            if len(milestones) < 3:
                n = len(milestones) + 1
                return CLIENT, f'add "Part {n}" {n}000 2030-0{n}-01'
            return (CLIENT, "start") if contract.client_agreed_at is None else (FREELANCER, "start")
        pending = [r for r in requests if r.status == RequestStatus.PENDING]
        if pending:
            return CLIENT, f"accept {pending[0].number}"
        current = next(
            (
                m
                for m in milestones
                if m.status in (MilestoneStatus.FUNDED, MilestoneStatus.SUBMITTED)
            ),
            None,
        )
        if current is None:
            upcoming = next((m for m in milestones if m.status == MilestoneStatus.PENDING), None)
            if upcoming is None:
                return CLIENT, "end"
            if upcoming.number == 3 and not requests:
                return FREELANCER, 'edit 3 amount=3500 message="One more screen"'
            return CLIENT, "fund"
        if current.status == MilestoneStatus.FUNDED:
            return (
                FREELANCER,
                f'submit "Part {current.number}, take {current.submission_count + 1}"',
            )
        if current.number == 1 and current.changes_requested_at is None:
            return CLIENT, 'changes "Please tighten the copy"'
        return CLIENT, "approve"


def act(slack: SlackEmulator, driver: SlackDriver, user: str, text: str) -> str | None:
    """Type a command and wait for its answer; None if the process died first."""
    try:
        response = driver.command(user, text, channel_id=CHANNEL)
    except OSError:
        return None
    if response.status != 200:
        return None
    try:
        post = slack.wait_for(
            lambda: [r for r in slack.responses if r.url == response.response_url],
            timeout=5,
        )
    except AssertionError:
        return None
    if text == "end":  # answered with a confirmation: its button ends the contract
        shown = [e for e in slack.ephemerals(CHANNEL, user) if "end_contract" in str(e.blocks)]
        if shown:
            try:
                driver.click_button(user, CHANNEL, shown[-1].ts, "End contract")
            except OSError:
                return None
    return str(post[-1].body.get("text", ""))


def test_kill_9_at_random_points_of_a_negotiation_never_corrupts_the_money(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    rng = random.Random(SEED)
    database_url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    operator = Operator(tmp_path, slack, database_url)
    negotiation = Negotiation(database_url)
    kills: Counter[str] = Counter()
    answers: list[str] = []
    started = time.monotonic()
    try:
        for _ in range(CYCLES):
            serve = operator.serve()
            if rng.random() < 0.1:  # killed while starting up (or migrating)
                time.sleep(rng.uniform(0.0, 1.0))
                serve.kill()
                kills["while starting"] += 1
                continue
            serve.healthy()
            driver = SlackDriver(slack, serve.url, SECRET)
            for _ in range(rng.randint(0, 3)):
                answer = act(slack, driver, *negotiation.next_step())
                if answer is not None:
                    answers.append(answer)
            if rng.random() < 0.7:  # killed while handling a request
                user, text = negotiation.next_step()
                threading.Thread(target=act, args=(slack, driver, user, text), daemon=True).start()
                time.sleep(rng.uniform(0.0, 0.3))
                kills[f"during `{text.split()[0]}`"] += 1
            else:  # killed while idle: the ticker may be sweeping or delivering
                time.sleep(rng.uniform(0.0, 1.5))
                kills["between requests"] += 1
            serve.kill()
        # A final run with the ticker: catches up on what came due while it was down.
        final = operator.serve()
        final.healthy()
        driver = SlackDriver(slack, final.url, SECRET)
        for _ in range(3):  # and it still works
            act(slack, driver, *negotiation.next_step())
        time.sleep(2.5)
        final.stop()
    finally:
        operator.close()
    # The claims of the killed senders expire after the lease: one more tick, with the
    # clock moved past it, delivers what they left.
    after_lease = datetime.now(UTC) + LEASE + timedelta(seconds=5)
    client = WebClient(token="xoxb-kill", base_url=slack.api_url)
    delivery = Delivery(negotiation.sessions, client, lambda: after_lease)
    for _ in range(5):
        sweep_once(
            negotiation.sessions,
            lambda: after_lease,
            policy=DEFAULT_POLICY,
            outbox=delivery,
            time_zone_of=SlackTimeZones(client),
        )
    elapsed = time.monotonic() - started
    report = f"seed {SEED}, {CYCLES} kills {dict(kills)}, {elapsed:.0f} s"

    verified = operator.ledger_verify()
    assert verified.returncode == 0, f"{report}\n{verified.stdout}{verified.stderr}"
    assert verified.stdout.startswith("ledger OK:")
    with negotiation.sessions() as session, session.begin():
        releases = Counter(
            session.scalars(
                select(LedgerEntry.milestone_id).where(LedgerEntry.kind == LedgerKind.RELEASE)
            )
        )
        released_events = Counter(
            session.execute(
                select(Event.contract_id, Event.milestone_number).where(
                    Event.kind == "milestone_released"
                )
            ).all()
        )
        outbox = Counter(session.scalars(select(OutboxMessage.state)))
        contracts = session.scalar(select(func.count()).select_from(Contract))
    assert releases and max(releases.values()) == 1, f"{report}: {releases}"
    assert max(released_events.values()) == 1, f"{report}: {released_events}"
    assert set(outbox) == {"sent"}, f"{report}: outbox {dict(outbox)}"
    assert contracts and not [a for a in answers if "went wrong" in a], report
    print(  # noqa: T201 - the run's figures, shown with -s
        f"kill -9: {report}; {contracts} contracts, {sum(releases.values())} releases, "
        f"{outbox['sent']} outbox messages delivered; {verified.stdout.strip()}"
    )
    negotiation.engine.dispose()
