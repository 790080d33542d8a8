"""Forms read amounts as the commands do, end to end: in the person's Slack locale (one
profile lookup per person, cached per app and shared by commands and forms), a number
that reads two ways refused next to its input with nothing saved, and a due date the
domain refuses shown with an example from today."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from domain import export
from tests.e2e.conftest import CHANNEL, CLIENT, FREELANCER, TEAM, Bot

NEW = f'new "Website redesign" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'


def milestones(bot: Bot) -> list[dict[str, Any]]:
    with bot.runtime.sessions() as session, session.begin():
        found: list[dict[str, Any]] = export.export_contracts(session)["contracts"][0]["milestones"]
        return found


def german_client(bot: Bot) -> None:
    """carol writes numbers the de-DE way; her contract is in euros."""
    bot.slack.add_user(CLIENT, "carol", team_id=TEAM, tz="Europe/Berlin", locale="de-DE")
    bot.say(CLIENT, NEW + " currency=EUR")


def open_form(bot: Bot, user: str, text: str) -> dict[str, Any]:
    """Type `/milestone <text>` (one that opens a form) and return the form."""
    before = len(bot.slack.open_views(user))
    response = bot.driver.command(user, text, channel_id=CHANNEL)
    assert response.status == 200, response.text
    views = bot.slack.wait_for(lambda: bot.slack.open_views(user)[before:])
    return views[-1]


def profile_lookups(bot: Bot, user: str) -> int:
    return len(
        [
            c
            for c in bot.slack.calls_to("users.info")
            if c.params.get("include_locale") and c.params.get("user") == user
        ]
    )


def test_an_amount_in_the_add_form_is_read_in_the_persons_locale(bot: Bot) -> None:
    german_client(bot)
    assert open_form(bot, CLIENT, "add")["callback_id"] == "add_milestone"

    result = bot.driver.submit_view(
        CLIENT, inputs={"title": "Design", "amount": "1.500,00", "due_date": "2030-05-01"}
    )

    assert result.status == 200 and result.body == b""  # the form closes
    bot.ephemeral_to(CLIENT, "Milestone 1")
    [design] = milestones(bot)
    assert (design["title"], design["amount_minor"]) == ("Design", 150_000)
    assert "€1,500.00" in "\n".join(bot.posts())


def test_an_amount_that_reads_two_ways_in_the_edit_form_is_refused_at_it(bot: Bot) -> None:
    german_client(bot)
    bot.say(CLIENT, 'add "Design" 2000 2030-01-01')
    assert open_form(bot, CLIENT, "edit 1")["callback_id"] == "edit_milestone"

    # For de-DE "1,500" is one and a half (a comma decimal) or fifteen hundred (read the
    # English way): asked about, never saved as either.
    result = bot.driver.submit_view(CLIENT, inputs={"amount": "1,500", "title": "Design v2"})

    body = result.json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == ["amount"]
    assert 'I can\'t tell what "1,500" means' in body["errors"]["amount"]
    assert bot.slack.open_views(CLIENT), "the form stays open"
    [design] = milestones(bot)
    assert (design["title"], design["amount_minor"]) == ("Design", 200_000)

    result = bot.driver.submit_view(CLIENT, inputs={"amount": "1.500,50", "title": "Design v2"})
    assert result.status == 200 and result.body == b""
    bot.ephemeral_to(CLIENT, "Design v2")
    [design] = milestones(bot)
    assert (design["title"], design["amount_minor"]) == ("Design v2", 150_050)


def test_amounts_in_the_propose_form_are_read_in_the_persons_locale(bot: Bot) -> None:
    german_client(bot)
    bot.say(CLIENT, 'add "Design" 2000 2030-01-01')
    bot.say(CLIENT, 'add "Build" 3000 2030-02-01')
    assert open_form(bot, CLIENT, "edit")["callback_id"] == "propose_changes"

    refused = bot.driver.submit_view(CLIENT, inputs={"m2_amount": "3,500"})
    body = refused.json()
    assert body["response_action"] == "errors" and list(body["errors"]) == ["m2_amount"]
    assert [m["amount_minor"] for m in milestones(bot)] == [200_000, 300_000]

    result = bot.driver.submit_view(
        CLIENT,
        inputs={
            "m2_amount": "3.500,25",
            "m1_amount": "2.000,00",  # the same amount, written her way: no change
            "new_title": "Launch",
            "new_amount": "1.000",
            "new_due_date": "2030-03-01",
        },
    )

    assert result.status == 200 and result.body == b""
    bot.quiet()
    assert [(m["title"], m["amount_minor"]) for m in milestones(bot)] == [
        ("Design", 200_000),
        ("Build", 350_025),
        ("Launch", 100_000),
    ]


def test_the_persons_profile_is_asked_for_once_across_a_command_and_a_form(bot: Bot) -> None:
    german_client(bot)

    bot.say(CLIENT, 'add "Design" 1.500,00 2030-01-01')
    assert profile_lookups(bot, CLIENT) == 1
    open_form(bot, CLIENT, "add")
    bot.driver.submit_view(
        CLIENT, inputs={"title": "Build", "amount": "2.500,00", "due_date": "2030-02-01"}
    )
    open_form(bot, CLIENT, "add")
    bot.driver.submit_view(
        CLIENT, inputs={"title": "Launch", "amount": "3000", "due_date": "2030-03-01"}
    )

    bot.quiet()
    assert [m["amount_minor"] for m in milestones(bot)] == [150_000, 250_000, 300_000]
    assert profile_lookups(bot, CLIENT) == 1


def test_a_past_day_picked_in_a_form_is_refused_with_an_example_from_today(bot: Bot) -> None:
    german_client(bot)
    open_form(bot, CLIENT, "add")

    result = bot.driver.submit_view(
        CLIENT, inputs={"title": "Design", "amount": "1500", "due_date": "2020-01-01"}
    )

    body = result.json()
    assert body["response_action"] == "errors" and list(body["errors"]) == ["due_date"]
    error = body["errors"]["due_date"]
    assert "2020-01-01 is in the past" in error
    example = date.fromisoformat(error.rsplit("such as ", 1)[1].rstrip("."))
    assert example > datetime.now(UTC).date()
    assert milestones(bot) == []
