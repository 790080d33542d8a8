"""Configurable business parameters, and the clock port."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Protocol

MAX_TITLE = 200
MAX_TEXT = 2000
MAX_MILESTONES = 50


@dataclass(frozen=True)
class Policy:
    auto_release_period: timedelta = timedelta(days=14)
    max_amount_major: int = 10_000_000
    request_reminder_first: timedelta = timedelta(hours=24)
    request_reminder_every: timedelta = timedelta(hours=48)
    review_reminders_before: tuple[timedelta, ...] = field(
        default=(timedelta(days=7), timedelta(days=1))
    )
    fund_reminder_after: timedelta = timedelta(hours=48)
    working_hours: tuple[time, time] = (time(9, 0), time(18, 0))
    # The provider side's window after the client ends with escrow held.
    end_window: timedelta = timedelta(days=7)
    # How often both sides of an open dispute are reminded of it.
    dispute_reminder_every: timedelta = timedelta(days=3)
    # `PAYMENTS=stripe`: a fund asks the client to pay through the provider, and is
    # funded when the provider confirms it (domain/services/payments.py).
    pay_through_provider: bool = False


DEFAULT_POLICY = Policy()


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The process's wall clock in UTC (interface.md: never the database's `now()`)."""
    return datetime.now(UTC)
