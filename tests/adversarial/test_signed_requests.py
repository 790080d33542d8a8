"""Signed-request attacks, beyond tests/e2e/test_error_paths.py: a request that fails
Slack's signature check — also one whose check can't even run (a timestamp that is
not a number, a non-ASCII signature) — is answered 401 without a single database
statement and without a word to anyone its body names; a body that does not parse is
a 400, never a 5xx; and an exact replay, byte for byte, of a valid Accept click, an
`add` command or a modal submission within bolt's 5-minute window has no second
effect."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import event

from tests.adversarial.support import click, command, open_modal, settle, state, submit_view_as
from tests.e2e.conftest import CHANNEL, CLIENT, FREELANCER, SECRET, Bot

pytestmark = pytest.mark.e2e

NEW = f'new "Signed" client=<@{CLIENT}> freelancer=<@{FREELANCER}>'


@contextmanager
def statements(bot: Bot) -> Iterator[list[str]]:
    """Every SQL statement the app runs meanwhile."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(bot.runtime.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(bot.runtime.engine, "before_cursor_execute", record)


def signature(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def in_review_with_request(bot: Bot) -> None:
    command(bot, CLIENT, NEW)
    command(bot, CLIENT, 'add "One" 1000 2030-01-01')
    command(bot, CLIENT, 'add "Two" 2000 2030-02-01')
    command(bot, CLIENT, "start")
    command(bot, FREELANCER, "start")
    command(bot, CLIENT, "fund")
    command(bot, FREELANCER, "edit 1 amount=1500")


def test_unsigned_or_badly_signed_requests_get_401_and_never_reach_the_database(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    in_review_with_request(bot)
    # A genuine Accept click, captured on its way (not sent).
    sent: list[bytes] = []
    real_send = bot.driver.raw

    def capture(body: bytes, headers: Any, **kwargs: Any) -> Any:
        sent.append(body)
        raise ConnectionAbortedError("captured")

    bot.driver.raw = capture  # type: ignore[method-assign]
    try:
        with pytest.raises(ConnectionAbortedError):
            click(bot, CLIENT, "request:1", "Accept")
    finally:
        bot.driver.raw = real_send  # type: ignore[method-assign]
    accept = sent[0]
    command_body = urlencode(
        {"command": "/milestone", "text": "fund", "user_id": CLIENT, "channel_id": CHANNEL}
    ).encode()
    command_body_with_response_url = urlencode(
        {
            "command": "/milestone",
            "text": "fund",
            "user_id": CLIENT,
            "channel_id": CHANNEL,
            "response_url": bot.slack.new_response_url(channel=CHANNEL, user_id=CLIENT),
        }
    ).encode()
    now = str(int(time.time()))
    form = "application/x-www-form-urlencoded"
    attacks: list[tuple[str, bytes, dict[str, str]]] = [
        ("no signature headers", accept, {"Content-Type": form}),
        (
            "a wrong secret",
            accept,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": now,
                "X-Slack-Signature": signature(accept, now, "guessed-secret"),
            },
        ),
        (
            "the signature of another body",
            accept,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": now,
                "X-Slack-Signature": signature(command_body, now),
            },
        ),
        (
            "a body changed after signing",
            accept.replace(b"U0CLIENT", b"U0FREELA"),
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": now,
                "X-Slack-Signature": signature(accept, now),
            },
        ),
        (
            "signed six minutes ago",
            accept,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": str(int(now) - 360),
                "X-Slack-Signature": signature(accept, str(int(now) - 360)),
            },
        ),
        (
            "signed six minutes ahead",
            accept,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": str(int(now) + 360),
                "X-Slack-Signature": signature(accept, str(int(now) + 360)),
            },
        ),
        (
            "a timestamp that is not a number",
            command_body,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": "now",
                "X-Slack-Signature": signature(command_body, "now"),
            },
        ),
        (
            "a v1 signature",
            command_body,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": now,
                "X-Slack-Signature": signature(command_body, now).replace("v0=", "v1="),
            },
        ),
        (
            "a signature with non-ASCII characters",
            command_body_with_response_url,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": now,
                "X-Slack-Signature": "v0=\xff\xfe",
            },
        ),
        (
            # The body names a channel, a user and a response_url: were the request
            # answered, the bot would message them on behalf of anyone.
            "a timestamp that is not a number, naming whom to answer",
            command_body_with_response_url,
            {
                "Content-Type": form,
                "X-Slack-Request-Timestamp": "soon",
                "X-Slack-Signature": signature(command_body_with_response_url, "soon"),
            },
        ),
    ]
    malformed: list[tuple[str, bytes, str]] = [
        ("a body that is not UTF-8", b"command=%2Fmilestone&text=\xff\xfe", form),
        ("JSON that does not parse", b"{not json", "application/json"),
        ("a payload that does not parse", b"payload=%7Bnot+json", form),
    ]
    for what, body, content_type in malformed:  # unsigned, then correctly signed
        attacks.append((f"{what}, unsigned", body, {"Content-Type": content_type}))
        attacks.append(
            (
                f"{what}, signed",
                body,
                {
                    "Content-Type": content_type,
                    "X-Slack-Request-Timestamp": now,
                    "X-Slack-Signature": signature(body, now),
                },
            )
        )
    before = state(bot)
    slack_before = (len(bot.slack.calls), len(bot.slack.responses), len(bot.slack.ephemerals()))
    with statements(bot) as executed:
        for what, body, headers in attacks:
            response = bot.driver.raw(body, headers)
            expected = 400 if what.startswith(tuple(m[0] for m in malformed)) else 401
            assert response.status == expected, (what, response.status, response.text)
        bot.quiet()  # work any of them had started would run now
    assert executed == [], f"the database was touched: {executed[:3]}"
    assert state(bot) == before
    slack_after = (len(bot.slack.calls), len(bot.slack.responses), len(bot.slack.ephemerals()))
    assert slack_after == slack_before, "the bot told someone something"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # The captured click, correctly signed now, still works: the attacks changed nothing.
    assert bot.driver.send_signed(accept, form).status == 200
    bot.card_shows("request:1", "*Accepted* by")


def test_exact_replays_of_accept_add_and_a_form_have_no_second_effect(bot: Bot) -> None:
    in_review_with_request(bot)
    replays = []
    click(bot, CLIENT, "request:1", "Accept")
    replays.append(bot.driver.last_request)
    bot.card_shows("request:1", "*Accepted* by")
    bot.reply_to(bot.driver.command(CLIENT, 'add "Three" 3000 2030-03-01', channel_id=CHANNEL))
    replays.append(bot.driver.last_request)
    command(bot, FREELANCER, 'edit 2 title="Two, renamed"')
    decline = open_modal(bot, CLIENT, "request:2", "Decline")
    answer = submit_view_as(bot, CLIENT, decline, inputs={"reason": "Keep the name"})
    assert answer.body == b""
    replays.append(bot.driver.last_request)
    settle(0.3)
    before = state(bot)
    for request in replays:
        assert request is not None
        response = bot.driver.replay(request)
        assert response.status == 200 and response.body == b"", response.text
    settle(0.5)
    assert state(bot) == before
    data = before.export["contracts"][0]
    assert [r["status"] for r in data["change_requests"]] == ["accepted", "declined"]
    assert [e["amount_minor"] for e in data["ledger"]] == [100000, 50000]
    assert len(data["milestones"]) == 3
