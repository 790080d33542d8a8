"""Delivers outbox intents to Slack: the domain's changes made visible.

An intent names a kind and ids; the message is rendered here from the state
current at send time, so a retry never paints an old card over a newer one. The
request path calls `deliver(ids)` right after its commit (a click's card updates
within a second); the periodic sweep only retries. A 429 defers that channel for
Retry-After seconds without blocking other channels, 5xx and timeouts back off
with jitter, and after `max_attempts` the intent is dead-lettered.

The intents of one call are delivered as a batch: claimed in one statement, the
channel messages rendered from one read (each contract, snapshot, request, event and
card placement loaded once), sent with the card the person acted on first, then
announcements and reminders, then App Home — one `views.publish` per person however
many of their Home intents the batch holds — and marked sent in one statement. A
failure is still handled per intent: it alone is retried, dead-lettered or deferred.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from sqlalchemy.orm import Session, sessionmaker

from bot.turns import Turns
from domain import outbox, queries, reminders, snapshot
from domain.errors import NotFound
from domain.model import ChangeRequest, Contract, Event, Milestone, ReminderKind
from domain.outbox import Claimed, Placement
from domain.policy import Clock
from domain.snapshot import ContractSnapshot
from handlers.blocks import cards, home
from handlers.blocks.message import Message
from handlers.blocks.reminder import build_reminder
from handlers.blocks.serialize import to_dict

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


# The order within a batch: the card the person acted on first, then the news, then
# reminders (replies in a card's thread, so after the card), and App Home last.
_RANK = {
    "request_card": 0,
    "work_card": 0,
    "contract_card": 0,
    "announce": 1,
    "reminder": 2,
    "home": 3,
}

_Send = Callable[[], object]
"""The Slack side of one rendered intent (or of one person's Home)."""


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
        home_delay: float | None = None,
        turns: Turns | None = None,
    ) -> None:
        """`home_delay`: on the request path, App Home publishes wait this many seconds
        in a background thread, gathering what else changes for the same people in the
        meantime (None: published in the call, as the sweep always does). `turns`: the
        work process's (bot/turns.py), which that thread's passes take too."""
        self.sessions = sessions
        self.client = client
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease = lease
        self.base_backoff = base_backoff
        self._lock = threading.Lock()
        self._channel_blocked_until: dict[str, datetime] = {}
        self.home_delay = home_delay
        self.turns = turns
        self._homes = _HomeQueue(self)
        self._renderers: dict[str, Callable[[_Reads, Claimed], _Send | None]] = {
            "contract_card": self._contract_card,
            "request_card": self._request_card,
            "work_card": self._work_card,
            "announce": self._announce,
            "reminder": self._reminder,
        }

    # --- entry points ---------------------------------------------------------------

    def deliver(self, ids: Sequence[int]) -> None:
        """Send these intents now (request path, right after the commit); with a
        `home_delay`, Home publishes follow shortly after, one per person."""
        self._deliver(ids, later_homes=self.home_delay is not None)

    def sweep(self, *, limit: int = 50) -> int:
        """Retry what is due; returns how many intents were attempted."""
        with self.sessions() as session:
            ids = outbox.due_ids(session, now=self.clock(), limit=limit)
        self._deliver(ids)
        return len(ids)

    # --- one batch -------------------------------------------------------------------

    def _deliver(self, ids: Sequence[int], *, later_homes: bool = False) -> None:
        if not ids:
            return
        with self.sessions() as session:
            claims = outbox.claim_many(session, ids, now=self.clock(), lease=self.lease)
        if not claims:
            return  # sent already, or other senders hold them
        claims.sort(key=lambda claimed: _RANK.get(claimed.kind, _RANK["reminder"]))
        batch = _Batch(claims)
        homes = [c for c in claims if c.kind == "home"]
        try:
            self._send_messages(batch, [c for c in claims if c.kind != "home"])
            if later_homes and homes:
                self._homes.put(homes)  # still claimed: now the Home thread's to send
                batch.settled(homes)
            else:
                self._publish_homes(batch, homes)
        finally:
            self._settle(batch)

    def close(self) -> None:
        """Publish the Homes still waiting for `home_delay` now (the process is stopping)."""
        self._homes.close()

    def flush(self) -> None:
        """Publish the Homes still waiting for `home_delay` now, and wait for a publish
        already under way: afterwards nothing gathered so far is left to send."""
        self._homes.flush()

    def publish_gathered_homes(self, claims: list[Claimed]) -> None:
        """The Home thread's pass: every person's Home once, for all their intents."""
        batch = _Batch(claims)
        try:
            self._publish_homes(batch, claims)
        finally:
            self._settle(batch)

    def _send_messages(self, batch: _Batch, claims: list[Claimed]) -> None:
        if not claims:
            return
        batch.working_on(claims)
        plans: list[tuple[Claimed, _Send | None]] = []
        with self.sessions() as session, session.begin():
            reads = _Reads(session, claims)
            for claimed in claims:
                batch.working_on([claimed])
                plans.append((claimed, self._render(reads, claimed)))
        for claimed, send in plans:
            self._attempt(batch, [claimed], send)

    def _publish_homes(self, batch: _Batch, claims: list[Claimed]) -> None:
        """One `views.publish` per person: several Home intents of one person in a batch
        all show the same current state."""
        if not claims:
            return
        by_user: dict[str, list[Claimed]] = {}
        for claimed in claims:
            assert claimed.user_id is not None
            by_user.setdefault(claimed.user_id, []).append(claimed)
        batch.working_on(claims)
        with self.sessions() as session, session.begin():
            views = render_homes(session, list(by_user), now=self.clock())
        for user_id, group in by_user.items():
            self._attempt(batch, group, self._publisher(user_id, views[user_id]))

    def _publisher(self, user_id: str, view: View) -> _Send:
        return lambda: self.client.views_publish(user_id=user_id, view=to_dict(view))

    def _render(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        try:
            return self._renderers[claimed.kind](reads, claimed)
        except NotFound as error:
            # The subject vanished (nothing to show any more): done.
            log.info("outbox %s: %s", claimed.id, error.message)
            return None

    def _attempt(self, batch: _Batch, claims: list[Claimed], send: _Send | None) -> None:
        """Send one rendered message for `claims` (one intent, or one person's Homes) and
        settle each of them: sent, or retried on its own terms."""
        batch.working_on(claims)
        claims = self._still_ours(batch, claims)
        if not claims:
            return
        try:
            if send is not None:
                send()
        except _Deferred as deferred:
            for claimed in claims:
                self._retry(claimed, at=deferred.until, error=deferred.reason, count_attempt=False)
        except SlackApiError as error:
            for claimed in claims:
                self._slack_failure(claimed, error)
        except (OSError, TimeoutError) as error:  # connection refused, reset, timed out
            for claimed in claims:
                self._retry(claimed, at=self._backoff(claimed), error=repr(error))
        except NotFound as error:
            log.info("outbox %s: %s", claims[0].id, error.message)
            batch.sent(claims)
            return
        else:
            batch.sent(claims)
            return
        batch.settled(claims)

    def _still_ours(self, batch: _Batch, claims: list[Claimed]) -> list[Claimed]:
        """The claims to send now. A batch that has taken more than half the lease renews
        each claim first; one whose lease ran out and was taken by another sender is
        left to that sender."""
        now = self.clock()
        kept: list[Claimed] = []
        for claimed in claims:
            if claimed.lease_until is not None and claimed.lease_until - now <= self.lease / 2:
                with self.sessions() as session:
                    renewed = outbox.renew(session, claimed, now=now, lease=self.lease)
                if renewed is None:
                    log.info("outbox %s: its lease ran out and another sender has it", claimed.id)
                    batch.settled([claimed])
                    continue
                claimed = renewed
            kept.append(claimed)
        return kept

    def _settle(self, batch: _Batch) -> None:
        """Mark what was sent, in one statement. Claims the batch never reached (an
        unexpected error stopped it) are given back at once; the intent that met the
        error keeps its claim until the lease runs out, as a crashed sender's would."""
        if batch.sent_ids:
            with self.sessions() as session:
                outbox.mark_sent_many(session, batch.sent_ids, now=self.clock())
        untouched = batch.untouched()
        if untouched:
            with self.sessions() as session:
                outbox.unclaim(session, untouched, now=self.clock())

    # --- failures ----------------------------------------------------------------------

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

    # --- renderers: read in the batch's transaction, return what to send -----------------

    def _card(self, reads: _Reads, subject: str, channel: str, message: Message) -> _Send:
        reads.placement(subject)  # known before the transaction ends
        return lambda: self._upsert(subject, channel, message, reads.placements)

    def _upsert(
        self, subject: str, channel: str, message: Message, placements: dict[str, Placement]
    ) -> None:
        """Post the message the first time; update it in place afterwards. `placements`:
        where cards live, read in the transaction that rendered it (and kept up to date
        by this batch's own posts)."""
        self._check_channel(channel)
        now = self.clock()
        placed = placements.get(subject)
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
        ts = str(response["ts"])
        with self.sessions() as session:
            outbox.store(session, subject, channel_id=channel, ts=ts, now=self.clock())
        placements[subject] = Placement(channel, ts)

    def _contract_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        assert claimed.subject_id is not None
        snap = reads.snapshot(claimed.subject_id)
        message = cards.build_contract_card(snap, now=self.clock())
        return self._card(
            reads, f"contract:{claimed.subject_id}", snap.contract.channel_id, message
        )

    def _request_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        assert claimed.subject_id is not None
        request = reads.request(claimed.subject_id)
        contract = reads.contract(request.contract_id)
        message = cards.build_request_card(contract, request)
        return self._card(reads, f"request:{claimed.subject_id}", contract.channel_id, message)

    def _work_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        contract, milestone = reads.work(claimed)
        message = cards.build_work_card(contract, milestone)
        return self._card(reads, _work_subject(milestone), contract.channel_id, message)

    def _announce(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        assert claimed.subject_id is not None
        event = reads.event(claimed.subject_id)
        contract = reads.contract(event.contract_id)
        message = cards.build_announcement(contract, event)
        if message is None:
            return None
        channel = contract.channel_id

        def send() -> None:
            self._check_channel(channel)
            self.client.chat_postMessage(channel=channel, **message.as_kwargs())

        return send

    def _reminder(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        """A reply in the thread of the card the reminder concerns."""
        assert claimed.subject_id is not None
        session = reads.session
        item = reminders.load(session, claimed.subject_id)
        if not reminders.still_open(session, item, now=self.clock()):
            log.info("outbox %s: reminder %s was answered meanwhile", claimed.id, item.id)
            return None
        contract = reads.contract(item.contract_id)
        request = milestone = None
        if item.kind == ReminderKind.REQUEST:
            request = reads.request(item.subject_id)
            subject = f"request:{request.id}"
        else:
            milestone = queries.load_milestone(session, item.subject_id)
            subject = (
                _work_subject(milestone)
                if item.kind == ReminderKind.REVIEW
                else f"contract:{contract.id}"
            )
        message = build_reminder(contract, item, request=request, milestone=milestone)
        channel = contract.channel_id

        def send() -> None:
            # Read now, not with the batch: the card may have been posted just before.
            with self.sessions() as session:
                placed = outbox.placement(session, subject)
            if placed is None or not placed.ts:
                raise _Deferred(self.clock() + timedelta(seconds=30), f"{subject} not posted yet")
            self._check_channel(channel)
            self.client.chat_postMessage(
                channel=placed.channel_id, thread_ts=placed.ts, **message.as_kwargs()
            )

        return send


def publish_home(
    sessions: sessionmaker[Session], client: WebClient, user_id: str, *, now: datetime
) -> None:
    """Render and publish one person's App Home from current state."""
    with sessions() as session, session.begin():
        view = render_homes(session, [user_id], now=now)[user_id]
    client.views_publish(user_id=user_id, view=to_dict(view))


def render_homes(session: Session, user_ids: Sequence[str], *, now: datetime) -> dict[str, View]:
    """The App Home of each of these people, from one read: every contract on their
    Homes (and its snapshot) is loaded once, however many of them are its parties."""
    contracts = queries.contracts_of_users(session, user_ids)
    distinct = list({c.id: c for mine in contracts.values() for c in mine}.values())
    snaps = {snap.contract.id: snap for snap in snapshot.snapshots(session, distinct)}
    views: dict[str, View] = {}
    for user_id, mine in contracts.items():
        by_id = {c.id: c for c in mine}
        recent = [
            (by_id[e.contract_id], e)
            for e in queries.recent_events_for_user(session, user_id)
            if e.contract_id in by_id
        ]
        views[user_id] = home.build_home(user_id, [snaps[c.id] for c in mine], recent, now=now)
    return views


class _HomeQueue:
    """Home intents claimed on the request path, published by a background thread after
    `home_delay` seconds: a burst of changes for one person costs one `views.publish`,
    and the person who clicked is answered before anyone's Home is rendered. `close()`
    publishes what is gathered at once; if the process dies first, the claims expire
    and the sweep publishes them."""

    IDLE_EXIT = 30.0  # seconds without work before the thread ends

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._claims: list[Claimed] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._publishing = 0  # passes under way in the thread

    def put(self, claims: list[Claimed]) -> None:
        with self._ready:
            if not self._closed:
                self._claims.extend(claims)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="home", daemon=True)
                    self._thread.start()
                self._ready.notify()
                return
        self._delivery.publish_gathered_homes(claims)  # stopping: no more waiting

    def close(self) -> None:
        with self._ready:
            self._closed = True
            claims, self._claims = self._claims, []
            thread = self._thread
            self._ready.notify()
        if claims:
            self._delivery.publish_gathered_homes(claims)
        if thread is not None:
            thread.join(timeout=30)

    def flush(self) -> None:
        with self._ready:
            claims, self._claims = self._claims, []
        if claims:
            self._delivery.publish_gathered_homes(claims)
        with self._ready:
            self._ready.wait_for(lambda: self._publishing == 0, timeout=30)

    def _run(self) -> None:
        delay = self._delivery.home_delay or 0.0
        while True:
            with self._ready:
                if not self._ready.wait_for(
                    lambda: bool(self._claims) or self._closed, timeout=self.IDLE_EXIT
                ):
                    self._thread = None
                    return
                if self._closed:
                    return
                # Gather what else changes for the same people (close() cuts it short).
                self._ready.wait_for(lambda: self._closed, timeout=delay)
                claims, self._claims = self._claims, []
                if not claims:
                    continue  # close() or flush() took them
                self._publishing += 1
            turns = self._delivery.turns
            try:
                with turns.taken(first=False) if turns is not None else nullcontext():
                    self._delivery.publish_gathered_homes(claims)
            except Exception:  # noqa: BLE001 - the claims expire and the sweep retries
                log.exception("publishing %s App Home(s) failed", len(claims))
            finally:
                with self._ready:
                    self._publishing -= 1
                    self._ready.notify_all()


class _Batch:
    """The claims of one delivery pass and what became of each."""

    def __init__(self, claims: list[Claimed]) -> None:
        self._open = {claimed.id for claimed in claims}
        self._busy: set[int] = set()
        self.sent_ids: list[int] = []

    def working_on(self, claims: list[Claimed]) -> None:
        """These are being rendered or sent now: if an unexpected error stops the batch,
        they keep their claims."""
        self._busy = {claimed.id for claimed in claims}

    def sent(self, claims: list[Claimed]) -> None:
        self.sent_ids.extend(claimed.id for claimed in claims)
        self.settled(claims)

    def settled(self, claims: list[Claimed]) -> None:
        """Sent, or handed back to the outbox (retried, deferred, dead-lettered, lost)."""
        for claimed in claims:
            self._open.discard(claimed.id)
            self._busy.discard(claimed.id)

    def untouched(self) -> list[int]:
        """Claims never settled nor being worked on when the batch stopped."""
        return sorted(self._open - self._busy)


class _Reads:
    """What the channel messages of one batch show, read in one transaction: each
    contract, snapshot, change request and event loaded once, and where every card
    lives (one query each for the whole batch; anything else is loaded on demand)."""

    def __init__(self, session: Session, claims: list[Claimed]) -> None:
        self.session = session

        def subjects(kind: str) -> list[int]:
            return [c.subject_id for c in claims if c.kind == kind and c.subject_id is not None]

        self._requests = queries.load_requests(session, subjects("request_card"))
        self._events = queries.load_events(session, subjects("announce"))
        contract_ids = {c.contract_id for c in claims if c.contract_id is not None}
        contract_ids.update(r.contract_id for r in self._requests.values())
        contract_ids.update(e.contract_id for e in self._events.values())
        self._contracts = queries.load_contracts(session, sorted(contract_ids))
        carded = dict.fromkeys(subjects("contract_card"))
        self._snapshots = {
            snap.contract.id: snap
            for snap in snapshot.snapshots(
                session, [self._contracts[i] for i in carded if i in self._contracts]
            )
        }
        cards = [f"contract:{i}" for i in carded]
        cards += [f"request:{i}" for i in subjects("request_card")]
        for claimed in claims:
            if claimed.kind == "work_card":
                found = self._milestone_of(claimed)
                if found is not None:
                    cards.append(_work_subject(found[1]))
        self.placements: dict[str, Placement] = outbox.placements(session, cards)
        self._looked_up = set(cards)

    def contract(self, contract_id: int) -> Contract:
        found = self._contracts.get(contract_id)
        if found is None:
            found = self._contracts[contract_id] = queries.load_contract(self.session, contract_id)
        return found

    def snapshot(self, contract_id: int) -> ContractSnapshot:
        found = self._snapshots.get(contract_id)
        if found is None:
            [found] = snapshot.snapshots(self.session, [self.contract(contract_id)])
            self._snapshots[contract_id] = found
        return found

    def request(self, request_id: int) -> ChangeRequest:
        found = self._requests.get(request_id)
        if found is None:
            found = self._requests[request_id] = queries.load_request(self.session, request_id)
        return found

    def event(self, event_id: int) -> Event:
        found = self._events.get(event_id)
        if found is None:
            found = self._events[event_id] = queries.load_event(self.session, event_id)
        return found

    def work(self, claimed: Claimed) -> tuple[Contract, Milestone]:
        """The submitted milestone of a work card, as its contract shows it."""
        assert claimed.subject_id is not None
        found = self._milestone_of(claimed)
        if found is not None:
            return found
        milestone = queries.load_milestone(self.session, claimed.subject_id)
        contract = self.contract(milestone.contract_id)
        return contract, contract.milestone(milestone.number) or milestone

    def placement(self, subject: str) -> Placement | None:
        """Where the card lives (read once per batch; kept up to date by its posts)."""
        if subject not in self._looked_up:
            self._looked_up.add(subject)
            found = outbox.placement(self.session, subject)
            if found is not None:
                self.placements[subject] = found
        return self.placements.get(subject)

    def _milestone_of(self, claimed: Claimed) -> tuple[Contract, Milestone] | None:
        if claimed.contract_id is None or claimed.contract_id not in self._contracts:
            return None
        contract = self._contracts[claimed.contract_id]
        for milestone in contract.milestones:
            if milestone.id == claimed.subject_id:
                return contract, contract.milestone(milestone.number) or milestone
        return None


def _work_subject(milestone: Milestone) -> str:
    return f"work:{milestone.id}:{milestone.submission_count}"


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
