"""The real processes, started as an operator starts them: `python -m bot.cli …`.

Each process gets its own environment (no proxies, no inherited bot settings), its
own working directory and a process group, and is always stopped at the end of the
test that started it. Its stdout and stderr go to files, so a chatty process never
blocks on a full pipe and a failing test can show what it said.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text

from sandbox.emulator import SlackDriver, SlackEmulator
from tests.conftest import postgres_unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "process-signing-secret"
BOT_TOKEN = "xoxb-process-test"
CHANNEL = "C0PROC"
CLIENT = "U0CLIENT"
FREELANCER = "U0FREELA"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
SETTINGS_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "DATABASE_URL",
    "AUTO_RELEASE_DAYS",
    "REQUEST_REMINDER_FIRST_HOURS",
    "REQUEST_REMINDER_EVERY_HOURS",
    "REVIEW_REMINDER_DAYS_BEFORE",
    "FUND_REMINDER_HOURS",
    "WORKING_HOURS",
    "SWEEP_SECONDS",
    "SHUTDOWN_SECONDS",
    "MAX_AMOUNT",
    "LOG_LEVEL",
)
PG_ADMIN_URL = os.environ.get(
    "MILESTONE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
STOP_TIMEOUT = 25.0  # gunicorn's graceful_timeout is 20 s

T = TypeVar("T")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until(
    predicate: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with _NO_PROXY.open(url, timeout=timeout) as reply:
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class BotProcess:
    """One `milestone-bot …` process."""

    args: list[str]
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    started: float
    url: str | None = None
    terminated: bool = False

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-40:])
        return f"`milestone-bot {' '.join(self.args)}` (exit {self.popen.poll()}):\n{tail}"

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        """Poll `GET /healthz` until it answers 200; return its JSON."""
        assert self.url is not None, "not an HTTP process"
        url = self.url + "/healthz"

        def healthy() -> dict[str, Any] | None:
            if not self.running():
                raise AssertionError(f"the process exited before it was healthy: {self.describe()}")
            try:
                status, body = http_get(url)
            except OSError:
                return None
            if status != 200:
                return None
            parsed: dict[str, Any] = json.loads(body)
            return parsed

        try:
            return wait_until(healthy, timeout=timeout, what="GET /healthz → 200")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.describe()}") from None

    def wait_for_stderr(self, text: str, timeout: float = 30.0) -> None:
        def said() -> bool:
            if not self.running():
                raise AssertionError(f"the process exited: {self.describe()}")
            return text in self.stderr

        wait_until(said, timeout=timeout, what=f"{text!r} on stderr of {self.args}")

    def terminate(self) -> None:
        """One SIGTERM, as a process manager sends it (a second one during interpreter
        shutdown, when Python has restored the default handlers, would kill it)."""
        if self.running() and not self.terminated:
            self.terminated = True
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, as a process manager stops it; returns the exit code."""
        self.terminate()
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"did not stop within {timeout}s of SIGTERM: {self.describe()}"
            ) from None

    def kill(self) -> None:
        """Last resort: the whole process group (gunicorn's workers too)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=10)
        try:  # orphaned workers of a killed master, if any
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass
class Launcher:
    """Starts bot processes in `workdir` and guarantees they are gone afterwards."""

    workdir: Path
    started: list[BotProcess] = field(default_factory=list)

    def env(self, emulator: SlackEmulator, database_url: str, **settings: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in PROXY_VARS and k not in SETTINGS_VARS and k != "NO_PROXY"
        }
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env["PYTHONUNBUFFERED"] = "1"
        env["SKIP_SLACK_SDK_WARNING"] = "1"
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["SLACK_BOT_TOKEN"] = BOT_TOKEN
        env["SLACK_SIGNING_SECRET"] = SECRET
        env["SLACK_API_URL"] = emulator.api_url
        env["DATABASE_URL"] = database_url
        env.update(settings)
        return env

    def start(self, *args: str, env: dict[str, str]) -> BotProcess:
        n = len(self.started)
        out_path = self.workdir / f"process-{n}.out"
        err_path = self.workdir / f"process-{n}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            popen = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *args],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, for the last-resort kill
            )
        process = BotProcess(list(args), popen, out_path, err_path, time.monotonic())
        self.started.append(process)
        return process

    def serve(self, *extra: str, env: dict[str, str]) -> BotProcess:
        port = free_port()
        process = self.start("serve", "--host", "127.0.0.1", "--port", str(port), *extra, env=env)
        process.url = f"http://127.0.0.1:{port}"
        return process

    def close(self) -> None:
        for process in self.started:
            if process.running():
                try:
                    process.stop(timeout=10)
                except AssertionError:
                    pass
            process.kill()


def stop_all(*processes: BotProcess, timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM every process at once (as `systemctl stop` would), then wait for each."""
    for process in processes:
        process.terminate()
    return [process.stop(timeout=timeout) for process in processes]


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


def make_emulator() -> SlackEmulator:
    emulator = SlackEmulator(validate_blocks=True)
    emulator.add_user(CLIENT, "carol", tz="America/New_York", tz_offset=-18000)
    emulator.add_user(FREELANCER, "fred", tz="Europe/Berlin", tz_offset=3600)
    emulator.add_channel(CHANNEL, "deals", members=[CLIENT, FREELANCER])
    return emulator


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with make_emulator() as emulator:
        yield emulator


def driver_for(emulator: SlackEmulator, process: BotProcess) -> SlackDriver:
    assert process.url is not None
    return SlackDriver(emulator, process.url, SECRET)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.sqlite3'}"


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (no schema: start-up must create it)."""
    name = f"milestone_process_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any failure means "unreachable"
        admin.dispose()
        postgres_unavailable(str(error).splitlines()[0])
    # What an operator writes; the bot picks the psycopg 3 driver itself.
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
