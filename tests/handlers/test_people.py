"""People's habits from Slack profiles (handlers.people, bot.directory): one users.info
call with the locale gives both the time zone and the locale, cached; a failed lookup
leaves them unknown, never an error."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.directory import SlackTimeZones
from handlers.people import Habits, SlackProfiles


class FakeUsers:
    """users.info as Slack answers it: `locale` only when `include_locale` is true."""

    def __init__(self, users: dict[str, dict[str, Any]]) -> None:
        self.users = users
        self.calls: list[dict[str, Any]] = []
        self.failing = False

    def users_info(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.failing:
            response = SlackResponse(
                client=None,
                http_verb="POST",
                api_url="users.info",
                req_args={},
                data={"ok": False, "error": "ratelimited"},
                headers={},
                status_code=429,
            )
            raise SlackApiError("ratelimited", response)
        user = dict(self.users[kwargs["user"]])
        if not kwargs.get("include_locale"):
            user.pop("locale", None)
        return {"ok": True, "user": user}


def slack() -> FakeUsers:
    return FakeUsers(
        {
            "U1": {"id": "U1", "tz": "Europe/Berlin", "locale": "de-DE"},
            "U2": {"id": "U2", "tz": "America/New_York"},  # Slack may leave one out
        }
    )


def test_one_lookup_with_the_locale_gives_both_habits_and_is_cached() -> None:
    client, profiles = slack(), SlackProfiles()

    first = profiles.habits_of(client, "U1")  # type: ignore[arg-type]
    again = profiles.habits_of(client, "U1")  # type: ignore[arg-type]

    assert first == again == Habits(time_zone="Europe/Berlin", locale="de-DE")
    assert client.calls == [{"user": "U1", "include_locale": True}]


def test_a_missing_locale_is_unknown() -> None:
    assert SlackProfiles().habits_of(slack(), "U2") == Habits("America/New_York", None)  # type: ignore[arg-type]


def test_a_failed_lookup_is_unknown_or_the_last_known_habits_and_is_not_cached() -> None:
    client = slack()
    profiles = SlackProfiles(ttl_seconds=0)
    known = profiles.habits_of(client, "U1")  # type: ignore[arg-type]
    client.failing = True

    assert profiles.habits_of(client, "U1") == known  # type: ignore[arg-type]
    assert profiles.habits_of(client, "U2") == Habits()  # type: ignore[arg-type]
    client.failing = False
    assert profiles.habits_of(client, "U2").time_zone == "America/New_York"  # type: ignore[arg-type]


def test_an_expired_entry_is_asked_again() -> None:
    client = slack()
    profiles = SlackProfiles(ttl_seconds=0)
    profiles.habits_of(client, "U1")  # type: ignore[arg-type]
    profiles.habits_of(client, "U1")  # type: ignore[arg-type]
    assert len(client.calls) == 2


def test_the_sweeps_time_zones_come_with_the_locale_from_one_cached_call() -> None:
    client = slack()
    zones = SlackTimeZones(client)  # type: ignore[arg-type]

    assert zones("U1") == "Europe/Berlin"
    assert zones.locale_of("U1") == "de-DE"
    assert zones.habits_of("U1") == Habits("Europe/Berlin", "de-DE")
    assert client.calls == [{"user": "U1", "include_locale": True}]
    client.failing = True
    assert zones("U2") is None  # Slack can't tell: UTC for the sweep
