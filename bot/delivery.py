"""Delivers outbox intents to Slack: the domain's changes made visible.

An intent names a kind and ids; the message is rendered here from the state
current at send time, so a retry never paints an old card over a newer one. The
request path calls `deliver(ids)` right after its commit; the periodic sweep retries
what is due (and a deferred intent asks the scheduler to wake it on time, `wake`).

The intents of one call are delivered as a batch: claimed in one statement, the
channel messages rendered from one read (each contract, snapshot, request, event and
card placement loaded once), sent in the order a person reads them — their own answer
first, then the cards, the announcements, reminders and direct messages (opened with
`conversations.open`) — then App Home, one `views.publish` per person however many of
their Home intents the batch holds, and marked sent in one statement. A failure is
handled per intent:

- a 429 defers that intent, and every other intent of that channel in this process,
  for Retry-After seconds, and wakes the sweep when it is over;
- a refused token (`token_revoked`, `invalid_auth`, `account_inactive`) holds the
  workspace, a channel that is gone (`channel_not_found`, `is_archived`,
  `not_in_channel`) holds the channel: their intents are parked, the refusal is
  checked again with backoff, and what waited is sent once it works (domain.outbox);
- a post that ended without an answer (a timeout, a dropped connection, a 5xx) may
  be in the channel: every post carries message metadata naming it, and a post that
  is tried again is first looked for in the channel's history, so it is never shown
  twice;
- other failures back off with jitter; after `max_attempts` the intent is
  dead-lettered, where an operator sees it (`milestone-bot outbox`).

Distribution (each workspace with its own token, bot.installs): an intent is sent
with the token of the installation that serves its workspace (`enterprise_id`,
`team_id`). In a Slack Connect channel the owning workspace's bot may not be a member:
when Slack answers `not_in_channel` or `channel_not_found`, every other installation's
bot is asked (`conversations.info`) and the first that is a member sends it. It is
remembered for the channel (`domain.outbox.remember_speaker`, a row per channel), so
later posts, and the updates of the cards it posted (Slack lets only a message's
poster edit it), go through it at once. When no installed workspace's bot is in the
channel, the channel is held with `NO_BOT_IN_CHANNEL`, checked again with backoff
like any channel hold, never retried in a loop.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.webhook import WebhookClient
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from domain import digest, disputes, ledger, notify, outbox, queries, reminders, snapshot
from domain.errors import NotFound
from domain.model import (
    ChangeRequest,
    Contract,
    Event,
    EventKind,
    IntentKind,
    Milestone,
    Notify,
    ReminderKind,
)
from domain.outbox import Claimed, Hold, Placement, Reservation, Speaker
from domain.policy import Clock
from domain.snapshot import ContractSnapshot
from domain.text import Said
from domain.waiting import WaitingKind, waiting_for, waiting_for_users
from handlers import blocks, replies
from handlers.blocks import home
from handlers.blocks.direct import build_digest, build_direct, build_direct_reminder
from handlers.blocks.ending import build_dispute_card, build_ending_card
from handlers.blocks.message import Message
from handlers.blocks.reminder import build_reminder

log = logging.getLogger(__name__)

# Slack errors that retrying cannot fix: dead-letter at once.
PERMANENT_ERRORS = frozenset(
    {"invalid_blocks", "msg_too_long", "missing_scope", "user_not_found", "no_text"}
)
# The workspace refuses our token, for now or for good: hold the workspace.
TOKEN_ERRORS = frozenset(
    {
        "token_revoked",
        "invalid_auth",
        "account_inactive",
        "token_expired",
        "not_authed",
        "not_installed",  # distribution: the workspace uninstalled the app (bot.installs)
    }
)
# The channel is gone or we are not in it: hold the channel.
CHANNEL_ERRORS = frozenset({"channel_not_found", "is_archived", "is_inactive", "not_in_channel"})
# Distribution: this installation's bot is not in the channel; another's may be.
NOT_A_MEMBER = frozenset({"channel_not_found", "not_in_channel"})
# The hold's reason when no installed workspace's bot is a member of the channel.
NO_BOT_IN_CHANNEL = "no_installed_bot_in_channel"

REPLY_TTL = timedelta(minutes=25)  # Slack's response_urls work for 30 minutes
LOOK_BACK = timedelta(minutes=10)  # how far before an intent its earlier post may be
METADATA_TYPE = "milestone_bot_post"
TEAM_CHECK = (5.0, 300.0)  # first and longest pause between token checks, seconds
CHANNEL_CHECK = (60.0, 3600.0)

# The order within a batch: the actor's answer, the cards, the news, reminders (thread
# replies, so after the cards), and App Home last.
_RANK = {
    IntentKind.REPLY: 0,
    IntentKind.REQUEST_CARD: 1,
    IntentKind.WORK_CARD: 1,
    IntentKind.ENDING_CARD: 1,
    IntentKind.DISPUTE_CARD: 1,
    IntentKind.CONTRACT_CARD: 1,
    IntentKind.ANNOUNCE: 2,
    IntentKind.REMINDER: 3,
    IntentKind.DIRECT: 3,
    IntentKind.DIRECT_REMINDER: 3,
    IntentKind.DIGEST: 3,
    IntentKind.HOME: 4,
}

_Send = Callable[[], object]
"""The Slack side of one rendered intent (or of one person's Home)."""
Wake = Callable[[datetime], None]
"""Asks the scheduler to sweep the outbox at that instant."""


class ClientFor(Protocol):
    """Distribution: the Web API client of the installation serving a workspace."""

    def __call__(self, team_id: str | None, *, enterprise_id: str | None = None) -> WebClient: ...


class Delivery:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: WebClient,
        clock: Clock,
        *,
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=30),
        base_backoff: float = 2.0,
        home_delay: float | None = None,
        wake: Wake | None = None,
    ) -> None:
        """`home_delay`: on the request path, App Home publishes wait this many seconds
        in a background thread, gathering what else changes for the same people in the
        meantime (None: published in the call, as the sweep always does). `wake`: how
        a deferred intent gets the sweep to run when its wait is over."""
        self.sessions = sessions
        self._client = client
        # Distribution: the client of the workspace an intent belongs to, and every
        # installation there is (bot.installs).
        self.client_for: ClientFor | None = None
        self.installations: Callable[[], list[Speaker]] | None = None
        # `PAYMENTS=ledger`: cards and Homes say the bot only records the money.
        self.record_only = True
        self._acting = threading.local()
        self._speakers: dict[str, Speaker] = {}  # channel -> who posts there (Slack Connect)
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease = lease
        self.base_backoff = base_backoff
        self.home_delay = home_delay
        self.wake = wake
        # Told after every commit and sweep that something may be queued besides Slack's
        # intents (webhooks: bot/webhooks.py); each returns at once, its work is its own.
        self.nudges: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._channel_blocked_until: dict[str, datetime] = {}
        self._dm_channels: dict[str, str] = {}  # person -> the app's DM channel with them
        self._stopping = threading.Event()
        self._homes = _HomeQueue(self)
        self._renderers: dict[IntentKind, Callable[[_Reads, Claimed], _Send | None]] = {
            IntentKind.REPLY: self._reply,
            IntentKind.CONTRACT_CARD: self._contract_card,
            IntentKind.REQUEST_CARD: self._request_card,
            IntentKind.WORK_CARD: self._work_card,
            IntentKind.ENDING_CARD: self._ending_card,
            IntentKind.DISPUTE_CARD: self._dispute_card,
            IntentKind.ANNOUNCE: self._announce,
            IntentKind.REMINDER: self._reminder,
            IntentKind.DIRECT: self._direct,
            IntentKind.DIRECT_REMINDER: self._direct_reminder,
            IntentKind.DIGEST: self._digest,
        }

    # --- entry points ---------------------------------------------------------------

    def deliver(self, ids: Sequence[int]) -> None:
        """Send these intents now (request path, right after the commit); with a
        `home_delay`, Home publishes follow shortly after, one per person."""
        for nudge in self.nudges:
            nudge()
        if not ids or self._stopping.is_set():
            return  # stopping: the sweep of the next process sends them
        now = self.clock()
        try:
            with self.sessions() as session:
                claims = outbox.claim_many(session, ids, now=now, lease=self.lease)
        except DBAPIError:
            # The change is committed and acked; only its delivery waits. The claim may
            # have been applied without an answer: give it back as soon as the database
            # answers, then deliver, rather than leave the person waiting for the lease.
            log.warning("the database stopped answering before delivery; retrying shortly")
            lease_until = now + self.lease

            def give_back(session: Session) -> None:
                outbox.give_back(session, ids, lease_until=lease_until, now=self.clock())

            self._when_database_answers(give_back, then=lambda: self.deliver(ids))
            return
        try:
            self._deliver(claims, later_homes=self.home_delay is not None)
        except DBAPIError:
            # The database stopped answering mid-delivery (reading what to render, say):
            # what is still claimed goes back as soon as it answers, and is delivered
            # then, rather than when the claims' lease runs out.
            log.warning("the database stopped answering during delivery; retrying shortly")
            leases = {claimed.lease_until for claimed in claims}

            def give_back_claims(session: Session) -> None:
                for lease_until in leases:
                    if lease_until is None:
                        continue
                    mine = [c.id for c in claims if c.lease_until == lease_until]
                    outbox.give_back(session, mine, lease_until=lease_until, now=self.clock())

            self._when_database_answers(give_back_claims, then=lambda: self.deliver(ids))
        except Exception:
            # Not a failed request: the change is committed and acked. What was not sent
            # is still in the outbox, claimed until its lease runs out; the sweep sends it.
            log.warning("delivery after the ack stopped; the sweep will finish it", exc_info=True)

    def sweep(self, *, limit: int = 50) -> int:
        """Check the holds that are due, then send what is due; returns how many
        intents were attempted."""
        for nudge in self.nudges:
            nudge()
        self._check_holds()
        attempted = 0
        while not self._stopping.is_set():
            with self.sessions() as session:
                claims = outbox.claim_due(session, now=self.clock(), lease=self.lease, limit=limit)
            if not claims:
                break
            self._deliver(claims)
            attempted += len(claims)
            if len(claims) < limit:
                break
        return attempted

    def close(self) -> None:
        """The process is stopping: publish the Homes still waiting for `home_delay` now,
        and take nothing new (what is left is due for the next sweep, of any process)."""
        self._stopping.set()
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

    # --- one batch -------------------------------------------------------------------

    def _deliver(self, claims: list[Claimed], *, later_homes: bool = False) -> None:
        if not claims:
            return  # sent already, or other senders hold them
        claims.sort(key=lambda claimed: _RANK[claimed.kind])
        batch = _Batch(claims)
        try:
            claims = self._drop_held(batch, claims)
            homes = [c for c in claims if c.kind == IntentKind.HOME]
            self._send_messages(batch, [c for c in claims if c.kind != IntentKind.HOME])
            if later_homes and homes:
                self._homes.put(homes)  # still claimed: now the Home thread's to send
                batch.settled(homes)
            else:
                self._publish_homes(batch, homes)
        finally:
            self._settle(batch)

    def _drop_held(self, batch: _Batch, claims: list[Claimed]) -> list[Claimed]:
        """Park the intents whose workspace or channel is held; the others go on."""
        scopes = {scope for claimed in claims for scope in claimed.scopes}
        with self.sessions() as session:
            held = outbox.held_scopes(session, scopes)
        if not held:
            return claims
        parked = [c for c in claims if any(scope in held for scope in c.scopes)]
        with self.sessions() as session:
            reason = "held: " + ", ".join(f"{scope} ({h.reason})" for scope, h in held.items())
            outbox.park(session, [c.id for c in parked], reason=reason)
        batch.settled(parked)
        return [c for c in claims if c not in parked]

    def _send_messages(self, batch: _Batch, claims: list[Claimed]) -> None:
        if not claims:
            return
        batch.working_on(claims)
        plans: list[tuple[Claimed, _Send | None]] = []
        with self.sessions() as session, session.begin():
            self._learn_speakers(session, claims)
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
            viewers = outbox.home_viewers(session, list(by_user))
            views = render_homes(
                session,
                [u for u in by_user if u in viewers],
                now=self.clock(),
                record_only=self.record_only,
            )
        # Nobody to show the others to: their Home is rendered when they first open it.
        batch.sent([c for user, group in by_user.items() if user not in viewers for c in group])
        for user_id, view in views.items():
            self._attempt(batch, by_user[user_id], self._publisher(user_id, view))

    def _publisher(self, user_id: str, view: View) -> _Send:
        return lambda: self.client.views_publish(user_id=user_id, view=view.to_dict())

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
                channel = _channel_of(claims[0])
                if channel is not None and channel in batch.nobody_in:  # found a moment ago
                    raise _NobodyInChannel(channel)
                self._send_as_speaker(claims[0], send)
        except _NobodyInChannel as nobody:
            batch.nobody_in.add(nobody.channel)
            for claimed in claims:
                if claimed.channel_id:
                    scope = outbox.channel_scope(claimed.channel_id)
                    self._hold(scope, NO_BOT_IN_CHANNEL, claimed, CHANNEL_CHECK)
                else:  # an answer in the channel (no hold matches it), as for any refusal
                    self._retry(claimed, at=self.clock(), error=NO_BOT_IN_CHANNEL, dead=True)
        except _Deferred as deferred:
            for claimed in claims:
                self._retry(claimed, at=deferred.until, error=deferred.reason, count_attempt=False)
            self._wake(deferred.until)
        except SlackApiError as error:
            self._slack_failure(claims, error)
        except (OSError, TimeoutError, http.client.HTTPException, _Failed) as error:
            # connection refused, reset, timed out; the post, if any, is looked for first
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
        error keeps its claim until the lease runs out, as a crashed sender's would.
        If the database stops answering here, that is done once it answers again."""
        sent, untouched, now = list(batch.sent_ids), batch.untouched(), self.clock()

        def settle(session: Session) -> None:
            if sent:
                outbox.mark_sent_many(session, sent, now=now)
            if untouched:
                outbox.unclaim(session, untouched, now=now)

        if not sent and not untouched:
            return
        try:
            with self.sessions() as session:
                settle(session)
        except DBAPIError:
            log.warning("the database stopped answering after a delivery; retrying shortly")
            self._when_database_answers(settle)

    def _when_database_answers(
        self, work: Callable[[Session], None], *, then: Callable[[], None] | None = None
    ) -> None:
        """Do `work` in a transaction of its own once the database answers again (tried
        in a background thread, backing off, for as long as a claim's lease: after that
        any sender's sweep takes the intents over), then `then`."""

        def attempt() -> None:
            pause, until = 0.2, time.monotonic() + self.lease.total_seconds()
            while not self._stopping.is_set():
                try:
                    with self.sessions() as session:
                        work(session)
                except DBAPIError:
                    if time.monotonic() + pause > until:
                        return
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                if then is not None:
                    then()
                return

        threading.Thread(target=attempt, name="outbox-retry", daemon=True).start()

    def _wake(self, at: datetime) -> None:
        if self.wake is not None:
            self.wake(at)

    # --- failures ----------------------------------------------------------------------

    def _slack_failure(self, claims: list[Claimed], error: SlackApiError) -> None:
        response = error.response
        code = str(response.get("error", "")) if response is not None else ""
        if response is not None and response.status_code == 429:
            # On time, not at the next sweep; the rest of this channel waits too.
            until = self.clock() + timedelta(seconds=_retry_after(response.headers))
            with self._lock:
                for claimed in claims:
                    if claimed.channel_id:
                        self._channel_blocked_until[claimed.channel_id] = until
            for claimed in claims:
                self._retry(claimed, at=until, error="ratelimited", count_attempt=False)
            self._wake(until + timedelta(seconds=random.uniform(0.0, 0.5)))
            return
        if code in TOKEN_ERRORS:
            for claimed in claims:
                if claimed.team_id:
                    self._hold(outbox.team_scope(claimed.team_id), code, claimed, TEAM_CHECK)
                else:
                    self._retry(claimed, at=self._backoff(claimed), error=code)
            return
        if code in CHANNEL_ERRORS:
            for claimed in claims:
                if claimed.channel_id:
                    scope = outbox.channel_scope(claimed.channel_id)
                    self._hold(scope, code, claimed, CHANNEL_CHECK)
                else:
                    self._retry(claimed, at=self.clock(), error=code, dead=True)
            return
        if code in PERMANENT_ERRORS:
            for claimed in claims:
                log.error("outbox %s (%s) dead-lettered: %s", claimed.id, claimed.kind, code)
                self._retry(claimed, at=self.clock(), error=code, dead=True)
            return
        for claimed in claims:
            self._retry(claimed, at=self._backoff(claimed), error=code or str(error))

    def _hold(self, scope: str, reason: str, claimed: Claimed, pauses: tuple[float, float]) -> None:
        now = self.clock()
        check_at = now + timedelta(seconds=pauses[0])
        with self.sessions() as session:
            new = outbox.hold(
                session, scope, reason=reason, now=now, check_at=check_at, parked=[claimed.id]
            )
        if new:
            log.warning("%s refuses our messages (%s): its deliveries wait", scope, reason)
            self._wake(check_at)

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

    def _check_channel(self, channel: str) -> None:
        with self._lock:
            until = self._channel_blocked_until.get(channel)
        if until is not None and until > self.clock():
            raise _Deferred(until, "channel rate-limited")

    # --- holds: is the refusal over? -------------------------------------------------

    def _check_holds(self) -> None:
        now = self.clock()
        with self.sessions() as session:
            due = outbox.claim_checks(session, now=now, lease=self.lease)
        for hold in due:
            refusal = self._refusal(hold)
            with self.sessions() as session:
                if refusal is None:
                    ids = outbox.release_hold(session, hold.scope, now=self.clock())
                    log.warning("%s works again: %s waiting intent(s) due", hold.scope, len(ids))
                    continue
                first, longest = TEAM_CHECK if hold.kind == "team" else CHANNEL_CHECK
                pause = min(longest, first * 2 ** max(0, hold.checks - 1))
                check_at = self.clock() + timedelta(seconds=pause * (0.8 + random.random() / 2))
                outbox.still_refused(session, hold.scope, reason=refusal, check_at=check_at)
            self._wake(check_at)

    @property
    def client(self) -> WebClient:
        """The Web API client of the workspace being delivered to: its own token in
        distribution, the one bot token otherwise."""
        if self.client_for is None:
            return self._client
        speaker = getattr(self._acting, "speaker", None) or Speaker(None, None)
        return self.client_for(speaker.team_id, enterprise_id=speaker.enterprise_id)

    @client.setter
    def client(self, client: WebClient) -> None:
        self._client = client

    @contextmanager
    def _acting_for(self, team_id: str | None, enterprise_id: str | None = None) -> Iterator[None]:
        with self._speaking_as(Speaker(enterprise_id, team_id)):
            yield

    @contextmanager
    def _speaking_as(self, speaker: Speaker) -> Iterator[None]:
        previous = getattr(self._acting, "speaker", None)
        self._acting.speaker = speaker
        try:
            yield
        finally:
            self._acting.speaker = previous

    def _refusal(self, hold: Hold) -> str | None:
        """What Slack says now about the held workspace or channel (None: all is well).
        In distribution, a channel whose speaker's bot is not in it is all well again
        as soon as any installation's bot is (it becomes the channel's speaker)."""
        if hold.kind == "team":
            with self._acting_for(hold.target):
                return self._refusal_now(hold)
        channel = hold.target
        owner = Speaker(None, self._team_of_channel(channel))
        speaker = owner
        if self._distributed:  # as remembered now (another process may have learnt it)
            with self.sessions() as session:
                speaker = outbox.speakers(session, [channel]).get(channel, owner)
        with self._speaking_as(speaker):
            refusal = self._refusal_now(hold)
        if refusal not in NOT_A_MEMBER or not self._distributed:
            return refusal
        member = self.find_member(channel, besides=speaker)
        return None if member is not None else NO_BOT_IN_CHANNEL

    # --- distribution: who posts in a Slack Connect channel -----------------------------

    @property
    def _distributed(self) -> bool:
        return self.client_for is not None and self.installations is not None

    def _learn_speakers(self, session: Session, claims: list[Claimed]) -> None:
        """Who posts in the channels of this batch, as remembered (read once a batch, so
        what another process learnt is used here too)."""
        if not self._distributed:
            return
        channels = {c for claimed in claims if (c := _channel_of(claimed))}
        found = outbox.speakers(session, channels)
        with self._lock:
            for channel in channels:
                if channel in found:
                    self._speakers[channel] = found[channel]
                else:
                    self._speakers.pop(channel, None)

    def _speaker_in(self, channel: str | None, *, owner: Speaker) -> Speaker:
        if channel is None or not self._distributed:
            return owner
        with self._lock:
            return self._speakers.get(channel, owner)

    def _send_as_speaker(self, claimed: Claimed, send: _Send) -> None:
        """Send with the token of whoever posts in the intent's channel (its workspace's
        installation, unless another was remembered there); if that bot is not a member,
        with the first other installation's that is, remembered from then on."""
        channel = _channel_of(claimed)
        owner = Speaker(claimed.enterprise_id, claimed.team_id or self._owner_team(claimed))
        speaker = self._speaker_in(channel, owner=owner)
        try:
            with self._speaking_as(speaker):
                send()
            return
        except SlackApiError as error:
            code = str(error.response.get("error", "")) if error.response is not None else ""
            if channel is None or code not in NOT_A_MEMBER or not self._distributed:
                raise
            member = self.find_member(channel, besides=speaker)
            if member is None:
                raise _NobodyInChannel(channel) from error
        with self._speaking_as(member):
            send()

    def find_member(self, channel_id: str, *, besides: Speaker | None = None) -> Speaker | None:
        """The first installation (other than `besides`) whose bot is a member of the
        channel, remembered as the channel's speaker; None if there is none (or in
        single-workspace mode)."""
        if not self._distributed:
            return None
        assert self.installations is not None
        for candidate in self.installations():
            if candidate == besides or (
                besides is not None
                and besides.enterprise_id is None
                and candidate.team_id == besides.team_id
            ):
                continue
            if self._is_member(candidate, channel_id):
                log.info(
                    "channel %s: the bot of %s posts there",
                    channel_id,
                    candidate.team_id or candidate.enterprise_id,
                )
                with self.sessions() as session:
                    outbox.remember_speaker(session, channel_id, candidate, now=self.clock())
                with self._lock:
                    self._speakers[channel_id] = candidate
                return candidate
        log.warning("channel %s: no installed workspace's bot is a member of it", channel_id)
        return None

    def bot_elsewhere(self, channel_id: str, *, team_id: str) -> bool:
        """Whether an installation other than `team_id`'s has its bot in the channel
        (a contract may live in a Slack Connect channel only the other side's bot is in)."""
        return self.find_member(channel_id, besides=Speaker(None, team_id)) is not None

    def _is_member(self, speaker: Speaker, channel_id: str) -> bool:
        with self._speaking_as(speaker):
            try:
                channel = self.client.conversations_info(channel=channel_id)["channel"]
            except (SlackApiError, OSError, TimeoutError, http.client.HTTPException):
                return False
        return bool(channel.get("is_member")) and not channel.get("is_archived")

    def _owner_team(self, claimed: Claimed) -> str | None:
        """A reply records no workspace: its channel's contracts tell (distribution)."""
        channel = _channel_of(claimed)
        if claimed.kind != IntentKind.REPLY or channel is None:
            return None
        return self._team_of_channel(channel)

    def _team_of_channel(self, channel_id: str) -> str | None:
        if self.client_for is None:
            return None
        with self.sessions() as session, session.begin():
            return session.scalar(
                select(Contract.team_id).where(Contract.channel_id == channel_id).limit(1)
            )

    def _refusal_now(self, hold: Hold) -> str | None:
        try:
            if hold.kind == "team":
                self.client.auth_test()
            else:
                channel = self.client.conversations_info(channel=hold.target)["channel"]
                if channel.get("is_archived"):
                    return "is_archived"
                if not channel.get("is_member", True):
                    return "not_in_channel"
        except SlackApiError as error:
            if error.response is not None and error.response.status_code == 429:
                return "ratelimited"
            return str(error.response.get("error", "")) or "error"
        except (OSError, TimeoutError, http.client.HTTPException) as error:
            return repr(error)[:100]
        return None

    # --- renderers: read in the batch's transaction, return what to send -----------------

    def _reply(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        """The actor's own answer: on the request's response_url, or as an ephemeral
        message in the channel a form came from."""
        if claimed.address is None:
            return None
        if self.clock() - claimed.created_at > REPLY_TTL:
            log.info("outbox %s: the answer is too old to send now", claimed.id)
            return None
        address = replies.decode(claimed.address)
        notice = blocks.build_notice(Said.from_json(claimed.body or ""))
        if address.response_url is not None:
            url = address.response_url

            def respond() -> None:
                reply = WebhookClient(url, timeout=self._client.timeout).send(
                    **notice.as_kwargs(), response_type="ephemeral", replace_original=False
                )
                if reply.status_code == 404:
                    log.info("outbox %s: the response_url expired", claimed.id)
                elif reply.status_code >= 400:
                    raise _Failed(f"response_url answered {reply.status_code}")

            return respond
        channel, user = address.channel_id or "", address.user_id or ""

        def ephemeral() -> None:
            self._check_channel(channel)
            self.client.chat_postEphemeral(channel=channel, user=user, **notice.as_kwargs())

        return ephemeral

    def _card(
        self, reads: _Reads, claimed: Claimed, subject: str, channel: str, message: Message
    ) -> _Send:
        reads.placement(subject)  # known before the transaction ends
        return lambda: self._upsert(claimed, subject, channel, message, reads.placements)

    def _upsert(
        self,
        claimed: Claimed,
        subject: str,
        channel: str,
        message: Message,
        placements: dict[str, Placement],
    ) -> None:
        """Post the card the first time; update it in place afterwards. `placements`:
        where cards live, read in the transaction that rendered it (and kept up to date
        by this batch's own posts)."""
        self._check_channel(channel)
        now = self.clock()
        placed = placements.get(subject)
        if placed is not None and placed.ts:
            try:
                self.client.chat_update(
                    channel=placed.channel_id, ts=placed.ts, **message.as_kwargs()
                )
                return
            except SlackApiError as error:
                if error.response.get("error") not in ("message_not_found", "cant_update_message"):
                    raise
                # Someone deleted the card, or (Slack Connect) another installation's bot
                # posted it and only it may edit it: post it again below.
                reservation = Reservation.FIRST
        else:
            with self.sessions() as session:
                reservation = outbox.reserve(
                    session, subject, channel_id=channel, now=now, stale_after=self.lease
                )
            if reservation == Reservation.BUSY:
                raise _Deferred(now + timedelta(seconds=2), "another sender is posting it")
        try:
            ts = None
            if reservation == Reservation.TAKEN_OVER or claimed.attempts > 1:
                ts = self._find_post(channel, subject, since=claimed.created_at)
            if ts is None:
                ts = self._post(channel, subject, message)
        except BaseException as error:
            with self.sessions() as session:
                if _maybe_applied(error):  # it may be in the channel: look before posting
                    outbox.abandon(session, subject, reserved_at=now)
                else:  # certainly not posted: the retry posts at once
                    outbox.release(session, subject, reserved_at=now)
            raise
        with self.sessions() as session:
            outbox.store(session, subject, channel_id=channel, ts=ts, now=self.clock())
        placements[subject] = Placement(channel, ts)

    def _post(
        self, channel: str, key: str, message: Message, *, thread_ts: str | None = None
    ) -> str:
        """Post a message that names itself in its metadata (`_find_post` finds it)."""
        response = self.client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            metadata={"event_type": METADATA_TYPE, "event_payload": {"post": key}},
            **message.as_kwargs(),
        )
        return str(response["ts"])

    def _find_post(
        self, channel: str, key: str, *, since: datetime, thread_ts: str | None = None
    ) -> str | None:
        """The ts of the message posted as `key` since about `since`, if an earlier
        attempt posted it although it got no answer."""
        oldest = f"{(since - LOOK_BACK).timestamp():.6f}"
        cursor = None
        for _ in range(10):  # at most 2,000 messages back
            if thread_ts is None:
                page = self.client.conversations_history(
                    channel=channel,
                    oldest=oldest,
                    limit=200,
                    include_all_metadata=True,
                    cursor=cursor,
                )
            else:
                page = self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=oldest,
                    limit=200,
                    include_all_metadata=True,
                    cursor=cursor,
                )
            for found in page.get("messages") or []:
                meta = found.get("metadata") or {}
                if (
                    meta.get("event_type") == METADATA_TYPE
                    and (meta.get("event_payload") or {}).get("post") == key
                ):
                    log.info("%s was posted already (%s): not posting it again", key, found["ts"])
                    return str(found["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def _contract_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        assert claimed.subject_id is not None
        snap = reads.snapshot(claimed.subject_id)
        message = blocks.build_contract_card(snap, now=self.clock(), record_only=self.record_only)
        subject = f"contract:{claimed.subject_id}"
        return self._card(reads, claimed, subject, snap.contract.channel_id, message)

    def _request_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        assert claimed.subject_id is not None
        request = reads.request(claimed.subject_id)
        contract = reads.contract(request.contract_id)
        message = blocks.build_request_card(contract, request, record_only=self.record_only)
        subject = f"request:{claimed.subject_id}"
        return self._card(reads, claimed, subject, contract.channel_id, message)

    def _work_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        contract, milestone = reads.work(claimed)
        dispute = disputes.dispute_of(reads.session, milestone.id)
        message = blocks.build_work_card(
            contract, milestone, dispute=dispute, record_only=self.record_only
        )
        return self._card(reads, claimed, _work_subject(milestone), contract.channel_id, message)

    def _ending_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        """The ending notice (subject: the contract), updated in place."""
        assert claimed.subject_id is not None
        contract = reads.contract(claimed.subject_id)
        milestone = _ending_milestone(reads.session, contract)
        dispute = None if milestone is None else disputes.dispute_of(reads.session, milestone.id)
        held = 0 if milestone is None else _held_when_ending(reads.session, contract, milestone)
        message = build_ending_card(contract, held_minor=held, milestone=milestone, dispute=dispute)
        subject = f"ending:{contract.id}"
        return self._card(reads, claimed, subject, contract.channel_id, message)

    def _dispute_card(self, reads: _Reads, claimed: Claimed) -> _Send:
        """A dispute and the split on the table (subject: the dispute), updated in place."""
        assert claimed.subject_id is not None
        dispute = disputes.load_dispute(reads.session, claimed.subject_id)
        contract = reads.contract(dispute.contract_id)
        milestone = next(m for m in contract.milestones if m.id == dispute.milestone_id)
        message = build_dispute_card(contract, milestone, dispute)
        subject = f"dispute:{dispute.id}"
        return self._card(reads, claimed, subject, contract.channel_id, message)

    def _announce(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        assert claimed.subject_id is not None
        event = reads.event(claimed.subject_id)
        contract = reads.contract(event.contract_id)
        message = blocks.build_announcement(contract, event, record_only=self.record_only)
        if message is None:
            return None
        channel = contract.channel_id
        key = f"outbox:{claimed.id}"

        def send() -> None:
            self._check_channel(channel)
            if claimed.attempts > 1 and self._find_post(channel, key, since=claimed.created_at):
                return
            self._post(channel, key, message)

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
            if item.kind == ReminderKind.DISPUTE:  # in the dispute card's thread
                dispute = disputes.dispute_of(session, milestone.id)
                subject = f"dispute:{dispute.id}" if dispute is not None else subject
        message = build_reminder(contract, item, request=request, milestone=milestone)
        channel = contract.channel_id
        key = f"outbox:{claimed.id}"

        def send() -> None:
            # Read now, not with the batch: the card may have been posted just before.
            with self.sessions() as session:
                placed = outbox.placement(session, subject)
            if placed is None or not placed.ts:
                raise _Deferred(self.clock() + timedelta(seconds=30), f"{subject} not posted yet")
            self._check_channel(channel)
            thread = placed.ts
            if claimed.attempts > 1 and self._find_post(
                placed.channel_id, key, since=claimed.created_at, thread_ts=thread
            ):
                return
            self._post(placed.channel_id, key, message, thread_ts=thread)

        return send

    # --- direct messages: domain.notify, domain.digest ---------------------------------

    def _direct(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        """Something now waits for the person: sent if it still does, and if they still
        want direct messages."""
        assert claimed.user_id is not None and claimed.subject_id is not None
        session, user_id = reads.session, claimed.user_id
        choice = notify.choice_of(session, user_id)
        if choice not in notify.DIRECT:
            log.info("outbox %s: %s no longer wants direct messages", claimed.id, user_id)
            return None
        try:
            kind = WaitingKind(claimed.body or "")
        except ValueError:
            log.warning("outbox %s: unknown waiting item %r", claimed.id, claimed.body)
            return None
        item = notify.still_waiting(
            session,
            user_id,
            kind,
            claimed.subject_id,
            contract_id=claimed.contract_id,
            now=self.clock(),
        )
        if item is None:
            log.info("outbox %s: %s no longer waits for %s", claimed.id, kind, user_id)
            return None
        return self._dm(claimed, build_direct(item, choice=choice))

    def _direct_reminder(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        """A reminder in the recipient's direct messages (domain.reminders)."""
        assert claimed.subject_id is not None
        session = reads.session
        item = reminders.load(session, claimed.subject_id)
        if not reminders.still_open(session, item, now=self.clock()):
            log.info("outbox %s: reminder %s was answered meanwhile", claimed.id, item.id)
            return None
        choice = notify.choice_of(session, item.recipient_id)
        if choice not in notify.DIRECT:
            return None
        contract = reads.contract(item.contract_id)
        request = milestone = None
        if item.kind == ReminderKind.REQUEST:
            request = reads.request(item.subject_id)
        else:
            milestone = queries.load_milestone(session, item.subject_id)
        message = build_direct_reminder(
            contract, item, request=request, milestone=milestone, choice=choice
        )
        return self._dm(claimed, message)

    def _digest(self, reads: _Reads, claimed: Claimed) -> _Send | None:
        """The morning digest: what waits for the person now (nothing: not sent)."""
        assert claimed.user_id is not None
        now, session = self.clock(), reads.session
        if now - claimed.created_at > digest.STALE_AFTER:
            log.info("outbox %s: the digest is too old to send now", claimed.id)
            return None
        if notify.choice_of(session, claimed.user_id) != Notify.DIGEST:
            return None
        items = waiting_for(session, claimed.user_id, now=now)
        if not items:
            return None
        return self._dm(claimed, build_digest(items))

    def _dm(self, claimed: Claimed, message: Message) -> _Send:
        """Post `message` in the app's direct messages with the person, opened with
        `conversations.open` (`im:write`). It is not looked for before a retry as channel
        posts are: reading a DM's history needs `im:history`, which the app does not ask
        for, so a post whose answer was lost may arrive twice."""
        assert claimed.user_id is not None
        user_id, key = claimed.user_id, f"outbox:{claimed.id}"

        def send() -> None:
            channel = self._open_dm(user_id)
            self._check_channel(channel)
            try:
                self._post(channel, key, message)
            except SlackApiError as error:
                code = str(error.response.get("error", ""))
                if code not in CHANNEL_ERRORS:
                    raise
                with self._lock:  # the channel we knew is gone: open it again next time
                    self._dm_channels.pop(user_id, None)
                raise _Failed(f"direct message channel {channel}: {code}") from error

        return send

    def _open_dm(self, user_id: str) -> str:
        """The app's DM channel with `user_id` (asked of Slack once per process)."""
        with self._lock:
            known = self._dm_channels.get(user_id)
        if known is not None:
            return known
        response = self.client.conversations_open(users=user_id)
        channel = str(response["channel"]["id"])
        with self._lock:
            self._dm_channels[user_id] = channel
        return channel


def _maybe_applied(error: BaseException) -> bool:
    """Whether a call that failed this way may nonetheless have been applied by Slack:
    it ended without an answer (a timeout, a connection dropped after sending) or with
    a server error. A refusal with an error code, or a connection never made, was not."""
    if isinstance(error, SlackApiError):
        return error.response is None or error.response.status_code >= 500
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return _maybe_applied(error.reason) if isinstance(error.reason, BaseException) else True
    if isinstance(error, ConnectionRefusedError | socket.gaierror):
        return False
    return isinstance(error, OSError | TimeoutError | http.client.HTTPException)


def publish_home(
    sessions: sessionmaker[Session],
    client: WebClient,
    user_id: str,
    *,
    now: datetime,
    page: int = 0,
    record_only: bool = True,
) -> None:
    """`user_id` opened their Home (or turned to `page` of it): render and publish it
    from current state, and keep it up to date from now on."""
    with sessions() as session:
        outbox.home_opened(session, user_id, now=now)
    with sessions() as session, session.begin():
        view = render_homes(session, [user_id], now=now, page=page, record_only=record_only)[
            user_id
        ]
    client.views_publish(user_id=user_id, view=view.to_dict())


def render_homes(
    session: Session,
    user_ids: Sequence[str],
    *,
    now: datetime,
    page: int = 0,
    record_only: bool = True,
) -> dict[str, View]:
    """The App Home of each of these people (at `page`, the first unless turned), from
    one read: every contract on their Homes (and its snapshot) is loaded once, however
    many of them are its parties; what waits for each is one query for all of them.
    `record_only` (`PAYMENTS=ledger`): say that the bot only records the money."""
    waiting = waiting_for_users(session, user_ids, now=now)
    totals = queries.count_contracts_of_users(session, user_ids)
    per_page = home.CONTRACTS_PER_PAGE
    if page > 0:
        contracts = {
            user: queries.contracts_of_user(session, user, limit=per_page, offset=page * per_page)
            for user in user_ids
        }
    else:
        contracts = queries.contracts_of_users(session, user_ids, limit=per_page)
    distinct = list({c.id: c for mine in contracts.values() for c in mine}.values())
    snaps = {snap.contract.id: snap for snap in snapshot.snapshots(session, distinct)}
    held = outbox.held_scopes(session, {outbox.channel_scope(c.channel_id) for c in distinct})
    unreachable = {hold.target: hold.reason for hold in held.values()}
    views: dict[str, View] = {}
    for user_id, mine in contracts.items():
        by_id = {c.id: c for c in mine}
        recent = [
            (by_id[e.contract_id], e)
            for e in queries.recent_events_for_user(session, user_id)
            if e.contract_id in by_id
        ]
        views[user_id] = home.build_home(
            user_id,
            [snaps[c.id] for c in mine],
            recent,
            now=now,
            unreachable=unreachable,
            waiting=waiting[user_id],
            page=page,
            contracts_total=totals[user_id],
            record_only=record_only,
        )
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
            try:
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
        # Distribution: channels no installed workspace's bot is in, found in this batch.
        self.nobody_in: set[str] = set()

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

        def subjects(kind: IntentKind) -> list[int]:
            return [c.subject_id for c in claims if c.kind == kind and c.subject_id is not None]

        self._requests = queries.load_requests(session, subjects(IntentKind.REQUEST_CARD))
        self._events = queries.load_events(session, subjects(IntentKind.ANNOUNCE))
        contract_ids = {c.contract_id for c in claims if c.contract_id is not None}
        contract_ids.update(r.contract_id for r in self._requests.values())
        contract_ids.update(e.contract_id for e in self._events.values())
        self._contracts = queries.load_contracts(session, sorted(contract_ids))
        carded = dict.fromkeys(subjects(IntentKind.CONTRACT_CARD))
        self._snapshots = {
            snap.contract.id: snap
            for snap in snapshot.snapshots(
                session, [self._contracts[i] for i in carded if i in self._contracts]
            )
        }
        cards = [f"contract:{i}" for i in carded]
        cards += [f"request:{i}" for i in subjects(IntentKind.REQUEST_CARD)]
        for claimed in claims:
            if claimed.kind == IntentKind.WORK_CARD:
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


def _ending_milestone(session: Session, contract: Contract) -> Milestone | None:
    """The milestone whose escrow the ending held: the one in progress, or (once the
    contract closed) the one refunded or settled when it closed."""
    if contract.in_progress is not None:
        return contract.in_progress
    ended = [
        m
        for m in contract.milestones
        if m.funded_at is not None and (m.refunded_at is not None or m.released_at is not None)
    ]
    return ended[-1] if ended else None


def _held_when_ending(session: Session, contract: Contract, milestone: Milestone) -> int:
    """What the ending held: held now, or the event's figure once it closed."""
    held = ledger.held_for_milestone(session, milestone.id)
    if held:
        return held
    for event in reversed(queries.history(session, contract.id)):
        if event.kind == EventKind.CONTRACT_ENDING:
            value = (event.data or {}).get("held_minor")
            return value if isinstance(value, int) else 0
    return 0


def _work_subject(milestone: Milestone) -> str:
    return f"work:{milestone.id}:{milestone.submission_count}"


def _channel_of(claimed: Claimed) -> str | None:
    """The channel an intent is shown in (a reply's: its address's, if any)."""
    if claimed.channel_id:
        return claimed.channel_id
    if claimed.kind == IntentKind.REPLY and claimed.address is not None:
        return replies.decode(claimed.address).channel_id
    return None


class _NobodyInChannel(Exception):
    """Distribution: no installed workspace's bot is a member of the channel."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"no installed workspace's bot is a member of {channel}")
        self.channel = channel


class _Failed(Exception):
    """A send that failed without a Slack error code (e.g. a response_url's HTTP status)."""


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
