"""The real bolt app over HTTP, signed requests in, Web API calls out to the emulator."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from sqlalchemy import select

from bot.app import Bot as AppBot
from bot.app import ListenerPool, Runtime, start_bot
from bot.delivery import Delivery
from bot.server import SlackFront, wsgi_app
from bot.settings import Settings
from domain.model import MessageRef
from domain.policy import Clock, system_clock
from sandbox.emulator import Response, SlackDriver, SlackEmulator, StoredMessage

SECRET = "e2e-signing-secret"
TEAM = "T0001"
OTHER_TEAM = "T0OTHER"
CHANNEL = "C0DEALS"
CLIENT = "U0CLIENT"
FREELANCER = "U0FREELA"
MANAGER = "U0MANAGE"
MEMBER = "U0MEMBER"
OUTSIDER = "U0OUTSID"
PARTNER = "W0PARTNR"  # a user from another workspace in a Slack Connect channel
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass
class Bot:
    """One running bot, its Slack, and helpers that act as people would."""

    slack: SlackEmulator
    driver: SlackDriver
    runtime: Runtime
    delivery: Delivery
    url: str
    listeners: ListenerPool
    # Web API errors a test provokes on purpose; any other failed call fails the test.
    expected_errors: set[str] = field(default_factory=set)
    started: AppBot | None = None  # the process's bot: its payments sender, its sweep

    def open_home(self, user: str) -> dict[str, Any]:
        """`user` opens the App Home tab: the view published for that, not one an earlier
        change had published (those are settled first)."""
        self.quiet()
        before = len(self.slack.calls_to("views.publish"))
        self.driver.app_home_opened(user)
        self.slack.wait_for(
            lambda: [
                c
                for c in self.slack.calls_to("views.publish")[before:]
                if c.params.get("user_id") == user
            ],
            message=f"no Home published for {user}",
        )
        home = self.slack.home_view(user)
        assert home is not None
        return home

    def quiet(self, timeout: float = 10.0) -> None:
        """Wait until the work after every ack so far is done and the App Homes it
        gathered are published: nothing the bot does afterwards stems from before."""
        assert self.listeners.wait_idle(timeout), f"listener work still running after {timeout} s"
        self.delivery.flush()

    def say(self, user: str, text: str, *, channel: str = CHANNEL) -> str:
        """Type `/milestone <text>` and return the ephemeral answer's text."""
        response = self.driver.command(user, text, channel_id=channel, show_reply=False)
        assert response.status == 200, response.text
        return self.reply_to(response)

    def reply_to(self, response: Response, *, timeout: float = 10.0) -> str:
        """The answer the person got; by then the cards and announcements the request
        caused have been delivered too (the answer is sent first of all)."""
        url = response.response_url
        post = self.slack.wait_for(
            lambda: [r for r in self.slack.responses if r.url == url],
            timeout=timeout,
            message=f"no reply on {url}",
        )[-1]
        self.listeners.wait_idle(timeout)
        return _text_of(post.body)

    def click(self, user: str, message: StoredMessage, label: str) -> str:
        """Click a button on a card and return what the clicker sees as its outcome: the
        card itself, updated in place, or the one answer only they see where the card
        can't show it (a refusal, a repeat)."""
        response = self.press(user, message, label)
        self.quiet()
        answers = [r for r in self.slack.responses if r.url == response.response_url]
        if answers:
            return _text_of(answers[-1].body)
        card = self.slack.message(message.channel, message.ts)
        assert card is not None, "the card the person clicked is gone"
        return blocks_text(card.blocks)

    def answers_to(self, response: Response) -> list[str]:
        """Every answer sent on the request's response_url (after the work is done)."""
        self.quiet()
        return [_text_of(r.body) for r in self.slack.responses if r.url == response.response_url]

    def press(self, user: str, message: StoredMessage, label: str) -> Response:
        """Click a button without waiting for an answer (one that opens a modal)."""
        response = self.driver.click_button(user, message.channel, message.ts, label)
        assert response.status == 200, response.text
        return response

    def card(self, subject: str) -> StoredMessage:
        """The message a card lives in, e.g. `contract:1`, `request:3`, `work:2:1`."""
        with self.runtime.sessions() as session:
            ref = session.scalar(select(MessageRef).where(MessageRef.subject == subject))
        assert ref is not None and ref.ts, f"no card {subject}"
        message = self.slack.message(ref.channel_id, ref.ts)
        assert message is not None
        return message

    def card_text(self, subject: str) -> str:
        return blocks_text(self.card(subject).blocks)

    def card_shows(self, subject: str, text: str, *, timeout: float = 5.0) -> str:
        """Wait until the card contains `text` (work after an ack is asynchronous)."""

        def shown() -> str | None:
            current = self.card_text(subject)
            return current if text in current else None

        try:
            return self.slack.wait_for(
                shown, timeout=timeout, message=f"{subject} never showed {text!r}"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; it shows: {self.card_text(subject)!r}") from None

    def ephemeral_to(self, user: str, text: str, *, timeout: float = 5.0) -> str:
        """Wait for an ephemeral message (chat.postEphemeral) to `user` containing `text`."""
        found = self.slack.wait_for(
            lambda: [
                e
                for e in self.slack.ephemerals(user=user)
                if text in _text_of({"text": e.text, "blocks": e.blocks})
            ],
            timeout=timeout,
            message=f"no ephemeral to {user} with {text!r}",
        )
        return found[-1].text

    def posts(self, channel: str = CHANNEL) -> list[str]:
        return [m.text for m in self.slack.messages(channel)]


def _text_of(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("text", "")) + "\n" + blocks_text(body.get("blocks") or [])
    return str(body)


def blocks_text(blocks: Any) -> str:
    """Every text in a block tree, newline-joined (what a person would read)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)


def serve_wsgi(application: Any) -> tuple[str, WSGIServer]:
    server = make_server(
        "127.0.0.1", 0, application, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return f"http://127.0.0.1:{server.server_port}", server


@pytest.fixture
def bot(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")
    with running_bot(f"sqlite:///{tmp_path / 'bot.sqlite3'}") as bot:
        yield bot


@contextmanager
def running_bot(
    database_url: str, *, clock: Clock = system_clock, **settings_given: Any
) -> Iterator[Bot]:
    """The app on `database_url`, served over HTTP, with its Slack; stopped afterwards.
    `clock`: the bot's time (its requests are still signed with the real time);
    `settings_given`: more settings (e.g. `PAYMENTS="stripe"` and Stripe's)."""
    with SlackEmulator(validate_blocks=True) as slack:
        for user, name, team, tz, offset in [
            (CLIENT, "carol", TEAM, "America/New_York", -18000),
            (FREELANCER, "fred", TEAM, "Europe/Berlin", 3600),
            (MANAGER, "maya", TEAM, "Asia/Kolkata", 19800),
            (MEMBER, "milo", TEAM, "Europe/London", 0),
            (OUTSIDER, "olga", TEAM, "Europe/Paris", 3600),
            (PARTNER, "pat", OTHER_TEAM, "Australia/Sydney", 39600),
        ]:
            slack.add_user(user, name, team_id=team, tz=tz, tz_offset=offset)
        slack.add_channel(
            CHANNEL, "deals", members=[CLIENT, FREELANCER, MANAGER, MEMBER, OUTSIDER, PARTNER]
        )
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            DATABASE_URL=database_url,
            SLACK_API_URL=slack.api_url,
            **settings_given,
        )
        listeners = ListenerPool(16)
        started = start_bot(
            settings,
            bot_token="xoxb-e2e",
            signing_secret=SECRET,
            clock=clock,
            scheduler=False,
            migrate=True,
            listener_executor=listeners,
        )
        runtime, delivery = started.runtime, started.delivery
        url, server = serve_wsgi(
            wsgi_app(SlackFront(started.app, runtime.database_ok, started.payments_front))
        )
        driver = SlackDriver(slack, url, SECRET)
        bot = Bot(slack, driver, runtime, delivery, url, listeners, started=started)
        try:
            yield bot
            listeners.wait_idle(30)
            delivery.close()  # the Homes still gathering, while Slack still answers
            failed = [
                (c.method, c.error)
                for c in slack.calls
                if not c.ok and (c.error or "") not in bot.expected_errors
            ]
            # Every payload the bot sent passed the emulator's Block Kit validation
            # (slack_sdk.models plus the 50-blocks-per-message / 100-per-view limits).
            assert not failed, f"Slack refused calls: {failed}"
        finally:
            server.shutdown()
            server.server_close()
            started.close(timeout=30)  # work after the acks finishes before Slack goes
