"""Due dates as people type them, read in their own calendar.

`read_due(text, today=..., locale=...)` turns what a person typed where a due date goes
into a calendar date. `today` is the person's today (`today_in(now, time_zone)`: the
date where they are, from their Slack time zone), so `tomorrow` and `next friday` mean
what they mean to them. `locale` is their Slack locale (`en-US`, `de-DE`), if known.

Accepted:
- ISO dates, `2027-01-15` (also `2027/01/15` and `2027.1.15`: the year first is never
  ambiguous);
- day and month in numbers, with a four-digit year or none (`15.12.2026`, `12/15`).
  When only one reading is a day that could be due (`15/12/2026`: there is no month
  15), it is that day; when both are, the person's locale decides: day first for
  `de-DE` or `en-GB`, month first for `en-US`. When it doesn't (no locale, or one that
  puts the year first), the person is asked, with both readings;
- words, in English or in the language of the person's locale, read by `dateparser`
  preferring the future: `Dec 15`, `15 Dec 2026`, `friday`, `next friday`, `tomorrow`,
  `today`, `in 2 weeks`, `in 3 months`, `in a fortnight`.

Refused, each time saying what was understood and showing a valid example computed
from today (`example_due`):
- a lone number (`5`, `15th`, `20270115`): which month?
- a time of day, alone or with a day (`3pm`, `noon`, `tomorrow 3pm`): a due date is a
  whole day;
- a week, month or year without a day (`next week`, `December`, `2027`);
- a day before the person's today, or after the last day of the year twenty years on
  (the bounds of `services._validation.check_due_date`, seen from where they are);
- a day that is not on the calendar (`2026-02-30`), and anything else.

Pure: no Slack, no clock (today is passed in), no I/O.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale, UnknownLocaleError
from dateparser.conf import settings as dateparser_defaults
from dateparser.data.languages_info import language_order
from dateparser.date import DateDataParser
from dateparser.languages.loader import default_loader

from domain.errors import InvalidInput

MAX_DUE_TEXT_LENGTH = 60
"""Due texts longer than this are refused before any other work."""
YEARS_AHEAD = 20
"""The latest due date is the last day of the year this many years after today's."""

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_FIELD = "due_date"

# Digits and separators only: read here, never guessed by dateparser.
_NUMERIC = re.compile(r"[0-9][0-9./\-]*")
_YEAR_FIRST = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})")
_DAY_AND_MONTH = re.compile(r"([0-9]{1,2})([-/.])([0-9]{1,2})(?:\2([0-9]{4}))?\.?")
_LONE_NUMBER = re.compile(r"(?:on\s+)?(?:the\s+)?[0-9]+(?:st|nd|rd|th)?\.?", re.IGNORECASE)
_FOUR_DIGITS = re.compile(r"\b[0-9]{4}\b")
_MONTH_WORD = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december)\b"
)
# A span of time from today, as dateparser translates it into English ("in 2 week 3 day").
_OFFSET = re.compile(
    r"(?:in\s+)?(?:[0-9]+\s+(?:day|week|fortnight|month|year)\s*)+(?:in|later|ago)?"
)
# ...typed with a count ("in 2 weeks", "in a week"), not as "next week" (which dateparser
# also translates to "in 1 week", but which names a week, not a day).
_COUNT = re.compile(
    r"[0-9]|\b(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"fortnight)\b",
    re.IGNORECASE,
)


def today_in(now: datetime, time_zone: str | None) -> date:
    """The date it is at `now` in `time_zone` (an IANA name); UTC when unknown or bad."""
    zone: Any = UTC
    if time_zone:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return moment.astimezone(zone).date()


def example_due(today: date) -> date:
    """A due date to show in examples: two weeks from today."""
    return today + timedelta(days=14)


def latest_due(today: date) -> date:
    return date(today.year + YEARS_AHEAD, 12, 31)


def spell(day: date) -> str:
    """A calendar date for people, e.g. "Fri 11 Dec 2026"."""
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def read_due(text: str, *, today: date, locale: str | None = None) -> date:
    """The calendar date a person means by `text` (see the module doc).

    Raises `InvalidInput` (field `due_date`) saying what was understood and showing an
    example computed from `today`.
    """
    typed = " ".join(text.split())
    if not typed:
        raise InvalidInput(f"The due date is empty. {_how_to(today)}", field=_FIELD)
    if len(typed) > MAX_DUE_TEXT_LENGTH:
        raise InvalidInput(
            f"That due date is too long to be a date. {_how_to(today)}", field=_FIELD
        )
    if _NUMERIC.fullmatch(typed):
        day = _numeric(typed, today, _date_order(locale))
    else:
        day = _words(typed, today, locale)
    return _within_bounds(typed, day, today)


# --- numbers ------------------------------------------------------------------------------


def _numeric(typed: str, today: date, order: str | None) -> date:
    year_first = _YEAR_FIRST.fullmatch(typed)
    if year_first is not None:
        year, month, day = int(year_first[1]), int(year_first[3]), int(year_first[4])
        try:
            return date(year, month, day)
        except ValueError:
            raise _not_on_calendar(typed, today) from None
    day_and_month = _DAY_AND_MONTH.fullmatch(typed)
    if day_and_month is None:
        if typed.rstrip(".").isdigit():
            raise _lone_number(typed, today)
        raise _not_a_date(typed, today)
    first, second = int(day_and_month[1]), int(day_and_month[3])
    typed_year = int(day_and_month[4]) if day_and_month[4] else None
    readings = {
        "DM": _calendar_day(first, second, typed_year, today),
        "MD": _calendar_day(second, first, typed_year, today),
    }
    on_calendar = {key: day for key, day in readings.items() if day is not None}
    if not on_calendar:
        raise _not_on_calendar(typed, today)
    # Only a day that could be due counts as a reading; with none, say why the first
    # reading can't be (in the person's order if known).
    valid = {key: day for key, day in on_calendar.items() if today <= day <= latest_due(today)}
    if not valid:
        preferred = "MD" if order == "MDY" else "DM"
        return on_calendar.get(preferred) or next(iter(on_calendar.values()))
    if len(set(valid.values())) == 1:
        return next(iter(valid.values()))
    if order in ("DMY", "MDY"):
        return valid["DM" if order == "DMY" else "MD"]
    day_first, month_first = valid["DM"], valid["MD"]
    raise InvalidInput(
        f'I can\'t tell which day "{typed}" is: {_long(day_first)} (day first) or '
        f"{_long(month_first)} (month first). Type {day_first.isoformat()} for "
        f"{_long(day_first)}, or {month_first.isoformat()} for {_long(month_first)}.",
        field=_FIELD,
    )


def _calendar_day(day: int, month: int, year: int | None, today: date) -> date | None:
    """That day of that month (of `year`, else its next occurrence from today), if real."""
    if year is not None:
        try:
            return date(year, month, day)
        except ValueError:
            return None
    for candidate_year in range(today.year, today.year + 9):  # 29 Feb comes round
        try:
            candidate = date(candidate_year, month, day)
        except ValueError:
            if not 1 <= month <= 12 or not 1 <= day <= 31:
                return None
            continue
        if candidate >= today:
            return candidate
    return None


@functools.lru_cache(maxsize=128)
def _date_order(locale: str | None) -> str | None:
    """ "DMY", "MDY" or "YMD": how the locale writes a short date; None when unknown."""
    found = _babel_locale(locale)
    if found is None:
        return None
    pattern = str(found.date_formats["short"].pattern)
    positions = {letter: pattern.find(letter) for letter in "dMy"}
    if any(position < 0 for position in positions.values()):
        return None
    return "".join(sorted(positions, key=positions.__getitem__)).upper()


def _babel_locale(locale: str | None) -> Locale | None:
    if not locale:
        return None
    identifier = locale.replace("-", "_")
    for attempt in (identifier, identifier.split("_")[0]):
        try:
            return Locale.parse(attempt)
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return None


# --- words --------------------------------------------------------------------------------


def _words(typed: str, today: date, locale: str | None) -> date:
    if _LONE_NUMBER.fullmatch(typed):
        raise _lone_number(typed, today)
    languages = _languages(locale)
    parser = DateDataParser(
        languages=languages,
        settings={
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": datetime(today.year, today.month, today.day, 12, 0),
            "RETURN_TIME_AS_PERIOD": True,
            "PARSERS": ["relative-time", "absolute-time"],
            "TIMEZONE": "UTC",
        },
    )
    try:
        data = parser.get_date_data(typed)
    except Exception:  # noqa: BLE001 - any text a person types: dateparser can't read it
        data = None
    moment = getattr(data, "date_obj", None)
    if not isinstance(moment, datetime):
        raise _not_a_date(typed, today)
    period = str(getattr(data, "period", "day"))
    day = moment.date()
    if period in ("time", "part_of_day"):
        raise InvalidInput(
            f'"{typed}" has a time of day (I read it as {spell(day)} at {moment:%H:%M}); '
            f"a due date is a whole day. Type just the day, such as {_words_example(today)} "
            f"or {example_due(today).isoformat()}.",
            field=_FIELD,
        )
    translated = _in_english(typed, getattr(data, "locale", None))
    if period != "day" and not _is_offset(typed, translated):
        what = {"week": "a week", "month": "a month", "year": "a year"}.get(period, "not a day")
        understood = {
            "week": f"the week of {spell(day)}",
            "month": f"{_MONTH_NAMES[day.month - 1]} {day.year}",
            "year": str(day.year),
        }.get(period, spell(day))
        raise InvalidInput(
            f'"{typed}" is {what}, not a day (I read it as {understood}). Name the day, '
            f'such as "next friday" or {example_due(today).isoformat()}, or a span from '
            'today, such as "in 2 weeks".',
            field=_FIELD,
        )
    month_and_day = _MONTH_WORD.search(translated) and not _FOUR_DIGITS.search(typed)
    if month_and_day and day == _same_day_next_year(today):
        return today  # "Dec 15" on 15 December is today, not a year from now
    return day


def _in_english(typed: str, language: str | None) -> str:
    """`typed` as dateparser translates it into English ("in 2 Wochen" → "in 2 week")."""
    try:
        translated = default_loader.get_locale(language or "en").translate(
            typed, settings=dateparser_defaults
        )
    except Exception:  # noqa: BLE001 - as above: not an English span then
        return typed.lower()
    return " ".join(str(translated).split())


def _is_offset(typed: str, translated: str) -> bool:
    """ "in 2 weeks", "in a fortnight", "in 3 Monaten": a span counted from today."""
    return bool(_COUNT.search(typed)) and _OFFSET.fullmatch(translated) is not None


def _same_day_next_year(today: date) -> date | None:
    try:
        return today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        return None


@functools.lru_cache(maxsize=128)
def _languages(locale: str | None) -> tuple[str, ...]:
    """English, and the language of the person's locale when dateparser knows it."""
    if not locale:
        return ("en",)
    language = locale.replace("_", "-").split("-")[0].lower()
    if language and language != "en" and language in language_order:
        return ("en", language)
    return ("en",)


# --- bounds and refusals ------------------------------------------------------------------


def _within_bounds(typed: str, day: date, today: date) -> date:
    if day < today:
        raise InvalidInput(
            f'I read "{typed}" as {spell(day)}, which is in the past (today is '
            f"{spell(today)} where you are). Give a day from today on, such as "
            f"{example_due(today).isoformat()} or {_words_example(today)}.",
            field=_FIELD,
        )
    latest = latest_due(today)
    if day > latest:
        raise InvalidInput(
            f'I read "{typed}" as {spell(day)}, which is too far in the future: the latest '
            f"due date is {spell(latest)}. Give a nearer day, such as "
            f"{example_due(today).isoformat()}.",
            field=_FIELD,
        )
    return day


def _how_to(today: date) -> str:
    return (
        f"Write the due date as YYYY-MM-DD, such as {example_due(today).isoformat()}, or in "
        f'words, such as {_words_example(today)}, "in 2 weeks" or "tomorrow".'
    )


def _words_example(today: date) -> str:
    day = example_due(today)
    return f'"{_MONTHS[day.month - 1]} {day.day}"'


def _not_a_date(typed: str, today: date) -> InvalidInput:
    return InvalidInput(f'I can\'t read "{typed}" as a date. {_how_to(today)}', field=_FIELD)


def _not_on_calendar(typed: str, today: date) -> InvalidInput:
    return InvalidInput(f'"{typed}" is not a day on the calendar. {_how_to(today)}', field=_FIELD)


def _lone_number(typed: str, today: date) -> InvalidInput:
    digits = "".join(c for c in typed if c.isdigit())
    number = int(digits) if digits and len(digits) <= 2 else 0
    nearest = _next_day_numbered(number, today)
    if nearest is not None:
        example = f'such as "{_MONTHS[nearest.month - 1]} {nearest.day}" or {nearest.isoformat()}'
    else:
        example = f"such as {example_due(today).isoformat()}"
    return InvalidInput(
        f'"{typed}" alone is not a date: which month? Write the day with its month, {example}.',
        field=_FIELD,
    )


def _next_day_numbered(number: int, today: date) -> date | None:
    """The first day from today whose day of the month is `number` (within a year)."""
    year, month = today.year, today.month
    for _ in range(13):
        try:
            candidate = date(year, month, number)
        except ValueError:
            candidate = None
        if candidate is not None and candidate >= today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _long(day: date) -> str:
    return f"{day.day} {_MONTH_NAMES[day.month - 1]} {day.year}"
