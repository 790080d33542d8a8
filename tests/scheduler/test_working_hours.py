"""`within_working_hours`: Monday to Friday, 09:00–18:00 in the recipient's zone,
never past the deadline a reminder warns about."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.reminders import within_working_hours

HOURS = (time(9, 0), time(18, 0))
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A wall-clock time in `zone`, as the UTC instant the function takes."""
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def shift(instant: datetime, zone: str | None, deadline: datetime | None = None) -> datetime:
    return within_working_hours(instant, zone, HOURS, deadline=deadline)


def test_saturday_morning_in_berlin_moves_to_monday_nine_in_berlin() -> None:
    saturday = at(BERLIN, 2026, 11, 7, 10, 0)
    assert shift(saturday, "Europe/Berlin") == at(BERLIN, 2026, 11, 9, 9, 0)


def test_sunday_evening_moves_to_monday_nine() -> None:
    sunday = at(BERLIN, 2026, 11, 8, 23, 30)
    assert shift(sunday, "Europe/Berlin") == at(BERLIN, 2026, 11, 9, 9, 0)


def test_a_moment_inside_working_hours_stays_where_it_is() -> None:
    tuesday = at(BERLIN, 2026, 11, 3, 14, 27)
    assert shift(tuesday, "Europe/Berlin") == tuesday


def test_friday_one_minute_before_closing_stays() -> None:
    friday = at(BERLIN, 2026, 11, 6, 17, 59)
    assert shift(friday, "Europe/Berlin") == friday


def test_friday_at_closing_time_moves_to_monday() -> None:
    friday = at(BERLIN, 2026, 11, 6, 18, 0)
    assert shift(friday, "Europe/Berlin") == at(BERLIN, 2026, 11, 9, 9, 0)


def test_early_on_a_weekday_waits_for_nine_the_same_day() -> None:
    wednesday = at(BERLIN, 2026, 11, 4, 6, 15)
    assert shift(wednesday, "Europe/Berlin") == at(BERLIN, 2026, 11, 4, 9, 0)


def test_an_evening_on_a_weekday_moves_to_the_next_morning() -> None:
    wednesday = at(BERLIN, 2026, 11, 4, 21, 0)
    assert shift(wednesday, "Europe/Berlin") == at(BERLIN, 2026, 11, 5, 9, 0)


def test_the_working_day_is_the_recipients_not_utcs() -> None:
    # Monday 15:00 UTC is 10:00 in New York (in hours) and 16:00 in Berlin (in hours),
    # but Monday 06:00 UTC is 01:00 in New York: wait for 09:00 there (14:00 UTC).
    assert shift(datetime(2026, 11, 2, 15, 0, tzinfo=UTC), "America/New_York") == datetime(
        2026, 11, 2, 15, 0, tzinfo=UTC
    )
    assert shift(datetime(2026, 11, 2, 6, 0, tzinfo=UTC), "America/New_York") == datetime(
        2026, 11, 2, 14, 0, tzinfo=UTC
    )


def test_a_weekend_across_the_spring_dst_change_lands_on_monday_nine_local_time() -> None:
    # New York moves to daylight time on Sunday 8 March 2026: Monday 09:00 EDT = 13:00 UTC.
    saturday = at(NEW_YORK, 2026, 3, 7, 10, 0)
    monday = shift(saturday, "America/New_York")
    assert monday == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert monday.astimezone(NEW_YORK).time() == time(9, 0)


def test_a_weekend_across_the_autumn_dst_change_lands_on_monday_nine_local_time() -> None:
    # Berlin leaves summer time on Sunday 25 October 2026: Monday 09:00 CET = 08:00 UTC.
    saturday = at(BERLIN, 2026, 10, 24, 10, 0)
    assert saturday == datetime(2026, 10, 24, 8, 0, tzinfo=UTC)  # CEST, UTC+2
    assert shift(saturday, "Europe/Berlin") == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("zone", [None, "", "Mars/Olympus_Mons", "not a zone", "../etc/passwd"])
def test_an_unknown_time_zone_means_utc(zone: str | None) -> None:
    saturday = datetime(2026, 11, 7, 10, 0, tzinfo=UTC)
    assert shift(saturday, zone) == datetime(2026, 11, 9, 9, 0, tzinfo=UTC)


def test_other_working_hours_are_honoured() -> None:
    early = (time(7, 30), time(15, 0))
    tuesday_15 = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    assert within_working_hours(tuesday_15, "UTC", early) == datetime(
        2026, 11, 4, 7, 30, tzinfo=UTC
    )


# --- never past the deadline ------------------------------------------------------------


def test_a_shift_that_would_pass_the_deadline_comes_an_hour_before_it() -> None:
    saturday = datetime(2026, 11, 7, 10, 0, tzinfo=UTC)
    release = datetime(2026, 11, 8, 12, 0, tzinfo=UTC)  # Sunday noon
    assert shift(saturday, "UTC", release) == release - timedelta(hours=1)


def test_a_shift_that_lands_exactly_on_the_deadline_counts_as_past_it() -> None:
    saturday = datetime(2026, 11, 7, 10, 0, tzinfo=UTC)
    release = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)  # Monday 09:00 itself
    assert shift(saturday, "UTC", release) == release - timedelta(hours=1)


def test_within_the_last_hour_before_the_deadline_it_is_sent_at_once_not_earlier() -> None:
    sunday = datetime(2026, 11, 8, 11, 30, tzinfo=UTC)
    release = datetime(2026, 11, 8, 12, 0, tzinfo=UTC)
    assert shift(sunday, "UTC", release) == sunday


def test_a_deadline_after_the_shifted_moment_does_not_change_it() -> None:
    saturday = datetime(2026, 11, 7, 10, 0, tzinfo=UTC)
    release = datetime(2026, 11, 9, 10, 0, tzinfo=UTC)
    assert shift(saturday, "UTC", release) == datetime(2026, 11, 9, 9, 0, tzinfo=UTC)


def test_a_moment_inside_working_hours_ignores_the_deadline() -> None:
    tuesday = datetime(2026, 11, 3, 11, 0, tzinfo=UTC)
    assert shift(tuesday, "UTC", tuesday + timedelta(minutes=5)) == tuesday


# --- properties -----------------------------------------------------------------------------

ZONES = [
    None,
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Santiago",  # DST changes at midnight
    "Asia/Kolkata",  # UTC+05:30
    "Asia/Kathmandu",  # UTC+05:45
    "Asia/Tokyo",
    "Australia/Adelaide",  # half-hour offset with DST, southern hemisphere
    "Australia/Lord_Howe",  # a 30-minute DST change
    "Pacific/Auckland",
    "Pacific/Kiritimati",  # UTC+14
    "Pacific/Pago_Pago",  # UTC-11
    "Unknown/Zone",
]

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
)


def in_working_hours(moment: datetime, zone: str | None) -> bool:
    try:
        tz = ZoneInfo(zone) if zone else ZoneInfo("UTC")
    except (KeyError, ValueError):
        tz = ZoneInfo("UTC")
    local = moment.astimezone(tz)
    return local.weekday() < 5 and HOURS[0] <= local.time() < HOURS[1]


@given(
    instant=instants,
    zone=st.sampled_from(ZONES),
    lead=st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))),
)
def test_the_result_is_never_early_and_is_in_working_hours_or_not_after_the_deadline(
    instant: datetime, zone: str | None, lead: timedelta | None
) -> None:
    deadline = None if lead is None else instant + lead
    result = shift(instant, zone, deadline)

    assert result >= instant
    assert in_working_hours(result, zone) or (deadline is not None and result <= deadline)
    if deadline is not None:
        assert result <= deadline  # never past the deadline it warns about


@given(instant=instants, zone=st.sampled_from(ZONES))
def test_without_a_deadline_the_result_is_the_first_working_moment(
    instant: datetime, zone: str | None
) -> None:
    result = shift(instant, zone)

    assert in_working_hours(result, zone)
    assert result - instant < timedelta(days=4)  # at worst Friday 18:00 → Monday 09:00
    if result != instant:
        # Moved: to an opening time, with no working moment in between.
        assert not in_working_hours(instant, zone)
        local = result.astimezone(ZoneInfo(zone) if zone and zone != "Unknown/Zone" else UTC)
        assert local.time() == HOURS[0]
