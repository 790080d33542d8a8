"""`PAYMENTS=stripe` wired in: the payments sender, the provider's webhooks, and the
pay and payout links people open in a browser.

- `PaymentsSender` carries out the movements the ledger queued
  (`domain.payments.claim_movements`) on its own thread, like the webhook sender: each
  under the idempotency key fixed when it was queued (its ledger key and a random
  part), retried with backoff while Stripe is down (a retry never moves money twice),
  a refusal kept as failed for the operator. A slow or absent Stripe never delays
  Slack delivery.
- `PaymentsFront` serves `POST /stripe/webhook` (signature checked with a five-minute
  tolerance, the event applied once per event id, answered 2xx only after the commit;
  an error answers 500 so Stripe sends it again), `GET /pay/<token>` (the client's own
  link: a Checkout Session is made when they open it, not in Slack's three seconds) and
  `GET /payouts/<token>` (the provider side's Stripe Connect onboarding).
"""

from __future__ import annotations

import html
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.senders import QueueSender
from domain import payments
from domain.model import PaymentState
from domain.payments import Movement, ProviderRefused, ProviderUnavailable
from domain.policy import Clock, Policy
from domain.services import payments as paying
from payments.stripe_connect import InvalidWebhook, ProviderEvent, StripeConnect

log = logging.getLogger(__name__)

BASE_BACKOFF = 5.0  # seconds before the second try; doubling after each failure
MAX_BACKOFF = 600.0  # never wait longer than this between tries

#: Events that confirm a payment, that fail one, and that reverse a paid one.
CONFIRMING = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "payment_intent.succeeded",
    }
)
FAILING = frozenset({"payment_intent.payment_failed", "checkout.session.async_payment_failed"})
REFUNDING = frozenset({"charge.refunded", "refund.created", "charge.refund.updated"})
DISPUTING = frozenset({"charge.dispute.created"})


class PaymentsSender(QueueSender):
    """Carries out due movements on its own thread (see the module's docstring)."""

    name = "payments-sender"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        provider: StripeConnect,
        *,
        poll_seconds: float = 30.0,
        # Longer than one call to Stripe may take (its timeout): a claim of a process
        # that died is taken over after it.
        lease: timedelta = timedelta(minutes=1),
        base_backoff: float = BASE_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
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
        self.provider = provider
        self.lease = lease

    def next_due(self, session: Session) -> datetime | None:
        return payments.next_movement_due(session)

    def send_due(self) -> int:
        """Carry out every movement due now; how many were tried."""
        tried = 0
        while not self.stopping:
            with self.sessions() as session:
                claims = payments.claim_movements(session, now=self.clock(), lease=self.lease)
            if not claims:
                break
            for claimed in claims:
                self._carry_out(claimed)
                tried += 1
        return tried

    def _carry_out(self, claimed: payments.Claimed) -> None:
        now = self.clock()
        if claimed.movement is None:  # it cannot go yet: look again later, uncounted
            with self.sessions() as session:
                payments.movement_later(
                    session,
                    claimed.id,
                    at=now + payments.NO_ACCOUNT_WAIT,
                    reason=claimed.waiting or "waiting",
                    counted=False,
                )
            return
        movement: Movement = claimed.movement
        try:
            ref = self.provider.carry_out(movement)
        except ProviderUnavailable as error:
            at = now + timedelta(seconds=self.backoff(claimed.attempts))
            log.info("%s: try %s failed, again later: %s", movement.key, claimed.attempts, error)
            with self.sessions() as session:
                payments.movement_later(session, claimed.id, at=at, reason=str(error))
            return
        except ProviderRefused as error:
            log.error("%s: refused by the provider: %s", movement.key, error)
            with self.sessions() as session:
                payments.movement_refused(session, claimed.id, reason=str(error))
            return
        with self.sessions() as session:
            payments.movement_sent(session, claimed.id, ref=ref, now=self.clock())


@dataclass(frozen=True)
class Page:
    """An HTTP answer of the payments routes: a page, JSON, or a redirect."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, title: str, message: str) -> Page:
        body = (
            "<!doctype html><meta charset=utf-8><meta name=viewport "
            'content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(title)}</title>"
            '<body style="font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:3em auto;'
            f'padding:0 1em"><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>'
        )
        return cls(status, body.encode(), (("Content-Type", "text/html; charset=utf-8"),))

    @classmethod
    def redirect(cls, url: str) -> Page:
        return cls(303, b"", (("Location", url), ("Cache-Control", "no-store")))

    @classmethod
    def json(cls, status: int, text: str) -> Page:
        body = ('{"received": true}' if status < 300 else f'{{"error": "{text}"}}').encode()
        return cls(status, body, (("Content-Type", "application/json"),))


UNAVAILABLE = Page.text(
    503, "Stripe can't be reached", "Stripe can't be reached just now; open the link again."
)


class PaymentsFront:
    """The payments routes of `serve`'s HTTP front end (bot/server.py routes to it)."""

    WEBHOOK_PATH = "/stripe/webhook"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        provider: StripeConnect,
        *,
        public_url: str,
        policy: Policy,
        nudge: Callable[[], None] = lambda: None,
        tell: Callable[[Sequence[int]], object] = lambda ids: None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.provider = provider
        self.public_url = public_url.rstrip("/")
        self.policy = policy
        self.nudge = nudge  # the payments sender: a movement may be due
        self.tell = tell  # Slack delivery of what the event changed (returns at once)

    def wants_body(self, method: str, path: str) -> bool:
        return method == "POST" and path == self.WEBHOOK_PATH

    def handles(self, method: str, path: str) -> bool:
        return self.wants_body(method, path) or (
            method == "GET" and (path.startswith("/pay/") or path.startswith("/payouts/"))
        )

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Page:
        if self.wants_body(method, path):
            return self.webhook(body, headers.get("stripe-signature"))
        if path in ("/pay/done", "/payouts/done"):
            return _done(path)
        if path.startswith("/pay/"):
            return self.pay(path.removeprefix("/pay/"))
        return self.payouts(path.removeprefix("/payouts/"))

    # --- POST /stripe/webhook -----------------------------------------------------------

    def webhook(self, body: bytes, signature: str | None) -> Page:
        try:
            event = self.provider.read_webhook(body, signature)
        except InvalidWebhook as error:
            log.warning("stripe webhook refused: %s", error)
            return Page.json(400, "invalid signature")
        try:
            with self.sessions() as session:
                received = self._apply(session, event)
        except Exception:  # noqa: BLE001 - not committed: Stripe sends it again
            log.exception("stripe webhook %s (%s) not applied", event.id, event.type)
            return Page.json(500, "not applied")
        log.info("stripe webhook %s (%s): %s", event.id, event.type, received.note)
        if received.applied:
            self.nudge()
            self.tell(received.outbox_ids)
        return Page.json(200, "")

    def _apply(self, session: Session, event: ProviderEvent) -> paying.Received:
        now, kind, raw = self.clock(), event.type, _object(event)
        common: dict[str, Any] = {"webhook_id": event.id, "webhook_type": kind, "now": now}
        if kind in CONFIRMING and _paid(kind, raw):
            return paying.payment_confirmed(
                session,
                ledger_key=event.ledger_key,
                payment_intent=event.payment_intent,
                amount_minor=event.amount_minor,
                currency=event.currency,
                policy=self.policy,
                **common,
            )
        if kind in FAILING:
            error = raw.get("last_payment_error") or {}
            return paying.payment_failed(
                session,
                ledger_key=event.ledger_key,
                payment_intent=event.payment_intent,
                reason=str(error.get("message") or error.get("code") or kind),
                policy=self.policy,
                **common,
            )
        if kind in REFUNDING and not paying.made_by_us(session, _refund_keys(raw)):
            return paying.payment_reversed(
                session,
                payment_intent=event.payment_intent,
                reason="the payment was refunded outside the bot",
                policy=self.policy,
                **common,
            )
        if kind in DISPUTING:
            return paying.payment_reversed(
                session,
                payment_intent=event.payment_intent,
                reason="the client disputed the card payment with their bank",
                policy=self.policy,
                **common,
            )
        if kind == "account.updated" and event.account is not None:
            return paying.account_updated(
                session, account_id=event.account.account_id, ready=event.account.ready, **common
            )
        return paying.event_received(session, **common)

    # --- GET /pay/<token> ---------------------------------------------------------------

    def pay(self, token: str) -> Page:
        with self.sessions() as session:
            asked = paying.to_pay(session, token)
        if asked is None:
            return Page.text(
                404,
                "This link has expired",
                "This pay link is not valid any more. Fund the milestone again in Slack "
                "for a new one.",
            )
        if asked.state == PaymentState.PAID:
            return Page.text(200, "Already paid", "This milestone is paid. Thank you!")
        if asked.state != PaymentState.PENDING:
            return Page.text(
                410,
                "This payment can't be made",
                f"This payment {asked.state.value}"
                f"{': ' + asked.note if asked.note else ''}. Fund the milestone again "
                "in Slack for a new link.",
            )
        try:
            link = self.provider.checkout(
                asked.movement,
                title=asked.title,
                success_url=f"{self.public_url}/pay/done",
                cancel_url=f"{self.public_url}/pay/{token}",
                once=asked.once,
            )
        except ProviderUnavailable:
            return UNAVAILABLE
        except ProviderRefused as error:
            log.error("checkout for %s refused: %s", asked.movement.key, error)
            return Page.text(502, "Stripe refused the payment", str(error))
        with self.sessions() as session:
            paying.record_checkout(session, token=token, checkout_session=link.session_id)
        return Page.redirect(link.url)

    # --- GET /payouts/<token> -----------------------------------------------------------

    def payouts(self, token: str) -> Page:
        with self.sessions() as session:
            account = paying.payout_account_by_token(session, token)
            if account is None:
                return Page.text(
                    404,
                    "This link has expired",
                    "Run /milestone payouts in Slack for a new link.",
                )
            account_id, user_id, team_id = account.account_id, account.user_id, account.team_id
        try:
            if account_id is None:
                account_id = self.provider.open_payout_account(
                    user_id=user_id, team_id=team_id or ""
                )
                with self.sessions() as session:
                    paying.record_payout_account(
                        session, token=token, account_id=account_id, now=self.clock()
                    )
            url = self.provider.payout_link(
                account_id,
                refresh_url=f"{self.public_url}/payouts/{token}",
                return_url=f"{self.public_url}/payouts/done",
            )
        except ProviderUnavailable:
            return UNAVAILABLE
        except ProviderRefused as error:
            log.error("payout onboarding refused: %s", error)
            return Page.text(502, "Stripe refused", str(error))
        return Page.redirect(url)


def _done(path: str) -> Page:
    if path == "/pay/done":
        return Page.text(
            200,
            "Thank you",
            "Stripe has your payment. The milestone is funded, and everyone told in Slack, "
            "as soon as Stripe confirms it — usually within seconds.",
        )
    return Page.text(
        200,
        "Payout details saved",
        "Stripe has your details. Run /milestone payouts in Slack to see whether you can "
        "be paid; releases waiting for your account go as soon as Stripe says so.",
    )


def _object(event: ProviderEvent) -> Mapping[str, Any]:
    data = event.raw.get("data") or {}
    obj = data.get("object") if isinstance(data, Mapping) else None
    return obj if isinstance(obj, Mapping) else {}


def _refund_keys(obj: Mapping[str, Any]) -> list[str | None]:
    """The ledger keys of the refunds an event shows: a refund's own, or those a charge
    lists (none listed: not provably ours)."""
    refunds = obj.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, Mapping) else None
    found = [obj] if obj.get("object") == "refund" else list(listed or [])
    return [(r.get("metadata") or {}).get("ledger_key") or None for r in found]


def _paid(kind: str, obj: Mapping[str, Any]) -> bool:
    """A completed Checkout Session may still be waiting for an asynchronous payment."""
    if kind == "checkout.session.completed":
        return obj.get("payment_status") in ("paid", "no_payment_required")
    return True
