"""`Sandbox`: the real bot and the local Slack, wired as production wires them.

The bot is the unmodified bot from `bot.app.start_bot`, served over HTTP on a
random loopback port, with its own SQLite file. The local Slack is `sandbox.emulator`:
the bot calls its Web API at `SLACK_API_URL`, and `SlackDriver` sends the bot signed
requests (with real time, so bolt's five-minute check passes) on behalf of the person
the page plays. Time moves only through `OffsetClock`, the bot's injected clock; a
ticker sweeps every couple of seconds so reminders and automatic release show quickly.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pydantic import SecretStr

from bot.app import Bot, ListenerPool, Runtime, start_bot
from bot.server import SlackFront, wsgi_app
from bot.settings import Settings
from sandbox.emulator import Response, SlackDriver, SlackEmulator
from scheduler.jobs import Scheduler

from .clock import OffsetClock
from .people import CHANNEL_ID, TEAM_ID, TEAM_NAME, person, populate
from .state import JsonDict, TypedCommand, snapshot
from .typed import escape_like_slack, split_command

log = logging.getLogger(__name__)

BOT_TOKEN = "xoxb-sandbox-not-a-real-token"
SWEEP_SECONDS = 2.0
REPLY_TIMEOUT = 15.0
TIME_STEP = timedelta(hours=1)


class UnknownPerson(LookupError):
    pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("app: " + format, *args)


class Sandbox:
    """Start with `start()` (or `with Sandbox(...) as sandbox:`); act as people with
    `command`, `click`, `submit`, `close`, `open_home`; move time with `advance`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        database: Path | None = None,
        sweep_seconds: float = SWEEP_SECONDS,
        ticker: bool = True,
        clock: OffsetClock | None = None,
    ) -> None:
        self._base_settings = settings
        self._database = database
        self._sweep_seconds = sweep_seconds
        self._ticker = ticker
        self.clock = clock or OffsetClock()
        self._secret = secrets.token_hex(16)
        self._tmpdir: str | None = None
        self._typed: list[TypedCommand] = []
        self._version = 0
        self._changes = threading.Condition()
        self._sweep_lock = threading.Lock()
        self._advance_lock = threading.Lock()
        self._stop_callbacks: list[Callable[[], None]] = []
        self._slack: SlackEmulator | None = None
        self._driver: SlackDriver | None = None
        self._bot: Bot | None = None
        self.app_url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        if self._slack is not None:
            raise RuntimeError("sandbox already started")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        slack = SlackEmulator(
            team_id=TEAM_ID,
            team_name=TEAM_NAME,
            team_domain="sandbox",
            validate_blocks=True,
            clock=self.clock.epoch,
        )
        self._slack = slack.start()
        self._stop_callbacks.append(slack.stop)
        populate(slack)
        self._stop_callbacks.append(slack.add_listener(lambda _item: self.touch()))

        bot = start_bot(
            self._settings(slack),
            bot_token=BOT_TOKEN,
            signing_secret=self._secret,
            clock=self.clock,
            scheduler=False,  # the sandbox's own ticker below, serialised with `advance`
            migrate=True,
            listener_executor=ListenerPool(16),
        )
        self._bot = bot
        # Stopping (callbacks run last-in first-out): the work started after an ack
        # finishes, then the Homes it gathered go out, while the local Slack answers.
        self._stop_callbacks.append(self._stop_bot)
        server = make_server(
            "127.0.0.1",
            0,
            wsgi_app(SlackFront(bot.app, bot.runtime.database_ok)),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-app",
            daemon=True,
        )
        thread.start()
        self._stop_callbacks.append(server.server_close)
        self._stop_callbacks.append(server.shutdown)
        self.app_url = f"http://127.0.0.1:{server.server_port}"
        self._driver = SlackDriver(slack, self.app_url, self._secret)
        if self._ticker:
            scheduler = Scheduler(
                self.sweep,
                self.sweep,
                every_seconds=self._sweep_seconds,
                jitter_seconds=0,
            ).start()
            self._stop_callbacks.append(scheduler.shutdown)

    def _stop_bot(self) -> None:
        if self._bot is not None:
            self._bot.close(timeout=10)

    def _settings(self, slack: SlackEmulator) -> Settings:
        if self._database is None:
            self._tmpdir = tempfile.mkdtemp(prefix="milestone-sandbox-")
            path = Path(self._tmpdir) / "sandbox.sqlite3"
        else:
            path = self._database.expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
        base = self._base_settings or Settings(_env_file=None)
        # Business settings (review period, reminders, working hours) come from the
        # environment; Slack and the database are the sandbox's own.
        return base.model_copy(
            update={
                "DATABASE_URL": f"sqlite:///{path.as_posix()}",
                "SLACK_API_URL": slack.api_url,
                "SLACK_BOT_TOKEN": SecretStr(BOT_TOKEN),
                "SLACK_SIGNING_SECRET": SecretStr(self._secret),
                "SLACK_APP_TOKEN": None,
                "SWEEP_SECONDS": self._sweep_seconds,
            }
        )

    def stop(self) -> None:
        """Stop the ticker, the bot and the local Slack; delete a temporary database."""
        self.touch()  # wake long polls
        while self._stop_callbacks:
            callback = self._stop_callbacks.pop()
            try:
                callback()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                log.exception("sandbox: stopping a part failed")
        self._slack = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ parts

    @property
    def slack(self) -> SlackEmulator:
        if self._slack is None:
            raise RuntimeError("sandbox not started")
        return self._slack

    @property
    def driver(self) -> SlackDriver:
        if self._driver is None:
            raise RuntimeError("sandbox not started")
        return self._driver

    @property
    def runtime(self) -> Runtime:
        return self.bot.runtime

    @property
    def bot(self) -> Bot:
        if self._bot is None:
            raise RuntimeError("sandbox not started")
        return self._bot

    # ------------------------------------------------------------------ changes

    @property
    def version(self) -> int:
        with self._changes:
            return self._version

    def touch(self) -> None:
        """Something a page may show changed: wake the long polls."""
        with self._changes:
            self._version += 1
            self._changes.notify_all()

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block until the version differs from `since` (or `timeout`); return it."""
        with self._changes:
            self._changes.wait_for(lambda: self._version != since, timeout=timeout)
            return self._version

    def state(self, user_id: str) -> JsonDict:
        self._check_person(user_id)
        version = self.version
        with self._changes:
            typed = list(self._typed)
        return snapshot(
            self.slack,
            viewer=user_id,
            typed=typed,
            now=self.clock(),
            offset=self.clock.offset,
            version=version,
        )

    # ------------------------------------------------------------------ acting as people

    def command(self, user_id: str, typed: str) -> Response:
        """`typed` is what the person wrote, e.g. `/milestone new "X" client=@carol`."""
        self._check_person(user_id)
        command, text = split_command(typed)
        slack = self.slack
        users = {u.name.lower(): uid for uid, u in slack.users.items() if not u.deleted}
        channels = {c.name.lower(): cid for cid, c in slack.channels.items() if not c.is_im}
        escaped = escape_like_slack(text, users=users, channels=channels)
        with self._changes:
            self._typed.append(TypedCommand(user_id, _ts(self.clock.epoch()), typed.strip()))
        self.touch()
        response = self.driver.command(user_id, escaped, channel_id=CHANNEL_ID, command=command)
        self.touch()
        return response

    def say(self, user_id: str, typed: str, *, timeout: float = REPLY_TIMEOUT) -> str:
        """`command`, then wait for the answer the person gets; returns its text."""
        response = self.command(user_id, typed)
        if response.status != 200:
            raise RuntimeError(f"{typed!r} got HTTP {response.status}: {response.text}")
        url = response.response_url
        post = self.slack.wait_for(
            lambda: [r for r in self.slack.responses if r.url == url],
            timeout=timeout,
            message=f"the answer to {typed!r}",
        )[-1]
        return str(post.body.get("text", ""))

    def click(
        self,
        user_id: str,
        *,
        action_id: str,
        message_ts: str | None = None,
        view_id: str | None = None,
        block_id: str | None = None,
        value: Any = None,
        values: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Response:
        """A click on a message / ephemeral (`message_ts`) or a modal / Home (`view_id`)."""
        self._check_person(user_id)
        if view_id is not None:
            self._check_view(user_id, view_id)
            response = self.driver.click_in_view(
                user_id, view_id, action_id, value=value, block_id=block_id, values=values
            )
        elif message_ts is not None:
            response = self.driver.click(
                user_id,
                channel_id=CHANNEL_ID,
                message_ts=message_ts,
                action_id=action_id,
                value=value,
                block_id=block_id,
            )
        else:
            raise LookupError("a click needs the message's ts or the view's id")
        self.touch()
        return response

    def submit(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, Any]]
    ) -> JsonDict:
        """Press the modal's submit button with what the person typed."""
        self._check_person(user_id)
        self._check_view(user_id, view_id)
        response = self.driver.submit_view(user_id, view_id, values=values)
        self.touch()
        return {
            "status": response.status,
            "closed": not self.slack.is_view_open(view_id),
            "errors": self.slack.view_errors(view_id),
        }

    def close(self, user_id: str, view_id: str) -> None:
        """Press the modal's Cancel / close button."""
        self._check_person(user_id)
        self._check_view(user_id, view_id)
        self.driver.close_view(user_id, view_id)
        self.touch()

    def open_home(self, user_id: str) -> Response:
        """The person opened the bot's Home tab (`app_home_opened`)."""
        self._check_person(user_id)
        response = self.driver.app_home_opened(user_id)
        self.touch()
        return response

    # ------------------------------------------------------------------ time

    def advance(self, delta: timedelta) -> datetime:
        """Move sandbox time forward, sweeping as it passes; returns the new now.

        Time moves in steps of `TIME_STEP` with a sweep after each, as if the ticker had
        run all along: a reminder held for the recipient's working hours goes out when
        those hours come (one jump of whole days from a night would land in the night
        again), and an automatic release happens at its deadline, not at the jump's end.
        """
        with self._advance_lock:
            remaining = delta
            while remaining > timedelta(0):
                step = min(TIME_STEP, remaining)
                self.clock.advance(step)
                remaining -= step
                self.sweep()
        self.touch()
        return self.clock()

    def sweep(self) -> None:
        """One tick of the scheduler, as `serve` runs it (serialised in this process)."""
        if self._bot is None:
            return
        with self._sweep_lock:
            self._bot.sweep()

    def settle(self, *, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until the bot has made no Slack call for `quiet` seconds."""
        slack = self.slack
        deadline = time.monotonic() + timeout
        seen = (len(slack.calls), len(slack.responses))
        calm_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            current = (len(slack.calls), len(slack.responses))
            if current != seen:
                seen, calm_since = current, time.monotonic()
            elif time.monotonic() - calm_since >= quiet:
                return
        raise TimeoutError(f"the bot kept calling Slack for {timeout:.0f} s")

    # ------------------------------------------------------------------ checks

    def _check_person(self, user_id: str) -> None:
        if person(user_id) is None:
            raise UnknownPerson(f"no one with id {user_id!r} in the sandbox")

    def _check_view(self, user_id: str, view_id: str) -> None:
        owner = self.slack.view_owner(view_id)
        if owner != user_id:
            raise LookupError(f"view {view_id} is not {user_id}'s")


def _ts(epoch: float) -> str:
    micros = int(epoch * 1_000_000)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
