"""Due dates as people type them (domain.when): what is read, what is refused, and that
every refusal says what was understood with an example computed from today."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.when import example_due, latest_due, read_due, spell, today_in

SUNDAY = date(2026, 12, 6)
FIXED_EXAMPLES = re.compile(r"2026-03-31|2026-03-01|2026-04-15")


def refusal(text: str, *, today: date = SUNDAY, locale: str | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        read_due(text, today=today, locale=locale)
    assert caught.value.field == "due_date"
    return caught.value.message


# --- read -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2027-01-15", date(2027, 1, 15)),
        ("2027/01/15", date(2027, 1, 15)),
        ("Dec 15", date(2026, 12, 15)),
        ("dec 15", date(2026, 12, 15)),
        ("15 Dec", date(2026, 12, 15)),
        ("15 Dec 2026", date(2026, 12, 15)),
        ("December 15, 2026", date(2026, 12, 15)),
        ("Jan 5", date(2027, 1, 5)),  # the next 5 January
        ("next friday", date(2026, 12, 11)),
        ("friday", date(2026, 12, 11)),
        ("Fri", date(2026, 12, 11)),
        ("in 2 weeks", date(2026, 12, 20)),
        ("in a fortnight", date(2026, 12, 20)),
        ("in 10 days", date(2026, 12, 16)),
        ("in 3 months", date(2027, 3, 6)),
        ("tomorrow", date(2026, 12, 7)),
        ("today", SUNDAY),
        ("  next   friday ", date(2026, 12, 11)),
    ],
)
def test_dates_in_every_accepted_form_are_read_from_the_persons_today(
    typed: str, expected: date
) -> None:
    assert read_due(typed, today=SUNDAY) == expected


def test_a_month_and_day_that_is_today_means_today_not_next_year() -> None:
    assert read_due("Dec 6", today=SUNDAY) == SUNDAY
    assert read_due("6 December", today=SUNDAY) == SUNDAY


def test_a_span_of_a_year_is_a_year_not_today() -> None:
    assert read_due("in 1 year", today=SUNDAY) == date(2027, 12, 6)
    assert read_due("in 365 days", today=SUNDAY) == date(2027, 12, 6)


def test_tomorrow_depends_on_the_persons_time_zone() -> None:
    now = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)  # already Monday in Berlin
    berlin = today_in(now, "Europe/Berlin")
    new_york = today_in(now, "America/New_York")
    assert (berlin, new_york) == (date(2026, 12, 7), date(2026, 12, 6))
    assert read_due("tomorrow", today=berlin) == date(2026, 12, 8)
    assert read_due("tomorrow", today=new_york) == date(2026, 12, 7)


def test_an_unknown_or_missing_time_zone_is_utc() -> None:
    now = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    assert today_in(now, None) == today_in(now, "Not/AZone") == date(2026, 12, 6)
    assert today_in(datetime(2026, 12, 6, 23, 30), "Asia/Tokyo") == date(2026, 12, 7)


@pytest.mark.parametrize(
    ("typed", "locale", "expected"),
    [
        ("1/2/2027", "en-US", date(2027, 1, 2)),  # month first
        ("1/2/2027", "de-DE", date(2027, 2, 1)),  # day first
        ("1.2.2027", "de-DE", date(2027, 2, 1)),
        ("1/2/2027", "en-GB", date(2027, 2, 1)),
        ("12/15", "en-US", date(2026, 12, 15)),
        ("15.12.", "de-DE", date(2026, 12, 15)),
        ("15/12/2026", "en-US", date(2026, 12, 15)),  # only one reading is a day
        ("12/15/2026", "de-DE", date(2026, 12, 15)),
        ("7/7/2027", None, date(2027, 7, 7)),  # both readings are the same day
    ],
)
def test_numeric_day_and_month_follow_the_persons_locale(
    typed: str, locale: str | None, expected: date
) -> None:
    assert read_due(typed, today=SUNDAY, locale=locale) == expected


@pytest.mark.parametrize("locale", [None, "ja-JP", "xx-YY"])
def test_numeric_day_and_month_neither_locale_nor_calendar_settles_are_asked_about(
    locale: str | None,
) -> None:
    message = refusal("1/2/2027", locale=locale)
    assert "1 February 2027 (day first) or 2 January 2027 (month first)" in message
    assert "Type 2027-02-01 for 1 February 2027, or 2027-01-02 for 2 January 2027." in message


def test_a_numeric_reading_that_could_not_be_due_does_not_count() -> None:
    # 6 December is today; 12 June has passed: only one reading could be due.
    assert read_due("6/12/2026", today=SUNDAY) == SUNDAY
    assert "in the past" in refusal("1/2/2026")  # both readings have passed


def test_words_in_the_persons_own_language_are_read_too() -> None:
    assert read_due("morgen", today=SUNDAY, locale="de-DE") == date(2026, 12, 7)
    assert read_due("in 2 Wochen", today=SUNDAY, locale="de-DE") == date(2026, 12, 20)
    assert read_due("15 décembre", today=SUNDAY, locale="fr-FR") == date(2026, 12, 15)
    with pytest.raises(InvalidInput):
        read_due("morgen", today=SUNDAY, locale="en-US")  # English only for en-US


# --- refused ----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["5", "15", "15th", "the 15th", "on the 15th", "15."])
def test_a_lone_number_is_refused_asking_for_the_month(typed: str) -> None:
    message = refusal(typed)
    assert "alone is not a date: which month?" in message


def test_a_lone_day_number_gets_its_next_occurrence_as_the_example() -> None:
    assert 'such as "Dec 15" or 2026-12-15' in refusal("15")
    assert 'such as "Jan 5" or 2027-01-05' in refusal("5")  # 5 December has passed


@pytest.mark.parametrize("typed", ["2027", "20270115", "1500"])
def test_a_long_number_is_refused(typed: str) -> None:
    assert "alone is not a date" in refusal(typed)


@pytest.mark.parametrize(
    ("typed", "understood"),
    [
        ("3pm", "Sun 6 Dec 2026 at 15:00"),
        ("noon", "Sun 6 Dec 2026 at 12:00"),
        ("tomorrow 3pm", "Mon 7 Dec 2026 at 15:00"),
        ("2027-01-15 10:00", "Fri 15 Jan 2027 at 10:00"),
        ("tomorrow morning", "Mon 7 Dec 2026"),
    ],
)
def test_a_time_of_day_is_refused_saying_what_was_understood(typed: str, understood: str) -> None:
    message = refusal(typed)
    assert "a due date is a whole day" in message
    assert understood in message


@pytest.mark.parametrize(
    ("typed", "understood"),
    [
        ("next week", "a week, not a day (I read it as the week of Sun 13 Dec 2026)"),
        ("next month", "a month, not a day (I read it as January 2027)"),
        ("December", "a month, not a day (I read it as December 2027)"),
        ("next year", "a year, not a day (I read it as 2027)"),
        ("Dec 32", "a month, not a day (I read it as December 2032)"),
    ],
)
def test_a_week_month_or_year_without_a_day_is_refused(typed: str, understood: str) -> None:
    message = refusal(typed)
    assert understood in message
    assert '"next friday"' in message and "2026-12-20" in message


@pytest.mark.parametrize(
    ("typed", "understood"),
    [
        ("yesterday", "Sat 5 Dec 2026"),
        ("last friday", "Fri 4 Dec 2026"),
        ("2 weeks ago", "Sun 22 Nov 2026"),
        ("2020-01-01", "Wed 1 Jan 2020"),
        ("15 Nov 2026", "Sun 15 Nov 2026"),
    ],
)
def test_a_day_in_the_past_is_refused_with_the_day_understood(typed: str, understood: str) -> None:
    message = refusal(typed)
    assert f'I read "{typed}" as {understood}, which is in the past' in message
    assert "today is Sun 6 Dec 2026 where you are" in message
    assert "such as 2026-12-20" in message


def test_the_past_is_the_persons_past() -> None:
    # 6 December is still today in New York while it is 7 December in UTC.
    assert read_due("2026-12-06", today=date(2026, 12, 6)) == date(2026, 12, 6)
    assert "in the past" in refusal("2026-12-06", today=date(2026, 12, 7))


def test_the_latest_due_date_is_the_end_of_the_year_twenty_years_on() -> None:
    assert latest_due(SUNDAY) == date(2046, 12, 31)
    assert read_due("2046-12-31", today=SUNDAY) == date(2046, 12, 31)
    assert read_due("in 20 years", today=SUNDAY) == date(2046, 12, 6)
    message = refusal("in 30 years")
    assert 'I read "in 30 years" as Wed 6 Dec 2056, which is too far in the future' in message
    assert "the latest due date is Mon 31 Dec 2046" in message
    assert "too far" in refusal("2047-01-01")


@pytest.mark.parametrize("typed", ["2026-02-30", "2026-13-01", "31.4.2027", "2027/02/29"])
def test_a_day_not_on_the_calendar_is_refused_with_the_format(typed: str) -> None:
    message = refusal(typed)
    assert f'"{typed}" is not a day on the calendar' in message
    assert "YYYY-MM-DD, such as 2026-12-20" in message


@pytest.mark.parametrize("typed", ["soon", "asap", "26-1-1", "whenever", "next friday Home page"])
def test_anything_else_is_refused_with_examples(typed: str) -> None:
    message = refusal(typed)
    assert f'I can\'t read "{typed}" as a date' in message
    assert 'such as 2026-12-20, or in words, such as "Dec 20", "in 2 weeks"' in message


def test_empty_and_overlong_texts_are_refused_before_any_parsing() -> None:
    assert "The due date is empty" in refusal("  ")
    assert "too long" in refusal("next " * 20)


# --- examples come from today -------------------------------------------------------------


@pytest.mark.parametrize("today", [date(2026, 12, 6), date(2030, 2, 27), date(2035, 12, 31)])
@pytest.mark.parametrize(
    "typed", ["soon", "3pm", "next week", "yesterday", "15", "2026-02-30", "1/2/2027"]
)
def test_every_refusal_shows_an_example_computed_from_today(today: date, typed: str) -> None:
    message = refusal(typed, today=today)
    assert not FIXED_EXAMPLES.search(message)
    shown = re.findall(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", message)
    examples = [date.fromisoformat(d) for d in shown if d not in typed]
    assert examples and all(d >= today for d in examples), message


def test_the_example_due_date_is_two_weeks_ahead_and_reads_back() -> None:
    assert example_due(SUNDAY) == date(2026, 12, 20)
    assert read_due(example_due(SUNDAY).isoformat(), today=SUNDAY) == date(2026, 12, 20)
    assert spell(date(2026, 12, 11)) == "Fri 11 Dec 2026"


def test_refusals_carry_no_chat_markup() -> None:
    for typed in ("soon", "3pm", "next week", "yesterday", "15", "2026-02-30", "1/2/2027"):
        assert "`" not in refusal(typed) and "*" not in refusal(typed)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.dates(date(2000, 1, 1), date(2090, 12, 31)))
def test_any_text_is_a_day_within_bounds_or_a_refusal(text: str, today: date) -> None:
    try:
        day = read_due(text, today=today, locale="en-US")
    except InvalidInput as error:
        assert error.message
    else:
        assert today <= day <= latest_due(today)


def test_reading_is_quick_enough_for_a_slash_command() -> None:
    read_due("next friday", today=SUNDAY)  # loads dateparser's data once
    started = datetime.now(UTC)
    for _ in range(50):
        read_due("in 2 weeks", today=SUNDAY, locale="de-DE")
    assert datetime.now(UTC) - started < timedelta(seconds=5)
