"""Stripe Connect with separate charges and transfers, behind `domain.payments`.

The client pays the platform through a Checkout Session (`checkout`); a release or a
bonus is a Transfer from the platform to the provider side's connected account
(`carry_out`); a refund gives back (part of) the PaymentIntents that funded the
milestone. Every call that moves money carries the ledger entry's key as Stripe's
`Idempotency-Key`, so a retry after a timeout, a crash or an outage never moves money
twice; every object carries the key in its metadata and the contract's
`transfer_group`, so `reconcile` can match Stripe's objects to the ledger.

Amounts come from our ledger in ISO 4217 minor units and are converted to the unit
Stripe expects for the currency (`to_stripe_amount`): the same for most currencies,
but Stripe counts ISK in hundredths although ISO gives it no decimals.

Secrets (the API key, the webhook secret) are held by the Stripe client only and never
appear in a message, a log line or a `repr`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import stripe

from domain.model import LedgerKind
from domain.money import minor_digits
from domain.payments import (
    Movement,
    PaymentsMode,
    ProviderRefused,
    ProviderUnavailable,
    Theirs,
)

#: Stripe's own zero-decimal currencies (docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
#: Three-decimal currencies (docs.stripe.com/currencies#three-decimal).
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
#: How long a signed webhook stays acceptable (replays older than this are refused).
WEBHOOK_TOLERANCE_SECONDS = 300
#: How long one call to Stripe may take before it counts as unavailable.
CALL_TIMEOUT_SECONDS = 20


class InvalidWebhook(Exception):
    """A webhook whose signature is missing, wrong or too old: refuse it (HTTP 400)."""


def stripe_digits(currency: str) -> int:
    """How many decimals Stripe's API amounts have in `currency`."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def _scale(amount: int, *, digits_from: int, digits_to: int, what: str) -> int:
    """`amount` in units of 10**-digits_from as units of 10**-digits_to, exactly."""
    if digits_to >= digits_from:
        return amount * int(10 ** (digits_to - digits_from))
    factor = int(10 ** (digits_from - digits_to))
    if amount % factor:
        raise ProviderRefused(f"{what} is not a whole amount in the other unit")
    return amount // factor


def to_stripe_amount(amount_minor: int, currency: str) -> int:
    """Our ISO minor units as Stripe's API amount (exact, or `ProviderRefused`)."""
    return _scale(
        amount_minor,
        digits_from=minor_digits(currency.upper()),
        digits_to=stripe_digits(currency),
        what=f"{amount_minor} minor units of {currency}",
    )


def from_stripe_amount(amount: int, currency: str) -> int:
    """Stripe's API amount as our ISO minor units (exact, or `ProviderRefused`)."""
    return _scale(
        amount,
        digits_from=stripe_digits(currency),
        digits_to=minor_digits(currency.upper()),
        what=f"Stripe's {amount} {currency}",
    )


@dataclass(frozen=True)
class CheckoutLink:
    session_id: str
    url: str


@dataclass(frozen=True)
class PayoutAccount:
    account_id: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool

    @property
    def ready(self) -> bool:
        return self.payouts_enabled and self.details_submitted


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook, reduced to what the domain acts on."""

    id: str
    type: str
    object_id: str
    ledger_key: str | None = None  # our metadata on the object
    payment_intent: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    account: PayoutAccount | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def _unavailable_or_refused(error: stripe.StripeError) -> Exception:
    """What a Stripe error means for the outbox: retry later, or give up."""
    status = error.http_status or 0
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError) or status >= 500:
        return ProviderUnavailable(f"Stripe is unavailable ({type(error).__name__}, {status})")
    if status == 409:  # an idempotent request still in flight
        return ProviderUnavailable("Stripe is still working on the same request")
    code = getattr(error, "code", None) or type(error).__name__
    return ProviderRefused(f"Stripe refused it: {code} ({error.user_message or status})")


class StripeConnect:
    """`PaymentsProvider` for `PAYMENTS=stripe`."""

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else {},
            max_network_retries=0,  # the outbox retries, with backoff, under the same key
            http_client=stripe.RequestsClient(timeout=timeout),
        )
        self._webhook_secret = webhook_secret

    def __repr__(self) -> str:
        return "StripeConnect(…)"  # never the secrets

    @property
    def mode(self) -> PaymentsMode:
        return PaymentsMode.STRIPE

    @property
    def moves_money(self) -> bool:
        return True

    # ----- payout accounts ---------------------------------------------------------------

    def open_payout_account(self, *, user_id: str, team_id: str) -> str:
        """A connected (Express) account for the provider side's person; one per person
        however often it is asked (the idempotency key is theirs)."""
        with _calling():
            account = self._client.v1.accounts.create(
                params={
                    "type": "express",
                    "capabilities": {"transfers": {"requested": True}},
                    "metadata": {"slack_user_id": user_id, "slack_team_id": team_id},
                },
                options={"idempotency_key": f"account:{team_id}:{user_id}"},
            )
        return str(account.id)

    def payout_link(self, account_id: str, *, refresh_url: str, return_url: str) -> str:
        """A one-time Account Link where the person finishes (or updates) onboarding."""
        with _calling():
            link = self._client.v1.account_links.create(
                params={
                    "account": account_id,
                    "type": "account_onboarding",
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                }
            )
        return str(link.url)

    def payout_account(self, account_id: str) -> PayoutAccount:
        with _calling():
            account = self._client.v1.accounts.retrieve(account_id)
        return _payout_account(account)

    # ----- the client pays --------------------------------------------------------------

    def checkout(
        self,
        movement: Movement,
        *,
        title: str,
        success_url: str,
        cancel_url: str,
        once: str | None = None,
    ) -> CheckoutLink:
        """A Checkout Session for a fund or top-up: the client pays the platform, and the
        PaymentIntent carries the contract's transfer group and the ledger key. The same
        `once` (the idempotency key: the payment's own, new for each attempt) opened
        twice is the same session."""
        if movement.kind not in (LedgerKind.FUND, LedgerKind.TOP_UP):
            raise ProviderRefused(f"{movement.key}: only a fund or a top-up is paid by checkout")
        metadata = _metadata(movement)
        with _calling():
            session = self._client.v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "client_reference_id": movement.key,
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": movement.currency.lower(),
                                "unit_amount": to_stripe_amount(
                                    movement.amount_minor, movement.currency
                                ),
                                "product_data": {"name": title[:250]},
                            },
                        }
                    ],
                    "payment_intent_data": {
                        "transfer_group": movement.group,
                        "metadata": metadata,
                    },
                    "metadata": metadata,
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                },
                options={"idempotency_key": f"checkout:{once or movement.key}"},
            )
        if not session.url:
            raise ProviderRefused(f"{movement.key}: Stripe gave the checkout session no URL")
        return CheckoutLink(session_id=str(session.id), url=str(session.url))

    # ----- money out ----------------------------------------------------------------------

    def carry_out(self, movement: Movement) -> str | None:
        """A release or a bonus: a Transfer to the provider side's account. A refund: a
        Refund of the PaymentIntents that paid for the milestone, newest first."""
        if movement.kind in (LedgerKind.RELEASE, LedgerKind.BONUS):
            return self._transfer(movement)
        if movement.kind == LedgerKind.REFUND:
            return self._refund(movement)
        raise ProviderRefused(f"{movement.key}: a fund is paid by the client through checkout")

    def _transfer(self, movement: Movement) -> str:
        if not movement.destination:
            raise ProviderRefused(f"{movement.key}: the provider side has no payout account")
        with _calling():
            transfer = self._client.v1.transfers.create(
                params={
                    "amount": to_stripe_amount(movement.amount_minor, movement.currency),
                    "currency": movement.currency.lower(),
                    "destination": movement.destination,
                    "transfer_group": movement.group,
                    "metadata": _metadata(movement),
                },
                options={"idempotency_key": movement.once},
            )
        return str(transfer.id)

    def _refund(self, movement: Movement) -> str:
        """Refunds of the payments, in order, until the movement's amount is given back.
        Refunds already made for this ledger key (a retry after a lost answer) count, so
        the retry never refunds twice."""
        if not movement.paid_with:
            raise ProviderRefused(f"{movement.key}: no payment to refund")
        left = to_stripe_amount(movement.amount_minor, movement.currency)
        made: list[str] = []
        refundable: list[tuple[int, str, int]] = []
        with _calling():
            for n, payment_intent in enumerate(movement.paid_with):
                intent = self._client.v1.payment_intents.retrieve(payment_intent)
                refunds = self._refunds_of(payment_intent)
                ours = [r for r in refunds if _ledger_key(r) == movement.key]
                made += [str(r["id"]) for r in ours]
                left -= sum(int(r["amount"]) for r in ours)
                taken = sum(int(r["amount"]) for r in refunds)
                refundable.append((n, payment_intent, _received(intent) - taken))
        for n, payment_intent, available in refundable:
            amount = min(left, available)
            if amount <= 0:
                continue
            with _calling():
                refund = self._client.v1.refunds.create(
                    params={
                        "payment_intent": payment_intent,
                        "amount": amount,
                        "metadata": _metadata(movement),
                    },
                    options={"idempotency_key": f"{movement.once}:{n}"},
                )
            made.append(str(refund.id))
            left -= amount
        if left > 0:
            raise ProviderRefused(f"{movement.key}: the payments hold less than the refund")
        return ",".join(made)

    def _refunds_of(self, payment_intent: str) -> list[stripe.Refund]:
        """The refunds of a payment that give money back (not failed or canceled ones)."""
        listed = self._client.v1.refunds.list(params={"payment_intent": payment_intent})
        return [
            r
            for r in listed.auto_paging_iter()
            if _plain(r).get("status") not in ("failed", "canceled")
        ]

    # ----- what Stripe holds, for reconcile ------------------------------------------------

    def objects_of(
        self, contract_id: int, *, payment_intents: tuple[str, ...] = ()
    ) -> list[Theirs]:
        """The transfers of the contract's transfer group, and the given payments with
        their refunds."""
        group = f"contract-{contract_id}"
        found: list[Theirs] = []
        with _calling():
            transfers = self._client.v1.transfers.list(params={"transfer_group": group})
            for transfer in transfers.auto_paging_iter():
                currency = str(transfer.currency).upper()
                found.append(
                    Theirs(
                        id=str(transfer.id),
                        kind="transfer",
                        ledger_key=_ledger_key(transfer),
                        amount_minor=from_stripe_amount(int(transfer.amount), currency),
                        currency=currency,
                        reversed_minor=from_stripe_amount(
                            int(transfer.amount_reversed or 0), currency
                        ),
                    )
                )
            for payment_intent in payment_intents:
                intent = self._client.v1.payment_intents.retrieve(payment_intent)
                currency = str(intent.currency).upper()
                received = _received(intent)
                found.append(
                    Theirs(
                        id=str(intent.id),
                        kind="payment",
                        ledger_key=_ledger_key(intent),
                        amount_minor=from_stripe_amount(received, currency),
                        currency=currency,
                    )
                )
                for refund in self._refunds_of(payment_intent):
                    found.append(
                        Theirs(
                            id=str(refund.id),
                            kind="refund",
                            ledger_key=_ledger_key(refund),
                            amount_minor=from_stripe_amount(int(refund.amount), currency),
                            currency=currency,
                        )
                    )
        return found

    # ----- webhooks -----------------------------------------------------------------------

    def read_webhook(self, payload: bytes, signature: str | None) -> ProviderEvent:
        """The event a webhook carries, once its `Stripe-Signature` is checked (and is at
        most five minutes old); `InvalidWebhook` otherwise."""
        if not signature:
            raise InvalidWebhook("no Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"),
                signature,
                self._webhook_secret,
                tolerance=WEBHOOK_TOLERANCE_SECONDS,
            )
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as error:
            raise InvalidWebhook(f"webhook refused: {type(error).__name__}") from None
        return _provider_event(event)


# ----- helpers -----------------------------------------------------------------------------


@contextmanager
def _calling() -> Iterator[None]:
    """Around a call to Stripe: its errors become the port's."""
    try:
        yield
    except stripe.StripeError as error:
        raise _unavailable_or_refused(error) from None


def _metadata(movement: Movement) -> dict[str, str]:
    metadata = {"ledger_key": movement.key, "contract_id": str(movement.contract_id)}
    if movement.milestone_id is not None:
        metadata["milestone_id"] = str(movement.milestone_id)
    return metadata


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object's fields as a plain dict (a `StripeObject` is not a mapping)."""
    plain: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return plain


def _received(obj: Any) -> int:
    """What a PaymentIntent took from the client, in Stripe's unit."""
    intent = _plain(obj)
    received = intent.get("amount_received")
    if received is None:  # servers that leave the field out
        received = intent.get("amount") if intent.get("status") == "succeeded" else 0
    return int(received or 0)


def _ledger_key(obj: Any) -> str | None:
    """Our ledger key in a Stripe object's metadata (a `StripeObject` is a dict)."""
    metadata = _plain(obj).get("metadata") or {}
    key = metadata.get("ledger_key")
    return str(key) if key else None


def _payout_account(obj: Any) -> PayoutAccount:
    account = _plain(obj)
    return PayoutAccount(
        account_id=str(account["id"]),
        charges_enabled=bool(account.get("charges_enabled")),
        payouts_enabled=bool(account.get("payouts_enabled")),
        details_submitted=bool(account.get("details_submitted")),
    )


def _provider_event(event: Mapping[str, Any]) -> ProviderEvent:
    try:
        event_id = str(event["id"])
        kind = str(event["type"])
        obj = event["data"]["object"]
        object_id = str(obj["id"])
    except (KeyError, TypeError):
        raise InvalidWebhook("webhook refused: not a Stripe event") from None
    metadata = obj.get("metadata") or {}
    currency = str(obj["currency"]).upper() if obj.get("currency") else None
    amount = _event_amount(kind, obj)
    payment_intent = obj.get("payment_intent")
    if kind.startswith("payment_intent."):
        payment_intent = object_id
    return ProviderEvent(
        id=event_id,
        type=kind,
        object_id=object_id,
        ledger_key=metadata.get("ledger_key") or obj.get("client_reference_id"),
        payment_intent=str(payment_intent) if payment_intent else None,
        amount_minor=from_stripe_amount(amount, currency) if currency and amount else None,
        currency=currency,
        account=_payout_account(obj) if kind == "account.updated" else None,
        raw=event,
    )


def _event_amount(kind: str, obj: Mapping[str, Any]) -> int | None:
    for name in ("amount_total", "amount_received", "amount"):
        value = obj.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
