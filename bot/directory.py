"""People's time zones from Slack profiles (users.info), cached for the sweep."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class SlackTimeZones:
    """`time_zone_of(user_id)` for the reminder sweep; None when Slack can't tell."""

    def __init__(self, client: WebClient, *, ttl_seconds: float = 3600.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, user_id: str) -> str | None:
        with self._lock:
            cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            tz = self._client.users_info(user=user_id)["user"].get("tz")
        except (SlackApiError, OSError) as error:
            log.warning("no time zone for %s (%s); using UTC", user_id, error)
            return cached[1] if cached else None
        with self._lock:
            self._cache[user_id] = (time.monotonic() + self._ttl, tz)
        return tz if isinstance(tz, str) else None
