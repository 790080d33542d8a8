"""Delivers outbox intents to Slack: the domain's changes made visible.

An intent names a kind and ids; the message is rendered here from the state
current at send time, so a retry never paints an old card over a newer one. The
request path calls `deliver(ids)` right after its commit (a click's card updates
within a second); the periodic sweep only retries. A 429 defers that channel for
Retry-After seconds without blocking other channels, 5xx and timeouts back off
with jitter, and after `max_attempts` the intent is dead-lettered.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session, sessionmaker

from domain import outbox, queries, reminders, snapshot
from domain.errors import NotFound
from domain.model import ReminderKind
from domain.outbox import Claimed
from domain.policy import Clock
from handlers.blocks import cards, home
from handlers.blocks.message import Message
from handlers.blocks.reminder import build_reminder

log = logging.getLogger(__name__)

# Slack errors that retrying cannot fix: dead-letter at once.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "msg_too_long",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "user_not_found",
    }
)


class Delivery:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: WebClient,
        clock: Clock,
        *,
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=60),
        base_backoff: float = 2.0,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease = lease
        self.base_backoff = base_backoff
        self._lock = threading.Lock()
        self._channel_blocked_until: dict[str, datetime] = {}
        self._renderers: dict[str, Callable[[Claimed], None]] = {
            "contract_card": self._contract_card,
            "request_card": self._request_card,
            "work_card": self._work_card,
            "announce": self._announce,
            "home": self._home,
            "reminder": self._reminder,
        }

    # --- entry points ---------------------------------------------------------------

    def deliver(self, ids: Sequence[int]) -> None:
        """Send these intents now (request path, right after the commit)."""
        for outbox_id in ids:
            self._process(outbox_id)

    def sweep(self, *, limit: int = 50) -> int:
        """Retry what is due; returns how many intents were attempted."""
        with self.sessions() as session:
            ids = outbox.due_ids(session, now=self.clock(), limit=limit)
        for outbox_id in ids:
            self._process(outbox_id)
        return len(ids)

    # --- one intent ------------------------------------------------------------------

    def _process(self, outbox_id: int) -> None:
        with self.sessions() as session:
            claimed = outbox.claim(session, outbox_id, now=self.clock(), lease=self.lease)
        if claimed is None:
            return  # sent already, or another sender holds it
        try:
            self._renderers[claimed.kind](claimed)
        except _Deferred as deferred:
            self._retry(claimed, at=deferred.until, error=deferred.reason, count_attempt=False)
        except SlackApiError as error:
            self._slack_failure(claimed, error)
        except (OSError, TimeoutError) as error:  # connection refused, reset, timed out
            self._retry(claimed, at=self._backoff(claimed), error=repr(error))
        except NotFound as error:
            # The subject vanished (nothing to show any more): done.
            log.info("outbox %s: %s", claimed.id, error.message)
            self._done(claimed)
        else:
            self._done(claimed)

    def _done(self, claimed: Claimed) -> None:
        with self.sessions() as session:
            outbox.mark_sent(session, claimed.id, now=self.clock())

    def _slack_failure(self, claimed: Claimed, error: SlackApiError) -> None:
        response = error.response
        code = str(response.get("error", "")) if response is not None else ""
        if response is not None and response.status_code == 429:
            retry_after = _retry_after(response.headers)
            until = self.clock() + timedelta(seconds=retry_after)
            channel = self._channel_of(claimed)
            if channel:
                with self._lock:
                    self._channel_blocked_until[channel] = until
            self._retry(claimed, at=until, error="ratelimited", count_attempt=False)
            return
        if code in PERMANENT_ERRORS:
            log.error("outbox %s (%s) dead-lettered: %s", claimed.id, claimed.kind, code)
            self._retry(claimed, at=self.clock(), error=code, dead=True)
            return
        self._retry(claimed, at=self._backoff(claimed), error=code or str(error))

    def _retry(
        self,
        claimed: Claimed,
        *,
        at: datetime,
        error: str,
        dead: bool = False,
        count_attempt: bool = True,
    ) -> None:
        dead = dead or (count_attempt and claimed.attempts >= self.max_attempts)
        if dead:
            log.error(
                "outbox %s (%s) gave up after %s attempts: %s",
                claimed.id,
                claimed.kind,
                claimed.attempts,
                error,
            )
        with self.sessions() as session:
            outbox.retry_later(
                session, claimed.id, at=at, error=error, dead=dead, count_attempt=count_attempt
            )

    def _backoff(self, claimed: Claimed) -> datetime:
        delay = min(300.0, self.base_backoff * 2 ** (claimed.attempts - 1))
        return self.clock() + timedelta(seconds=delay * (0.5 + random.random()))

    def _channel_of(self, claimed: Claimed) -> str | None:
        if claimed.contract_id is None or claimed.kind == "home":
            return None
        with self.sessions() as session, session.begin():
            return queries.load_contract(session, claimed.contract_id).channel_id

    def _check_channel(self, channel: str) -> None:
        with self._lock:
            until = self._channel_blocked_until.get(channel)
        if until is not None and until > self.clock():
            raise _Deferred(until, "channel rate-limited")

    # --- renderers ---------------------------------------------------------------------

    def _upsert(
        self, subject: str, channel: str, message: Message, placed: outbox.Placement | None
    ) -> None:
        """Post the message the first time; update it in place afterwards. `placed`: where
        it lives, read in the transaction that rendered it."""
        self._check_channel(channel)
        now = self.clock()
        reserved = False
        if placed is not None and placed.ts:
            try:
                self.client.chat_update(
                    channel=placed.channel_id, ts=placed.ts, **message.as_kwargs()
                )
                return
            except SlackApiError as error:
                if error.response.get("error") != "message_not_found":
                    raise
                # Someone deleted the card: post it again below.
        else:
            with self.sessions() as session:
                won = outbox.reserve(
                    session, subject, channel_id=channel, now=now, stale_after=self.lease
                )
            if not won:
                raise _Deferred(now + timedelta(seconds=2), "another sender is posting it")
            reserved = True
        try:
            response = self.client.chat_postMessage(channel=channel, **message.as_kwargs())
        except Exception:
            if reserved:  # not posted (or unknown): the retry must not wait out the lease
                with self.sessions() as session:
                    outbox.release(session, subject, reserved_at=now)
            raise
        with self.sessions() as session:
            outbox.store(
                session, subject, channel_id=channel, ts=str(response["ts"]), now=self.clock()
            )

    def _contract_card(self, claimed: Claimed) -> None:
        assert claimed.subject_id is not None
        with self.sessions() as session, session.begin():
            snap = snapshot.snapshot(session, claimed.subject_id)
            message = cards.build_contract_card(snap, now=self.clock())
            channel = snap.contract.channel_id
            subject = f"contract:{claimed.subject_id}"
            placed = outbox.placement(session, subject)
        self._upsert(subject, channel, message, placed)

    def _request_card(self, claimed: Claimed) -> None:
        assert claimed.subject_id is not None
        with self.sessions() as session, session.begin():
            request = queries.load_request(session, claimed.subject_id)
            contract = queries.load_contract(session, request.contract_id)
            message = cards.build_request_card(contract, request)
            channel = contract.channel_id
            subject = f"request:{claimed.subject_id}"
            placed = outbox.placement(session, subject)
        self._upsert(subject, channel, message, placed)

    def _work_card(self, claimed: Claimed) -> None:
        assert claimed.subject_id is not None
        with self.sessions() as session, session.begin():
            milestone = queries.load_milestone(session, claimed.subject_id)
            contract = queries.load_contract(session, milestone.contract_id)
            milestone = contract.milestone(milestone.number) or milestone
            message = cards.build_work_card(contract, milestone)
            subject = f"work:{milestone.id}:{milestone.submission_count}"
            channel = contract.channel_id
            placed = outbox.placement(session, subject)
        self._upsert(subject, channel, message, placed)

    def _announce(self, claimed: Claimed) -> None:
        assert claimed.subject_id is not None
        with self.sessions() as session, session.begin():
            event = queries.load_event(session, claimed.subject_id)
            contract = queries.load_contract(session, event.contract_id)
            message = cards.build_announcement(contract, event)
            channel = contract.channel_id
        if message is None:
            return
        self._check_channel(channel)
        self.client.chat_postMessage(channel=channel, **message.as_kwargs())

    def _reminder(self, claimed: Claimed) -> None:
        """A reply in the thread of the card the reminder concerns."""
        assert claimed.subject_id is not None
        with self.sessions() as session, session.begin():
            item = reminders.load(session, claimed.subject_id)
            if not reminders.still_open(session, item, now=self.clock()):
                log.info("outbox %s: reminder %s was answered meanwhile", claimed.id, item.id)
                return
            contract = queries.load_contract(session, item.contract_id)
            request = milestone = None
            if item.kind == ReminderKind.REQUEST:
                request = queries.load_request(session, item.subject_id)
                subject = f"request:{request.id}"
            else:
                milestone = queries.load_milestone(session, item.subject_id)
                subject = (
                    f"work:{milestone.id}:{milestone.submission_count}"
                    if item.kind == ReminderKind.REVIEW
                    else f"contract:{contract.id}"
                )
            message = build_reminder(contract, item, request=request, milestone=milestone)
            channel = contract.channel_id
        with self.sessions() as session:
            placed = outbox.placement(session, subject)
        if placed is None or not placed.ts:
            raise _Deferred(self.clock() + timedelta(seconds=30), f"{subject} not posted yet")
        self._check_channel(channel)
        self.client.chat_postMessage(
            channel=placed.channel_id, thread_ts=placed.ts, **message.as_kwargs()
        )

    def _home(self, claimed: Claimed) -> None:
        assert claimed.user_id is not None
        publish_home(self.sessions, self.client, claimed.user_id, now=self.clock())


def publish_home(
    sessions: sessionmaker[Session], client: WebClient, user_id: str, *, now: datetime
) -> None:
    """Render and publish one person's App Home from current state."""
    with sessions() as session, session.begin():
        contracts = queries.contracts_of_user(session, user_id)
        snaps = snapshot.snapshots(session, contracts)
        by_id = {c.id: c for c in contracts}
        recent = [
            (by_id[e.contract_id], e)
            for e in queries.recent_events_for_user(session, user_id)
            if e.contract_id in by_id
        ]
        view = home.build_home(user_id, snaps, recent, now=now)
    client.views_publish(user_id=user_id, view=view.to_dict())


class _Deferred(Exception):
    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


def _retry_after(headers: Any) -> float:
    raw: Any = None
    if headers:
        for key, value in dict(headers).items():
            if key.lower() == "retry-after":
                raw = value[0] if isinstance(value, list) else value
    try:
        return max(1.0, float(raw))
    except (TypeError, ValueError):
        return 1.0
