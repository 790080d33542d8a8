"""People's habits from their Slack profiles: time zone and locale (users.info with
`include_locale`), cached, so "tomorrow" is their tomorrow and `1.500,00` is read the
way they write numbers.

`SlackProfiles` holds the cache; the command listener gets one per app (built when the
listener is registered) and the reminder sweep's time zones (bot.directory) read
through the same kind of cache. A profile Slack can't give is unknown (`Habits()`),
never an error: the person's input is then read as if they were in UTC, in `en-US`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

TTL_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Habits:
    """A person's time zone (IANA name, e.g. `Europe/Berlin`) and Slack locale (`de-DE`)."""

    time_zone: str | None = None
    locale: str | None = None


class SlackProfiles:
    """`habits_of(client, user_id)`, asking Slack at most once per person per `ttl_seconds`
    (a failed lookup is not remembered: the last known habits, or unknown ones, are
    used)."""

    def __init__(self, *, ttl_seconds: float = TTL_SECONDS) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Habits]] = {}
        self._lock = threading.Lock()

    def habits_of(self, client: WebClient, user_id: str) -> Habits:
        with self._lock:
            cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            user = client.users_info(user=user_id, include_locale=True)["user"]
        except (SlackApiError, OSError, KeyError, TypeError) as error:
            log.warning("no profile for %s (%s); reading as UTC, en-US", user_id, error)
            return cached[1] if cached else Habits()
        habits = Habits(time_zone=_text(user, "tz"), locale=_text(user, "locale"))
        with self._lock:
            self._cache[user_id] = (time.monotonic() + self._ttl, habits)
        return habits


def _text(user: object, key: str) -> str | None:
    value = user.get(key) if isinstance(user, dict) else None
    return value if isinstance(value, str) and value else None
