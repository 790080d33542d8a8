"""Who lives in the sandbox's workspace: five people and one channel.

The roles are what each person plays in the demo and in the page's switch; the bot
itself only learns roles from the contracts people create.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.emulator import SlackEmulator

TEAM_ID = "T0SANDBX"
TEAM_NAME = "Sandbox"
CHANNEL_ID = "C0DEALS"
CHANNEL_NAME = "deals"
CHANNEL_TOPIC = "Contracts between Carol's company, Fred and the Pixel & Co agency"


@dataclass(frozen=True)
class Person:
    id: str
    name: str  # the Slack handle: @name
    real_name: str
    role: str  # what they play: shown under their name in the page
    tz: str
    tz_label: str
    tz_offset: int  # seconds east of UTC (standard time; enough for users.info)

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "name": self.name,
            "real_name": self.real_name,
            "role": self.role,
            "tz": self.tz,
            "tz_label": self.tz_label,
        }


CLIENT = Person("U0CLIENT", "carol", "Carol Chen", "client", "America/New_York", "New York", -18000)
FREELANCER = Person(
    "U0FREELA", "fred", "Fred Fischer", "freelancer", "Europe/Berlin", "Berlin", 3600
)
MANAGER = Person(
    "U0MANAGE", "maya", "Maya Menon", "agency manager", "Asia/Kolkata", "Kolkata", 19800
)
MEMBER = Person("U0MEMBER", "milo", "Milo Moore", "agency member", "Europe/London", "London", 0)
OUTSIDER = Person("U0OUTSID", "olga", "Olga Ortiz", "outsider", "Europe/Paris", "Paris", 3600)

CAST: tuple[Person, ...] = (CLIENT, FREELANCER, MANAGER, MEMBER, OUTSIDER)


def person(user_id: str) -> Person | None:
    return next((p for p in CAST if p.id == user_id), None)


def populate(slack: SlackEmulator) -> None:
    """Add the cast and `#deals` (with the bot as a member) to the emulator."""
    for p in CAST:
        slack.add_user(
            p.id,
            p.name,
            real_name=p.real_name,
            tz=p.tz,
            tz_label=p.tz_label,
            tz_offset=p.tz_offset,
            email=f"{p.name}@example.com",
        )
    slack.add_channel(
        CHANNEL_ID,
        CHANNEL_NAME,
        members=[p.id for p in CAST],
        is_member=True,
        topic=CHANNEL_TOPIC,
    )
