"""Forgiving input, end to end: due dates and amounts typed in the person's own habits
(their Slack time zone and locale, from users.info), refusals that say what was
understood with an example from today, and "did you mean" for a mistyped command."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from domain import export
from domain.when import spell, today_in
from tests.e2e.conftest import CLIENT, FREELANCER, TEAM, Bot

NEW = f'new "Website redesign" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'
EAST, WEST = "Pacific/Kiritimati", "Pacific/Pago_Pago"  # UTC+14 and UTC-11: never one day
ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def milestones(bot: Bot) -> list[dict]:
    with bot.runtime.sessions() as session, session.begin():
        return export.export_contracts(session)["contracts"][0]["milestones"]


def person(bot: Bot, user: str, name: str, *, tz: str, locale: str = "en-US") -> None:
    bot.slack.add_user(user, name, team_id=TEAM, tz=tz, locale=locale)


def days(tz: str, shift: Callable[[date], date]) -> set[date]:
    """What `shift` of the person's today is, read just now (either side of a midnight)."""
    return {shift(today_in(datetime.now(UTC), tz))}


def next_friday(today: date) -> date:
    return today + timedelta(days=(4 - today.weekday()) % 7 or 7)


def test_a_date_in_words_is_the_persons_day_and_the_channel_shows_that_day(bot: Bot) -> None:
    person(bot, CLIENT, "carol", tz=EAST)
    person(bot, FREELANCER, "fred", tz=WEST)
    bot.say(CLIENT, NEW)
    before = days(EAST, next_friday) | days(WEST, lambda d: d + timedelta(days=1))

    design_reply = bot.say(CLIENT, 'add "Design" 1500 next friday "Wireframes"')
    bot.say(FREELANCER, 'add "Build" 2500 tomorrow')

    expected = days(EAST, next_friday) | days(WEST, lambda d: d + timedelta(days=1)) | before
    design, build = milestones(bot)
    assert (design["title"], design["description"]) == ("Design", "Wireframes")
    assert date.fromisoformat(design["due_date"]).weekday() == 4
    assert {date.fromisoformat(design["due_date"]), date.fromisoformat(build["due_date"])} <= (
        expected
    )
    east_tomorrow = today_in(datetime.now(UTC), EAST) + timedelta(days=1)
    assert date.fromisoformat(build["due_date"]) < east_tomorrow  # fred's, not carol's
    # the person's own answer echoes the day it understood
    assert f"added: $1,500.00, due {spell(date.fromisoformat(design['due_date']))}" in design_reply
    announced = "\n".join(bot.posts())
    for milestone in (design, build):
        assert f"due {spell(date.fromisoformat(milestone['due_date']))}" in announced


def test_a_date_of_several_words_works_quoted_unquoted_and_after_due(bot: Bot) -> None:
    bot.say(CLIENT, NEW)
    bot.say(CLIENT, 'add "Design" 1500 "in 2 weeks" "Wireframes"')
    first = date.fromisoformat(milestones(bot)[0]["due_date"])

    bot.say(CLIENT, "edit 1 due=in 3 weeks")
    assert date.fromisoformat(milestones(bot)[0]["due_date"]) == first + timedelta(days=7)
    bot.say(CLIENT, 'edit 1 due="next friday" message="Sooner"')
    assert date.fromisoformat(milestones(bot)[0]["due_date"]).weekday() == 4
    bot.say(CLIENT, "edit 1 due=15 Jan 2030")
    assert milestones(bot)[0]["due_date"] == "2030-01-15"

    reply = bot.say(CLIENT, "edit 1 due=next friday Home page")
    assert 'I can\'t read "next friday Home page" as a date' in reply
    assert 'use quotes: `/milestone edit 2 due="next friday" message="..."`' in reply
    assert milestones(bot)[0]["due_date"] == "2030-01-15"


def test_amounts_are_read_in_the_persons_locale(bot: Bot) -> None:
    person(bot, CLIENT, "carol", tz="Europe/Berlin", locale="de-DE")
    bot.say(CLIENT, NEW + " currency=EUR")

    bot.say(CLIENT, 'add "Design" €1.500 2030-01-01')
    assert milestones(bot)[0]["amount_minor"] == 150_000
    bot.say(CLIENT, "edit 1 amount=1.500,50")
    assert milestones(bot)[0]["amount_minor"] == 150_050
    bot.say(FREELANCER, 'edit 1 amount="1,600.00 EUR"')  # fred writes numbers en-US style
    assert milestones(bot)[0]["amount_minor"] == 160_000
    announced = "\n".join(bot.posts())
    assert "€1,500.00" in announced and "€1,600.00" in announced


def test_an_amount_that_reads_two_ways_is_asked_about_not_guessed(bot: Bot) -> None:
    bot.say(CLIENT, NEW)

    reply = bot.say(CLIENT, 'add "Design" 1.500 2030-01-01')

    assert 'I can\'t tell what "1.500" means: $1,500.00' in reply
    assert 'Type "1500" for $1,500.00, or "1.50" for $1.50.' in reply
    assert milestones_or_none(bot) == []
    bot.say(CLIENT, 'add "Design" 1500 2030-01-01')
    assert milestones(bot)[0]["amount_minor"] == 150_000


def milestones_or_none(bot: Bot) -> list[dict]:
    with bot.runtime.sessions() as session, session.begin():
        contracts = export.export_contracts(session)["contracts"]
    return contracts[0]["milestones"] if contracts else []


def test_a_refused_date_says_what_was_understood_with_an_example_from_today(bot: Bot) -> None:
    bot.say(CLIENT, NEW)
    today = datetime.now(UTC).date()
    numeric = f"1/2/{today.year + 1}"  # en-US: 2 January, always ahead
    replies = {
        typed: bot.say(CLIENT, f'add "Design" 1500 {typed}')
        for typed in ("3pm", "5", "yesterday", "next week", "soon", numeric)
    }

    assert "a due date is a whole day" in replies["3pm"]
    assert "which month?" in replies["5"]
    assert "in the past" in replies["yesterday"] and "where you are" in replies["yesterday"]
    assert "is a week, not a day" in replies["next week"]
    assert "YYYY-MM-DD" in replies["soon"]
    assert "added" in replies[numeric]
    for typed, reply in replies.items():
        if typed == numeric:
            continue
        shown = [date.fromisoformat(found) for found in ISO.findall(reply)]
        assert shown and all(day >= today - timedelta(days=1) for day in shown), reply
    assert [m["due_date"] for m in milestones_or_none(bot)] == [f"{today.year + 1}-01-02"]


def test_a_mistyped_command_gets_the_exact_text_to_type_again(bot: Bot) -> None:
    bot.say(CLIENT, NEW)

    reply = bot.say(CLIENT, "staus")
    assert "Did you mean `/milestone status`?" in reply
    retyped = re.search(
        r"Did you mean `/milestone ([^`]*)`", bot.say(CLIENT, 'ad "X" 100 tomorrow')
    )
    assert retyped is not None and retyped[1] == 'add "X" 100 tomorrow'
    bot.say(CLIENT, retyped[1])
    assert [m["title"] for m in milestones(bot)] == ["X"]


def test_help_shows_example_dates_from_today(bot: Bot) -> None:
    reply = bot.say(CLIENT, "help")
    shown = [date.fromisoformat(found) for found in ISO.findall(reply)]
    assert shown and all(day > datetime.now(UTC).date() for day in shown)
    assert "next friday" in reply and "1.500,50" in reply


def test_the_persons_profile_is_asked_for_only_when_needed_and_once(bot: Bot) -> None:
    bot.say(CLIENT, NEW)

    def lookups() -> list[dict]:
        return [
            c.params
            for c in bot.slack.calls_to("users.info")
            if c.params.get("include_locale") and c.params.get("user") == CLIENT
        ]

    bot.say(CLIENT, 'add "One" 1500 2030-01-01')
    bot.say(CLIENT, "edit 1 amount=1600")
    assert lookups() == []
    bot.say(CLIENT, 'add "Two" 1,500 tomorrow')
    bot.say(CLIENT, "edit 2 due=next friday")
    assert len(lookups()) == 1
