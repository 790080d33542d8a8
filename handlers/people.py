"""People's habits from their Slack profiles: time zone and locale (users.info with
`include_locale`), cached, so "tomorrow" is their tomorrow and `1.500,00` is read the
way they write numbers.

`SlackProfiles` holds the cache; the listeners share one per app (`Deps.profiles`, built
by the wiring), so a person's profile asked for by a command serves their forms too,
and the reminder sweep's time zones (bot.directory) read through the same kind of
cache. A profile Slack can't give is unknown (`Habits()`), never an error: the person's
input is then read as if they were in UTC, in `en-US`.

`plain_amount` reads an amount a person typed (a command's or a form's) in their locale,
asking for their profile only when the number has separators.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain import money
from domain.errors import InvalidAmount

log = logging.getLogger(__name__)

TTL_SECONDS = 3600.0
# Amounts with one of these need the person's locale to be read (`1.500`, `1 500`).
_SEPARATORS = re.compile("[.,'\u2019]|[0-9][\\s\u00a0\u202f]+[0-9]")


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


def plain_amount(
    text: str,
    currency: str,
    *,
    habits: Callable[[], Habits],
    max_major: int,
    milestone: int | None = None,
) -> str:
    """The amount as the person wrote it, in the domain's plain form (`1.500,00` from a
    `de-DE` person → `1500.00`). Plain digits need no locale and are passed on as typed,
    for the domain to read; `habits` (a cached Slack lookup) is called only for a number
    with separators. A refusal (`1,500` from a `de-DE` person: one and a half, or
    fifteen hundred?) is about the amount of `milestone` (None: a new one), so a form
    shows it next to that input (handlers.blocks.fields)."""
    if not _SEPARATORS.search(text):
        return text
    locale = habits().locale or "en-US"
    try:
        minor = money.parse_amount(text, currency, max_major=max_major, locale=locale)
    except InvalidAmount as refusal:  # kept as it is (an `AmbiguousAmount` keeps its readings)
        refusal.field, refusal.milestone = "amount_minor", milestone
        raise
    return money.to_major_str(minor, currency)
