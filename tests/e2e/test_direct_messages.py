"""Direct messages and the morning digest, end to end: signed HTTP in, the emulator's
DMs out (`/milestone notify channel|dm|both|digest`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.directory import SlackTimeZones
from scheduler.jobs import sweep_once
from tests.e2e.conftest import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    PROXY_VARS,
    Bot,
    blocks_text,
    running_bot,
)

NEW = f'new "Website redesign" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'
# Monday 7 December 2026, 08:00 in New York, where Carol (the client) lives.
MONDAY_EIGHT_NEW_YORK = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY_EIGHT_NEW_YORK)


@pytest.fixture
def timed_bot(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[Bot]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")
    with running_bot(f"sqlite:///{tmp_path / 'bot.sqlite3'}", clock=clock) as bot:
        yield bot


def active(bot: Bot) -> None:
    bot.say(CLIENT, NEW)
    bot.say(CLIENT, 'add "Design" 1500 2030-01-01')
    bot.say(CLIENT, 'add "Build" 2500 2030-02-01')
    bot.say(CLIENT, "start")
    bot.say(FREELANCER, "start")


def dms(bot: Bot, user: str) -> list[str]:
    bot.quiet()
    return [m.text + "\n" + blocks_text(m.blocks) for m in bot.slack.direct_messages(user)]


def sweep(bot: Bot) -> None:
    """One tick of the scheduler, as `serve` runs it every SWEEP_SECONDS."""
    runtime = bot.runtime
    sweep_once(
        runtime.sessions,
        runtime.clock,
        policy=runtime.policy,
        outbox=bot.delivery,
        time_zone_of=SlackTimeZones(bot.delivery.client),
    )
    bot.quiet()


def test_a_proposed_change_request_reaches_the_client_in_a_direct_message(bot: Bot) -> None:
    active(bot)
    [fund] = dms(bot, CLIENT)
    assert "Milestone *1 · Design*" in fund and "fund it" in fund

    bot.say(FREELANCER, 'edit 2 amount=3000 message="Scope grew"')

    [_, request] = dms(bot, CLIENT)
    assert "Change request #1" in request and f"<@{FREELANCER}>" in request
    assert f"<#{CHANNEL}>" in request and "Website redesign" in request
    [opened] = bot.slack.calls_to("conversations.open")
    assert opened.params["users"] == CLIENT
    assert dms(bot, FREELANCER) == []
    # The channel shows the request as always.
    assert "Accept" in bot.card_text("request:1")


def test_notify_channel_means_no_direct_messages(bot: Bot) -> None:
    answer = bot.say(CLIENT, "notify channel")
    assert "*channel*" in answer and "No direct messages" in answer

    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")

    assert dms(bot, CLIENT) == []
    assert bot.slack.calls_to("conversations.open") == []
    assert "You get notifications: *channel*" in bot.say(CLIENT, "notify")


def test_notify_digest_sends_one_message_at_nine_in_the_persons_time_zone(
    timed_bot: Bot, clock: Clock
) -> None:
    bot = timed_bot
    answer = bot.say(CLIENT, "notify digest")
    assert "*digest*" in answer and "09:00 on weekdays" in answer
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    assert dms(bot, CLIENT) == []  # no message for each item

    clock.now = MONDAY_EIGHT_NEW_YORK + timedelta(minutes=59)
    sweep(bot)
    assert dms(bot, CLIENT) == []

    clock.now = MONDAY_EIGHT_NEW_YORK + timedelta(hours=1)  # 09:00 in New York
    sweep(bot)
    [morning] = dms(bot, CLIENT)
    assert "Good morning" in morning and "2 things" in morning
    assert "Change request #1" in morning and "fund it" in morning

    clock.now += timedelta(minutes=30)
    sweep(bot)
    assert len(dms(bot, CLIENT)) == 1  # once a day
