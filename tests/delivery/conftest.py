"""Delivery against a real local Slack: the emulator, a WebClient, an injected clock.

Contracts are made through the services, so the outbox rows are the real ones; the
clock starts at `NOW`, when those rows became due, and tests move it by hand.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.delivery import Delivery
from domain import outbox
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import OTHER_CHANNEL, Clock, web_client
from tests.factories import CHANNEL, CLIENT, FREELANCER, MANAGER, MANAGER_2, MEMBER, NOW

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackEmulator]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")
    with SlackEmulator(validate_blocks=True) as emulator:
        for user_id, name in [
            (CLIENT, "carol"),
            (FREELANCER, "fred"),
            (MANAGER, "maya"),
            (MANAGER_2, "mark"),
            (MEMBER, "milo"),
        ]:
            emulator.add_user(user_id, name)
        emulator.add_channel(CHANNEL, "deals")
        emulator.add_channel(OTHER_CHANNEL, "other-deals")
        yield emulator


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def delivery(db: Database, slack: SlackEmulator, clock: Clock) -> Delivery:
    return Delivery(db.sessions, web_client(slack), clock)


@pytest.fixture(autouse=True)
def everyone_opened_home(db: Database) -> None:
    """In these tests the parties have all opened their App Home once, so their Homes
    follow every change (test_home_viewers.py checks what happens when they have not)."""
    for user_id in (CLIENT, FREELANCER, MANAGER, MANAGER_2, MEMBER):
        with db.session() as session:
            outbox.home_opened(session, user_id, now=NOW)
