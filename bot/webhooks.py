"""Signed outgoing webhooks, the HTTP half: posts the deliveries domain/webhooks.py
queues, on a thread of their own, so a slow or dead receiver never delays Slack.

Each delivery is `POST <url>` with the event's JSON body and

    Milestone-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">

keyed with the endpoint's secret (docs/webhooks.md shows how to check it). The sender
runs on its own thread: the request path only wakes it (`nudge`, called by
`Delivery.deliver` after every commit), and it sleeps until the next delivery is due
or `poll_seconds` pass (deliveries written by other processes). A pass claims the due
rows (`FOR UPDATE SKIP LOCKED`, with a lease, so several processes share the work),
sends each endpoint's in order on a small pool of threads — one endpoint per thread,
so a hanging receiver holds only its own — and settles each: sent on a 2xx; otherwise
tried again with exponential backoff and jitter, and dead-lettered after
`max_attempts` tries (`milestone-bot webhooks log`). After a failure, the rest of that
endpoint's claims in the pass wait with it instead of each meeting the same timeout.

Delivery is at least once: a sender that dies between the receiver's 2xx and marking
the row sent leaves it to be sent again after its lease. The body's `id` is the same
every time, so receivers drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from bot.senders import QueueSender
from domain import webhooks
from domain.policy import Clock

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Milestone-Signature"
USER_AGENT = "milestone-bot-webhooks/1"
TIMEOUT = 5.0  # seconds to connect, and for each read of the answer
MAX_ATTEMPTS = 8  # then dead-lettered: about an hour after the first try, by default
BASE_BACKOFF = 30.0  # seconds before the second try; doubled each time (30 s … 32 min)
MAX_BACKOFF = 3600.0

Post = Callable[[str, bytes, dict[str, str], float], int]
"""Posts a body to a URL with headers and a timeout; the HTTP status."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Milestone-Signature` header value of `body` signed at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One POST with the standard library, no redirects followed, no proxies; the
    status. The answer's body is read (up to 64 KiB) and dropped."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(65536)
        return response.status
    finally:
        connection.close()


class WebhookSender(QueueSender):
    """Sends due webhook deliveries on its own thread (see the module's docstring)."""

    name = "webhook-sender"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        timeout: float = TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
        base_backoff: float = BASE_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        lease: timedelta = timedelta(minutes=5),
        poll_seconds: float = 30.0,
        endpoints_at_once: int = 4,
        batch: int = 50,
        post: Post = post_json,
        jitter: Callable[[], float] = lambda: random.uniform(1.0, 1.2),
    ) -> None:
        super().__init__(
            sessions,
            clock,
            poll_seconds=poll_seconds,
            base_backoff=base_backoff,
            max_backoff=max_backoff,
            jitter=jitter,
        )
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.lease = lease
        self.batch = batch
        self.post = post
        self._pool = ThreadPoolExecutor(endpoints_at_once, thread_name_prefix="webhook")

    def close(self, timeout: float = 5.0) -> None:
        """Stop: a post under way may finish within `timeout`; what is left stays queued
        for the next sender (claims not tried are given back)."""
        super().close(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def next_due(self, session: Session) -> datetime | None:
        return webhooks.next_due(session)

    # --- one pass --------------------------------------------------------------------

    def send_due(self) -> int:
        """Send everything due now; how many deliveries were tried."""
        tried = 0
        while not self.stopping:
            with self.sessions() as session:
                claims = webhooks.claim_due(
                    session, now=self.clock(), lease=self.lease, limit=self.batch
                )
            if not claims:
                break
            tried += self._send(claims)
            if len(claims) < self.batch:
                break
        return tried

    def _send(self, claims: list[webhooks.Claimed]) -> int:
        with self.sessions() as session:
            bodies = webhooks.bodies(session, {c.event_id for c in claims})
            webhooks.drop_orphans(session, [c.id for c in claims if c.event_id not in bodies])
        by_endpoint: dict[int, list[webhooks.Claimed]] = {}
        for claimed in claims:
            if claimed.event_id in bodies:
                by_endpoint.setdefault(claimed.endpoint_id, []).append(claimed)
        futures = [
            self._pool.submit(self._send_to_endpoint, group, bodies)
            for group in by_endpoint.values()
        ]
        return sum(future.result() for future in futures)

    def _send_to_endpoint(
        self, group: list[webhooks.Claimed], bodies: dict[int, dict[str, Any]]
    ) -> int:
        """One endpoint's deliveries, in order; after a failure the rest wait with it."""
        for index, claimed in enumerate(group):
            if self.stopping:
                self._put_back(group[index:], at=self.clock(), reason="sender stopped")
                return index
            ok = self._send_one(claimed, encode(bodies[claimed.event_id]))
            if not ok:
                rest = group[index + 1 :]
                if rest:
                    at = self.clock() + timedelta(seconds=self.backoff(claimed.attempts))
                    self._put_back(rest, at=at, reason=f"waiting: delivery {claimed.id} failed")
                return index + 1
        return len(group)

    def _send_one(self, claimed: webhooks.Claimed, body: bytes) -> bool:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature(claimed.secret, int(time.time()), body),
            "Milestone-Event-Id": f"evt_{claimed.event_id}",
            "Milestone-Delivery-Attempt": str(claimed.attempts),
        }
        status: int | None = None
        try:
            status = self.post(claimed.url, body, headers, self.timeout)
        except (OSError, http.client.HTTPException) as error:
            problem = f"{type(error).__name__}: {error}".rstrip(": ")
        else:
            if 200 <= status < 300:
                with self.sessions() as session:
                    webhooks.mark_sent(session, [claimed.id], status=status, now=self.clock())
                return True
            problem = f"HTTP {status}"
        dead = claimed.attempts >= self.max_attempts
        at = self.clock() + timedelta(seconds=self.backoff(claimed.attempts))
        log.info(
            "webhook delivery %s to endpoint %s failed (try %s): %s%s",
            claimed.id,
            claimed.endpoint_id,
            claimed.attempts,
            problem,
            "; dead-lettered" if dead else "",
        )
        with self.sessions() as session:
            webhooks.failed(session, claimed.id, at=at, error=problem, status=status, dead=dead)
        return False

    def _put_back(self, claims: list[webhooks.Claimed], *, at: datetime, reason: str) -> None:
        with self.sessions() as session:
            webhooks.put_back(session, [c.id for c in claims], at=at, reason=reason)
