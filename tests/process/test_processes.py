"""`milestone-bot serve` and `milestone-bot worker` as real processes, driven like Slack.

Slack is the local emulator; requests are signed as Slack signs them; the database is
a SQLite file in the test's directory (one test uses a fresh PostgreSQL database).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from domain import services
from domain.db import make_engine, make_session_factory, upgrade_schema
from domain.export import export_contracts
from domain.policy import DEFAULT_POLICY
from domain.services import NewMilestone
from sandbox.emulator import Response, SlackDriver, SlackEmulator, StoredMessage
from tests.process.conftest import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    BotProcess,
    Launcher,
    driver_for,
    make_emulator,
    stop_all,
    wait_until,
)

pytestmark = pytest.mark.e2e

SLACK_ACK_LIMIT = 3.0  # seconds: Slack shows the user an error after this
# 0.00002 days ≈ 1.7 s of review before automatic release
SHORT_REVIEW_DAYS = "0.00002"
SHORT_REVIEW = timedelta(days=float(SHORT_REVIEW_DAYS))
AUTO_RELEASED = "released automatically"


# --- helpers ------------------------------------------------------------------------------


def message_text(message: StoredMessage) -> str:
    """Everything a reader sees in a message: its text and every text in its blocks."""
    out = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks)
    return "\n".join(out)


def channel_messages_with(slack: SlackEmulator, text: str) -> list[StoredMessage]:
    return [m for m in slack.messages(CHANNEL) if text in message_text(m)]


def reply_to(slack: SlackEmulator, response: Response, timeout: float = 10.0) -> str:
    """The ephemeral answer the app sent to the command's response_url."""
    assert response.status == 200, (response.status, response.text)
    post = slack.wait_for(
        lambda: [r for r in slack.responses if r.url == response.response_url],
        timeout=timeout,
        message=f"a reply on {response.response_url}",
    )[-1]
    body = post.body if isinstance(post.body, dict) else {"text": str(post.body)}
    return message_text(
        StoredMessage("", "", text=str(body.get("text", "")), blocks=body.get("blocks") or [])
    )


class Database:
    """The test's view of the processes' database (read-only, through the domain)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def export(self) -> list[dict[str, Any]]:
        with self.sessions() as session, session.begin():
            contracts: list[dict[str, Any]] = export_contracts(session)["contracts"]
            return contracts

    def contract(self, contract_id: int) -> dict[str, Any]:
        return next(c for c in self.export() if c["id"] == contract_id)

    def seed_funded_contract(self, *, now: datetime) -> int:
        """An active contract in CHANNEL whose first milestone is funded, as of `now`."""
        upgrade_schema(self.engine)
        with self.sessions() as session:
            contract_id = services.create_contract(
                session,
                title="Seeded work",
                team_id="T0001",
                channel_id=CHANNEL,
                creator_id=CLIENT,
                client_id=CLIENT,
                freelancer_id=FREELANCER,
                now=now,
            ).contract_id
            services.change_milestones(
                session,
                contract_id=contract_id,
                actor_id=CLIENT,
                changes=[NewMilestone("Design", "1500", date.today() + timedelta(days=30), "")],
                now=now,
            )
            for party in (CLIENT, FREELANCER):
                services.agree_to_terms(session, contract_id=contract_id, actor_id=party, now=now)
            services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=now)
        return contract_id

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def database(sqlite_url: str) -> Iterator[Database]:
    db = Database(sqlite_url)
    yield db
    db.close()


def milestone_one(db: Database, contract_id: int) -> dict[str, Any]:
    milestone: dict[str, Any] = db.contract(contract_id)["milestones"][0]
    return milestone


def releases(db: Database, contract_id: int) -> list[dict[str, Any]]:
    return [e for e in db.contract(contract_id)["ledger"] if e["kind"] == "release"]


def assert_stop_cleanly(*processes: BotProcess) -> None:
    """SIGTERM stops each with exit code 0 and no traceback on stderr."""
    codes = stop_all(*processes)
    for process, code in zip(processes, codes, strict=True):
        assert code == 0, f"exit code {code} after SIGTERM: {process.describe()}"
        assert "Traceback" not in process.stderr, process.describe()


# --- serve over HTTP (one gunicorn with 2 asyncio workers, for the module) --------------


@dataclass
class HttpBot:
    slack: SlackEmulator
    process: BotProcess
    driver: SlackDriver
    database: Database


@pytest.fixture(scope="module")
def http_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpBot]:
    workdir: Path = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{workdir / 'bot.sqlite3'}"
    launcher = Launcher(workdir)
    database = Database(url)
    with make_emulator() as slack:
        try:
            process = launcher.serve("--workers", "2", env=launcher.env(slack, url))
            process.wait_healthy()
            yield HttpBot(slack, process, driver_for(slack, process), database)
        finally:
            launcher.close()
            database.close()


def test_serve_runs_gunicorn_asgi_workers_and_answers_healthz_with_json(
    http_bot: HttpBot,
) -> None:
    assert http_bot.process.wait_healthy() == {"ok": True, "database": "up"}
    stderr = http_bot.process.stderr
    assert "Using worker: asgi" in stderr
    wait_until(
        lambda: http_bot.process.stderr.count("ASGI server listening") == 2,
        timeout=30,
        what="both workers to listen",
    )


def test_a_signed_new_command_creates_the_contract_and_posts_its_card(http_bot: HttpBot) -> None:
    slack = http_bot.slack

    response = http_bot.driver.command(
        CLIENT,
        f'new "Process-built site" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>',
        channel_id=CHANNEL,
    )

    assert response.status == 200
    assert "Process-built site" in reply_to(slack, response)
    card = slack.wait_for(
        lambda: channel_messages_with(slack, "Process-built site"),
        timeout=10,
        message="the contract card in the channel",
    )
    assert card[0].bot_id == slack.bot_id
    [contract] = [c for c in http_bot.database.export() if c["title"] == "Process-built site"]
    assert (contract["client_id"], contract["freelancer_id"]) == (CLIENT, FREELANCER)
    assert contract["channel_id"] == CHANNEL and contract["status"] == "negotiating"


def workers_of(process: BotProcess) -> list[psutil.Process]:
    """gunicorn's worker processes under `serve`."""
    return psutil.Process(process.popen.pid).children()


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_worker_that_dies_is_replaced_and_the_next_command_is_answered(
    launcher: Launcher, slack: SlackEmulator, sqlite_url: str
) -> None:
    bot = launcher.serve("--workers", "1", env=launcher.env(slack, sqlite_url))
    bot.wait_healthy()
    driver = driver_for(slack, bot)
    assert "/milestone new" in reply_to(slack, driver.command(CLIENT, "help", channel_id=CHANNEL))
    [worker] = workers_of(bot)

    worker.kill()  # as the OOM killer would
    wait_until(lambda: not alive(worker), timeout=10, what="the worker to die")
    replacement = wait_until(
        lambda: [w for w in workers_of(bot) if w.pid != worker.pid],
        timeout=30,
        what="gunicorn to start another worker",
    )[0]
    bot.wait_healthy()
    response = driver.command(FREELANCER, "help", channel_id=CHANNEL)

    assert response.status == 200
    assert "/milestone new" in reply_to(slack, response, timeout=30)
    assert_stop_cleanly(bot)
    assert not alive(replacement)


def test_a_replayed_command_is_acked_and_does_nothing(
    launcher: Launcher, slack: SlackEmulator, sqlite_url: str
) -> None:
    bot = launcher.serve(env=launcher.env(slack, sqlite_url))
    bot.wait_healthy()
    driver = driver_for(slack, bot)
    new = f'new "Replayed site" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'
    assert "Replayed site" in reply_to(slack, driver.command(CLIENT, new, channel_id=CHANNEL))
    first = driver.last_request

    replay = driver.replay(first)
    help_reply = reply_to(slack, driver.command(CLIENT, "help", channel_id=CHANNEL))

    assert replay.status == 200 and "/milestone new" in help_reply  # both were acked
    exported = Database(sqlite_url)
    try:
        titles = [c["title"] for c in exported.export()]
    finally:
        exported.close()
    assert titles.count("Replayed site") == 1
    assert "ignored a repeated request: command:" in bot.stderr
    assert_stop_cleanly(bot)


def test_twenty_concurrent_commands_are_all_acked_within_slacks_three_seconds(
    http_bot: HttpBot,
) -> None:
    slack, driver = http_bot.slack, http_bot.driver
    driver.command(CLIENT, "help", channel_id=CHANNEL)  # the workers have booted by now
    start = threading.Barrier(20)

    def one(i: int) -> tuple[Response, float]:
        start.wait(timeout=10)
        began = time.monotonic()
        response = driver.command(CLIENT if i % 2 else FREELANCER, "help", channel_id=CHANNEL)
        return response, time.monotonic() - began

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))

    assert [r.status for r, _ in results] == [200] * 20, [r.text for r, _ in results]
    for _, elapsed in results:
        assert elapsed < SLACK_ACK_LIMIT, (
            f"an ack took {elapsed:.2f}s: {sorted(e for _, e in results)}"
        )
    for response, _ in results:  # and every one of them was answered
        assert "/milestone new" in reply_to(slack, response)


@pytest.mark.postgres
def test_serve_and_worker_start_together_on_a_fresh_postgresql_database(
    launcher: Launcher, slack: SlackEmulator, fresh_postgres_url: str
) -> None:
    env = launcher.env(slack, fresh_postgres_url)
    # Both migrate at start-up, at the same moment: the advisory lock serialises them.
    bot = launcher.serve("--workers", "2", env=env)
    worker = launcher.start("worker", env=env)
    assert bot.wait_healthy()["ok"] is True
    worker.wait_for_stderr("worker running")

    response = driver_for(slack, bot).command(
        CLIENT,
        f'new "On PostgreSQL" client=<@{CLIENT}> freelancer=<@{FREELANCER}>',
        channel_id=CHANNEL,
    )

    assert "On PostgreSQL" in reply_to(slack, response)
    slack.wait_for(
        lambda: channel_messages_with(slack, "On PostgreSQL"),
        timeout=10,
        message="the contract card in the channel",
    )
    db = Database(fresh_postgres_url)
    try:
        assert [c["title"] for c in db.export()] == ["On PostgreSQL"]
    finally:
        db.close()
    assert_stop_cleanly(bot, worker)


# --- the scheduler: in serve, or in a worker of its own -----------------------------------


def test_a_worker_releases_what_serve_without_scheduler_leaves_once_and_announces_it(
    launcher: Launcher, slack: SlackEmulator, sqlite_url: str, database: Database
) -> None:
    contract_id = database.seed_funded_contract(now=datetime.now(UTC))
    env = launcher.env(slack, sqlite_url, AUTO_RELEASE_DAYS=SHORT_REVIEW_DAYS, SWEEP_SECONDS="1")
    bot = launcher.serve("--no-scheduler", env=env)
    bot.wait_healthy()

    answer = reply_to(
        slack, driver_for(slack, bot).command(FREELANCER, 'submit "All done"', channel_id=CHANNEL)
    )
    assert "submitted" in answer.lower(), answer
    submitted = milestone_one(database, contract_id)
    assert submitted["status"] == "submitted"
    due = datetime.fromisoformat(submitted["auto_release_at"].replace("Z", "+00:00"))
    assert due - datetime.now(UTC) < timedelta(seconds=2)  # serve used AUTO_RELEASE_DAYS

    # Past the deadline by more than a sweep interval (1 s + jitter): serve alone did nothing.
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 2.5)
    assert milestone_one(database, contract_id)["status"] == "submitted"
    assert not channel_messages_with(slack, AUTO_RELEASED)

    worker = launcher.start("worker", env=env)
    wait_until(
        lambda: milestone_one(database, contract_id)["status"] == "released",
        timeout=15,
        what="the worker's automatic release",
    )
    slack.wait_for(
        lambda: channel_messages_with(slack, AUTO_RELEASED),
        timeout=10,
        message="the announcement of the automatic release",
    )
    time.sleep(2.5)  # more sweeps: nothing happens twice

    assert milestone_one(database, contract_id)["released_automatically"] is True
    assert [(e["amount_minor"], e["actor"]) for e in releases(database, contract_id)] == [
        (150000, "system")
    ]
    assert len(channel_messages_with(slack, AUTO_RELEASED)) == 1
    assert_stop_cleanly(worker, bot)


def test_a_deadline_that_passed_while_the_bot_was_down_is_acted_on_at_start_up(
    launcher: Launcher, slack: SlackEmulator, sqlite_url: str, database: Database
) -> None:
    contract_id = database.seed_funded_contract(now=datetime.now(UTC))
    with database.sessions() as session:
        services.submit_work(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            note="Delivered before the outage",
            now=datetime.now(UTC),
            policy=replace(DEFAULT_POLICY, auto_release_period=SHORT_REVIEW),
        )
    due = datetime.fromisoformat(
        milestone_one(database, contract_id)["auto_release_at"].replace("Z", "+00:00")
    )
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)  # nothing running
    assert milestone_one(database, contract_id)["status"] == "submitted"

    # A sweep interval longer than the test: only the sweep at start-up can act.
    env = launcher.env(slack, sqlite_url, AUTO_RELEASE_DAYS=SHORT_REVIEW_DAYS, SWEEP_SECONDS="60")
    bot = launcher.serve(env=env)
    wait_until(
        lambda: milestone_one(database, contract_id)["status"] == "released",
        timeout=20,
        what="the release at start-up",
    )
    took = time.monotonic() - bot.started

    assert took < 20, f"released {took:.1f}s after start-up"
    assert milestone_one(database, contract_id)["released_automatically"] is True
    slack.wait_for(
        lambda: channel_messages_with(slack, AUTO_RELEASED),
        timeout=10,
        message="the announcement of the automatic release",
    )
    assert len(releases(database, contract_id)) == 1
    assert_stop_cleanly(bot)


# --- stopping -----------------------------------------------------------------------------


def test_sigterm_stops_serve_and_worker_cleanly(
    launcher: Launcher, slack: SlackEmulator, sqlite_url: str
) -> None:
    env = launcher.env(slack, sqlite_url, SWEEP_SECONDS="1")
    bot = launcher.serve("--workers", "2", env=env)
    bot.wait_healthy()  # schema in place before the worker starts (see the note below)
    worker = launcher.start("worker", env=env)
    worker.wait_for_stderr("worker running")
    time.sleep(1.5)  # both have swept at least once

    began = time.monotonic()
    assert_stop_cleanly(bot, worker)

    assert time.monotonic() - began < 15


# Note: `serve` and `worker` started at the same instant on a *fresh SQLite file* race in
# their start-up migrations (domain.db.upgrade_schema begins a deferred transaction on
# SQLite, so one of them can fail with "database is locked"); the PostgreSQL test above
# starts them together because there an advisory lock serialises the upgrades.


def test_serve_releases_submitted_work_automatically_seen_in_slack_and_in_export(
    launcher: Launcher, slack: SlackEmulator, sqlite_url: str, database: Database
) -> None:
    # interface.md: AUTO_RELEASE_DAYS=0.0001 is a review period of about nine seconds.
    contract_id = database.seed_funded_contract(now=datetime.now(UTC))
    env = launcher.env(slack, sqlite_url, AUTO_RELEASE_DAYS="0.0001", SWEEP_SECONDS="1")
    bot = launcher.serve(env=env)
    bot.wait_healthy()
    answer = reply_to(
        slack, driver_for(slack, bot).command(FREELANCER, 'submit "Shipped"', channel_id=CHANNEL)
    )
    assert "submitted" in answer.lower(), answer

    slack.wait_for(
        lambda: channel_messages_with(slack, AUTO_RELEASED),
        timeout=30,
        message="the announcement of the automatic release",
    )
    exported = subprocess.run(
        [sys.executable, "-m", "bot.cli", "export", "--contract", str(contract_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [contract] = json.loads(exported.stdout)["contracts"]
    [milestone] = [m for m in contract["milestones"] if m["number"] == 1]
    assert milestone["status"] == "released" and milestone["released_automatically"] is True
    assert [e["kind"] for e in contract["ledger"]] == ["fund", "release"]
    assert contract["ledger"][-1]["actor"] == "system"
    assert_stop_cleanly(bot)
