"""Partial release, bonus and more time to review, end to end: signed HTTP in, Web API
calls out to the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain import export
from tests.e2e.conftest import CLIENT, FREELANCER, OUTSIDER, Bot

NEW = f'new "Website redesign" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'


def contract(bot: Bot) -> dict[str, Any]:
    with bot.runtime.sessions() as session, session.begin():
        exported: dict[str, Any] = export.export_contracts(session)["contracts"][0]
        return exported


def active(bot: Bot) -> None:
    bot.say(CLIENT, NEW)
    bot.say(CLIENT, 'add "Design" 1500 2030-01-01')
    bot.say(CLIENT, 'add "Build" 2500 2030-02-01')
    bot.say(CLIENT, "start")
    bot.say(FREELANCER, "start")


def submitted(bot: Bot) -> None:
    active(bot)
    bot.say(CLIENT, "fund")
    bot.say(FREELANCER, 'submit "Designs are in Figma"')


def test_partial_release_pays_part_now_and_approval_pays_the_rest(bot: Bot) -> None:
    submitted(bot)

    reply = bot.say(CLIENT, "release 1 $500")

    assert "Released $500.00 of milestone 1" in reply and "$1,000.00 stays" in reply
    assert any("released $500.00 of milestone 1" in post for post in bot.posts())
    card = bot.card_shows("work:1:1", "$500.00 paid early")
    assert "$1,000.00 held" in card
    assert "$500.00 paid early" in bot.card_shows("contract:1", "paid early")
    refused = bot.say(FREELANCER, "release 1 100")
    assert "Only the client" in refused

    assert "$1,000.00 released" in bot.click(CLIENT, bot.card("work:1:1"), "Approve")
    releases = [e for e in contract(bot)["ledger"] if e["kind"] == "release"]
    assert [e["amount_minor"] for e in releases] == [50_000, 100_000]
    assert contract(bot)["escrow"]["balance_minor"] == 0


def test_releasing_more_than_is_held_is_refused_with_the_reason(bot: Bot) -> None:
    submitted(bot)
    assert "Only $1,500.00 is held" in bot.say(CLIENT, "release 1 2000")
    assert "Usage" in bot.say(CLIENT, "release 1")
    assert [e["kind"] for e in contract(bot)["ledger"]] == ["fund"]


def test_a_bonus_is_paid_outside_escrow_and_announced(bot: Bot) -> None:
    active(bot)

    reply = bot.say(CLIENT, 'bonus 200 "Thanks for the <quick> turnaround"')

    assert "bonus of $200.00" in reply
    announced = [post for post in bot.posts() if "bonus of $200.00" in post]
    assert announced
    card = bot.card_shows("contract:1", "Bonuses")
    assert "$200.00" in card
    exported = contract(bot)
    assert [(e["kind"], e["milestone_number"], e["amount_minor"]) for e in exported["ledger"]] == [
        ("bonus", None, 20_000)
    ]
    assert exported["escrow"]["balance_minor"] == 0
    assert exported["escrow"]["released_minor"] == 0
    assert "Only the client" in bot.say(FREELANCER, "bonus 10")
    assert "not a party" in bot.say(OUTSIDER, "bonus 10")


def test_more_time_to_review_moves_the_release_date_when_the_freelancer_gives_it(
    bot: Bot,
) -> None:
    submitted(bot)
    before = datetime.fromisoformat(contract(bot)["milestones"][0]["auto_release_at"])

    reply = bot.say(CLIENT, "extend")

    assert "Asked for 7 more days" in reply
    assert contract(bot)["milestones"][0]["auto_release_at"] == before.isoformat().replace(
        "+00:00", "Z"
    )
    card = bot.card_shows("work:1:1", "asks for 7 more days")
    assert "Give more time" in card and "Keep the date" in card
    assert any("asked for 7 more days" in post for post in bot.posts())
    assert "Only the freelancer" in bot.click(CLIENT, bot.card("work:1:1"), "Give more time")

    bot.click(FREELANCER, bot.card("work:1:1"), "Give more time")

    after = datetime.fromisoformat(contract(bot)["milestones"][0]["auto_release_at"])
    assert after - before == timedelta(days=7)
    assert "Give more time" not in bot.card_shows("work:1:1", "Automatic release")
    assert any("gave 7 more days" in post for post in bot.posts())
    again = bot.click(FREELANCER, bot.card("work:1:1"), "Approve")
    assert "Only the client" in again


def test_the_freelancer_grants_time_unasked_and_the_client_asks_twice_at_most(
    bot: Bot,
) -> None:
    submitted(bot)
    before = datetime.fromisoformat(contract(bot)["milestones"][0]["auto_release_at"])

    assert "3 more days" in bot.say(FREELANCER, "extend 3 days")
    bot.say(CLIENT, "extend 2")
    bot.click(FREELANCER, bot.card("work:1:1"), "Keep the date")
    bot.say(CLIENT, "extend 2")
    bot.click(FREELANCER, bot.card("work:1:1"), "Give more time")
    assert "the most there is" in bot.say(CLIENT, "extend")

    after = datetime.fromisoformat(contract(bot)["milestones"][0]["auto_release_at"])
    assert after - before == timedelta(days=5)
    assert "not a number of days" in bot.say(CLIENT, "extend soon")


def test_help_documents_release_bonus_and_extend(bot: Bot) -> None:
    text = bot.say(CLIENT, "help")
    for example in ("/milestone release 2 500", "/milestone bonus 200", "/milestone extend"):
        assert example in text
