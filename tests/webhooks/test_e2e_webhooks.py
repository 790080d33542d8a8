"""The real app over signed HTTP with the Slack emulator, and a webhook receiver: a
receiver that hangs never delays what people see in Slack, and what a click does is
delivered to the receiver, signed."""

from __future__ import annotations

import time

import pytest

from domain import webhooks
from tests.e2e.conftest import CLIENT, FREELANCER, Bot, bot  # noqa: F401 - the fixture
from tests.webhooks.receiver import SECRET, receiving

pytestmark = pytest.mark.e2e

NEW = f'new "Website redesign" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'


def add_endpoint(bot: Bot, url: str) -> None:  # noqa: F811
    with bot.runtime.sessions() as session:
        webhooks.add_endpoint(session, url=url, secret=SECRET, now=bot.runtime.clock())


def test_a_hanging_receiver_does_not_delay_a_click_s_card(bot: Bot) -> None:  # noqa: F811
    with receiving() as receiver:
        receiver.hang = 30.0  # far longer than the sender waits (5 s)
        add_endpoint(bot, receiver.url)
        bot.say(CLIENT, NEW)
        bot.say(CLIENT, 'add "Design" 1500 2030-01-01')
        bot.say(CLIENT, "start")
        bot.say(FREELANCER, "start")
        receiver.wait_for(lambda: receiver.in_flight, timeout=5)  # the sender is stuck

        before = bot.card_text("contract:1")
        started = time.monotonic()
        bot.click(CLIENT, bot.card("contract:1"), "Fund")  # returns once Slack has it all
        took = time.monotonic() - started

        assert bot.card_text("contract:1") != before, "the card was not updated"
        assert receiver.in_flight >= 1, "the receiver should still be holding a request"
        assert took < 2.0, f"the click took {took:.2f} s behind a hanging receiver"


def test_a_click_is_delivered_to_the_receiver_signed(bot: Bot) -> None:  # noqa: F811
    with receiving() as receiver:
        add_endpoint(bot, receiver.url)
        bot.say(CLIENT, NEW)

        [body] = receiver.wait_for(lambda: receiver.accepted, timeout=5)

    assert all(r.verified for r in receiver.requests)
    assert body["type"] == "contract.created" and body["contract_id"] == 1
    assert body["data"]["actor_id"] == CLIENT and body["data"]["title"] == "Website redesign"
