"""Helpers for the delivery tests: the injected clock, and reading what was posted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import select

from bot.delivery import Delivery
from domain.db import read_transaction
from domain.model import MessageRef, OutboxMessage
from sandbox.emulator import SlackEmulator, StoredMessage
from tests.conftest import Database
from tests.factories import NOW

OTHER_CHANNEL = "C0002"


@dataclass
class Clock:
    """The injected clock: stands still until a test moves it."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def web_client(slack: SlackEmulator) -> WebClient:
    return WebClient(token="xoxb-test", base_url=slack.api_url)


# --- reading what happened ------------------------------------------------------------


def deliver_all(delivery: Delivery) -> None:
    """Sweep until nothing is due at the clock's current time."""
    for _ in range(20):
        if delivery.sweep(limit=500) == 0:
            return
    raise AssertionError("the outbox never drained")


def intents(db: Database, kind: str, contract_id: int | None = None) -> list[OutboxMessage]:
    with db.session() as session, read_transaction(session):
        query = select(OutboxMessage).where(OutboxMessage.kind == kind)
        if contract_id is not None:
            query = query.where(OutboxMessage.contract_id == contract_id)
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def intent(db: Database, outbox_id: int) -> OutboxMessage:
    with db.session() as session, read_transaction(session):
        row = session.get(OutboxMessage, outbox_id)
        assert row is not None
        return row


def ref(db: Database, subject: str) -> MessageRef | None:
    with db.session() as session, read_transaction(session):
        return session.scalar(select(MessageRef).where(MessageRef.subject == subject))


def posted_ts(db: Database, subject: str) -> str:
    found = ref(db, subject)
    assert found is not None and found.ts, f"{subject} was not posted"
    return found.ts


def text_of(message: StoredMessage) -> str:
    return message.text + json.dumps(message.blocks)


def posts_of(slack: SlackEmulator, ts: str) -> int:
    """How many successful chat.postMessage calls created the message `ts`."""
    return sum(
        1 for call in slack.calls_to("chat.postMessage") if call.ok and call.response["ts"] == ts
    )


def failed_calls(slack: SlackEmulator, method: str, channel: str) -> int:
    return sum(
        1
        for call in slack.calls_to(method)
        if not call.ok and call.params.get("channel") == channel
    )


def calls_in(slack: SlackEmulator, method: str, channel: str) -> int:
    return sum(1 for call in slack.calls_to(method) if call.params.get("channel") == channel)
