"""What listeners get from the wiring (bot/app.py puts it into bolt's `context`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from slack_bolt import BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from domain.policy import Clock, Policy
from handlers.people import SlackProfiles


class Deliverer(Protocol):
    """The outbox delivery the request path asks for right after its commit."""

    def deliver(self, ids: Sequence[int]) -> None: ...

    def sweep(self, *, limit: int = 50) -> int:
        """Send whatever is due (an outcome learnt late: its intents are in the outbox)."""
        ...

    def bot_elsewhere(self, channel_id: str, *, team_id: str) -> bool:
        """Distribution: whether another installed workspace's bot than `team_id`'s is a
        member of the channel (a Slack Connect channel); it then posts there."""
        ...


@dataclass(frozen=True)
class Deps:
    sessions: sessionmaker[Session]
    clock: Clock
    policy: Policy
    delivery: Deliverer
    client: WebClient
    # People's time zones and locales, cached: one per app, shared by every listener.
    profiles: SlackProfiles = field(default_factory=SlackProfiles)
    # Where `serve` is reached from a browser (`PUBLIC_URL`): the base of pay and payout
    # links with `PAYMENTS=stripe` (`<public_url>/pay/<token>`, `/payouts/<token>`).
    public_url: str | None = None

    def now(self) -> datetime:
        return self.clock()

    def __deepcopy__(self, memo: dict[int, Any]) -> Deps:
        """Shared services, not data: bolt deep-copies the context for a lazy listener,
        which must reach the same engine, clock, client and profile cache."""
        return self


def deps_of(context: BoltContext) -> Deps:
    deps = context["deps"]
    assert isinstance(deps, Deps)
    return deps
