"""The sandbox's clock: real time plus an offset that only moves forward.

It is the one place time shifts in milestone-bot. The bot gets it as its `Clock`
(deadlines, reminders, ledger instants) and the local Slack as its `ts` source, so
messages carry sandbox time; requests to the bot stay signed with real time.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from domain.policy import Clock, system_clock


class OffsetClock:
    """`clock()` is `base() + offset`; `advance` moves the offset forward."""

    def __init__(self, base: Clock = system_clock) -> None:
        self._base = base
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            offset = self._offset
        return self._base() + offset

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Move sandbox time forward by `delta` and return the new now."""
        if delta <= timedelta(0):
            raise ValueError("sandbox time only moves forward")
        with self._lock:
            self._offset += delta
        return self()

    def epoch(self) -> float:
        """Now as Unix seconds (the emulator's `clock=` for message timestamps)."""
        return self().timestamp()
