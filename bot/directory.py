"""People's time zones and locales from Slack profiles (users.info with
`include_locale`), cached for the sweep."""

from __future__ import annotations

from slack_sdk import WebClient

from handlers.people import TTL_SECONDS, Habits, SlackProfiles


class SlackTimeZones:
    """`time_zone_of(user_id)` for the reminder sweep; None when Slack can't tell.

    One users.info call (with the locale) per person per `ttl_seconds` gives both their
    time zone and their locale (`locale_of`)."""

    def __init__(self, client: WebClient, *, ttl_seconds: float = TTL_SECONDS) -> None:
        self._client = client
        self._profiles = SlackProfiles(ttl_seconds=ttl_seconds)

    def __call__(self, user_id: str) -> str | None:
        return self.habits_of(user_id).time_zone

    def locale_of(self, user_id: str) -> str | None:
        return self.habits_of(user_id).locale

    def habits_of(self, user_id: str) -> Habits:
        return self._profiles.habits_of(self._client, user_id)
