"""Where an action came from: the idempotency key of the request that asked for it, whom
to answer, and by when the answer is needed.

A person's click or command reaches a service with an `Origin` attached to its session
(`attach`). The service's write transaction then stores the origin's key as a receipt
in the same transaction as the change (`write_transaction` does it first thing), so:

- a request seen again (a replay, a redelivery, a retry by the bot itself) finds its
  receipt and changes nothing (`AlreadyHandled`);
- when the connection dies at COMMIT, nobody can say whether the change was applied
  (`OutcomeUnknown`); `was_applied` asks the database again, on a new connection, and
  the receipt tells the truth;
- the answer to the person is an outbox intent written in the same transaction
  (`reply_to`, an address the delivery understands), so it is sent if and only if the
  change was committed, whatever happens to the process afterwards.

The domain does not know what the key or the address mean to the chat; it only stores
them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from domain.model import RequestReceipt

_ATTACHED = "milestone_bot_origin"
KEY_LENGTH = 200


@dataclass(frozen=True)
class Origin:
    """The request behind an action."""

    key: str  # unique per inbound request (e.g. its trigger id); stored as a receipt
    at: datetime  # when it arrived (the receipt is forgotten after the replay window)
    reply_to: str | None = None  # where the actor's confirmation goes; None: nowhere
    # A monotonic instant (time.monotonic()) by which the transaction must be over: the
    # database is told to give up on locks and statements that would outlast it.
    deadline: float | None = None
    # The workspace and Grid org the request came from: the intents of that workspace
    # written with it record the org (with several org-wide installs, it picks one).
    team_id: str | None = None
    enterprise_id: str | None = None

    def enterprise_of(self, team_id: str | None) -> str | None:
        """The org of `team_id`, if the request came from that workspace."""
        return self.enterprise_id if team_id and team_id == self.team_id else None

    def seconds_left(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()


class AlreadyHandled(Exception):
    """The request's receipt exists: it was applied before; this is a repeat."""

    def __init__(self, key: str) -> None:
        super().__init__(f"request {key} was handled already")
        self.key = key


class OutcomeUnknown(Exception):
    """The connection failed while committing: the change may or may not be applied."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the outcome of request {key} is unknown: the commit did not answer")
        self.key = key


def attach(session: Session, origin: Origin) -> None:
    """The next write transaction on `session` acts for `origin`."""
    session.info[_ATTACHED] = origin


def attached(session: Session) -> Origin | None:
    found = session.info.get(_ATTACHED)
    return found if isinstance(found, Origin) else None


def receipt(origin: Origin) -> RequestReceipt:
    return RequestReceipt(key=origin.key[:KEY_LENGTH], at=origin.at)


def was_applied(
    sessions: sessionmaker[Session], key: str, *, until: float, pause: float = 0.1
) -> bool | None:
    """Whether the request `key` was committed, asked on fresh connections until the
    database answers or the monotonic instant `until` passes (then None: still unknown)."""
    while True:
        try:
            with sessions() as session, session.begin():
                found = session.scalar(
                    select(RequestReceipt.key).where(RequestReceipt.key == key[:KEY_LENGTH])
                )
            return found is not None
        except DBAPIError:
            if time.monotonic() + pause >= until:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


REPLAY_WINDOW = timedelta(minutes=10)  # Slack refuses requests older than 5 minutes


def forget_receipts(sessions: sessionmaker[Session], *, now: datetime) -> None:
    """Receipts older than the replay window can't match a request any more."""
    with sessions() as session, session.begin():  # one statement: no read-then-write
        session.execute(delete(RequestReceipt).where(RequestReceipt.at < now - REPLAY_WINDOW))
