"""The Stripe Connect adapter over real HTTP: stripe-python against localstripe and the
fake of what it lacks (tests/payments/fake_stripe.py), both started here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from domain.model import LedgerKind
from domain.payments import Movement, PaymentsProvider, ProviderRefused, ProviderUnavailable
from payments.stripe_connect import (
    InvalidWebhook,
    ProviderEvent,
    StripeConnect,
    from_stripe_amount,
    to_stripe_amount,
)
from tests.payments.fake_stripe import (
    API_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    running_fake_stripe,
    sign,
)

SUCCESS = "https://example.test/paid"
CANCEL = "https://example.test/cancelled"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripe]:
    with running_fake_stripe(tmp_path_factory.mktemp("localstripe")) as running:
        yield running


@pytest.fixture
def stripe(fake: FakeStripe) -> Iterator[StripeConnect]:
    fake.down = False
    fake.lose_responses = 0
    yield StripeConnect(
        api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=fake.base_url, timeout=5
    )
    fake.down = False
    fake.lose_responses = 0


_contracts = iter(range(1000, 10**6))


def movement(
    kind: LedgerKind,
    amount_minor: int,
    currency: str = "USD",
    *,
    contract_id: int | None = None,
    destination: str | None = None,
    paid_with: tuple[str, ...] = (),
) -> Movement:
    """A movement of a contract of its own (so each test has its own transfer group)."""
    contract_id = contract_id or next(_contracts)
    milestone_id = 10 * contract_id
    key = {
        LedgerKind.FUND: f"fund:{milestone_id}",
        LedgerKind.RELEASE: f"release:{milestone_id}",
        LedgerKind.REFUND: f"refund:{milestone_id}",
        LedgerKind.BONUS: f"bonus:{contract_id}:1",
        LedgerKind.TOP_UP: f"top_up:1:{milestone_id}",
    }[kind]
    return Movement(
        key=key,
        kind=kind,
        contract_id=contract_id,
        milestone_id=None if kind == LedgerKind.BONUS else milestone_id,
        amount_minor=amount_minor,
        currency=currency,
        destination=destination,
        paid_with=paid_with,
    )


def webhook(
    stripe: StripeConnect, event: dict[str, Any], *, at: int | None = None
) -> ProviderEvent:
    body = json.dumps(event).encode()
    return stripe.read_webhook(body, sign(body, at=at))


def ready_account(fake: FakeStripe, stripe: StripeConnect) -> str:
    account_id = stripe.open_payout_account(user_id=f"U{time.monotonic_ns()}", team_id="T1")
    fake.finish_onboarding(account_id)
    return account_id


def paid_fund(fake: FakeStripe, stripe: StripeConnect, fund: Movement) -> str:
    link = stripe.checkout(
        fund, title="Milestone 1 · Design", success_url=SUCCESS, cancel_url=CANCEL
    )
    event = webhook(stripe, fake.pay(link.session_id))
    assert event.payment_intent is not None
    return event.payment_intent


# --- amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_minor", "currency", "stripe_amount"),
    [
        (150_000, "USD", 150_000),  # $1,500.00
        (1_500, "JPY", 1_500),  # ¥1,500: zero-decimal in both
        (1_500, "ISK", 150_000),  # kr1,500: no decimals in ISO, hundredths at Stripe
        (1_500_000, "KWD", 1_500_000),  # three decimals in both
        (2_000_00, "HUF", 2_000_00),
    ],
)
def test_ledger_amounts_become_stripe_amounts_exactly_and_back(
    amount_minor: int, currency: str, stripe_amount: int
) -> None:
    assert to_stripe_amount(amount_minor, currency) == stripe_amount
    assert from_stripe_amount(stripe_amount, currency) == amount_minor


def test_a_stripe_amount_that_is_not_whole_in_our_units_is_refused() -> None:
    with pytest.raises(ProviderRefused):
        from_stripe_amount(150_050, "ISK")


# --- the client pays ----------------------------------------------------------------------


def test_fund_is_a_checkout_session_for_the_ledger_amount_in_the_contracts_currency(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    fund = movement(LedgerKind.FUND, 1_500, "JPY")

    link = stripe.checkout(fund, title="Design", success_url=SUCCESS, cancel_url=CANCEL)

    session = fake.sessions[link.session_id]
    assert link.url == f"{fake.base_url}/pay/{link.session_id}"
    assert (session["amount_total"], session["currency"]) == (1_500, "jpy")
    assert session["payment_intent_data"]["transfer_group"] == fund.group
    assert session["metadata"]["ledger_key"] == fund.key
    again = stripe.checkout(fund, title="Design", success_url=SUCCESS, cancel_url=CANCEL)
    assert again == link  # one session per fund, however often it is asked


def test_a_paid_checkout_arrives_as_a_verified_event_naming_the_ledger_key(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    fund = movement(LedgerKind.FUND, 150_000)
    link = stripe.checkout(fund, title="Design", success_url=SUCCESS, cancel_url=CANCEL)

    event = webhook(stripe, fake.pay(link.session_id))

    assert event.type == "checkout.session.completed"
    assert event.ledger_key == fund.key
    assert (event.amount_minor, event.currency) == (150_000, "USD")
    assert event.payment_intent and event.payment_intent.startswith("pi_")


def test_forged_replayed_and_unsigned_webhooks_are_refused(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    event = fake.event("checkout.session.completed", {"id": "cs_test_x", "metadata": {}})
    body = json.dumps(event).encode()

    with pytest.raises(InvalidWebhook):
        stripe.read_webhook(body, sign(body, secret="whsec_someone_else"))
    with pytest.raises(InvalidWebhook):
        stripe.read_webhook(body, sign(body, at=int(time.time()) - 301))  # a replay
    with pytest.raises(InvalidWebhook):
        stripe.read_webhook(body, None)
    with pytest.raises(InvalidWebhook):
        stripe.read_webhook(body.replace(b"cs_test_x", b"cs_test_y"), sign(body))
    assert stripe.read_webhook(body, sign(body, at=int(time.time()) - 240)).id == event["id"]


# --- money out ------------------------------------------------------------------------------


def test_a_release_is_one_transfer_with_the_ledger_key_however_often_it_is_retried(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    provider: PaymentsProvider = stripe
    release = movement(LedgerKind.RELEASE, 150_000, destination=ready_account(fake, stripe))

    first = provider.carry_out(release)
    second = provider.carry_out(release)

    assert first == second
    [transfer] = [t for t in fake.transfers.values() if t["transfer_group"] == release.group]
    assert transfer["id"] == first
    assert (transfer["amount"], transfer["currency"]) == (150_000, "usd")
    assert transfer["destination"] == release.destination
    assert transfer["metadata"]["ledger_key"] == release.key


def test_stripe_down_is_unavailable_and_the_retry_after_it_returns_moves_the_money_once(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    release = movement(LedgerKind.RELEASE, 99_00, destination=ready_account(fake, stripe))

    fake.down = True
    with pytest.raises(ProviderUnavailable):
        stripe.carry_out(release)
    fake.down = False
    fake.lose_responses = 1  # done at Stripe, but the answer is lost
    with pytest.raises(ProviderUnavailable):
        stripe.carry_out(release)
    done = stripe.carry_out(release)

    assert [t["id"] for t in fake.transfers.values() if t["transfer_group"] == release.group] == [
        done
    ]


def test_a_release_without_a_ready_payout_account_is_refused_not_retried(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    with pytest.raises(ProviderRefused):
        stripe.carry_out(movement(LedgerKind.RELEASE, 100))
    not_onboarded = stripe.open_payout_account(user_id="UNEW", team_id="T1")
    with pytest.raises(ProviderRefused):
        stripe.carry_out(movement(LedgerKind.RELEASE, 100, destination=not_onboarded))


def test_a_refund_gives_back_the_payment_once_and_reconcile_sees_every_object(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    fund = movement(LedgerKind.FUND, 150_000)
    payment = paid_fund(fake, stripe, fund)
    refund = movement(
        LedgerKind.REFUND, 150_000, contract_id=fund.contract_id, paid_with=(payment,)
    )

    refunded = stripe.carry_out(refund)
    assert stripe.carry_out(refund) == refunded

    seen = stripe.objects_of(fund.contract_id, payment_intents=(payment,))
    assert sorted((o.kind, o.ledger_key, o.amount_minor, o.currency) for o in seen) == [
        ("payment", fund.key, 150_000, "USD"),
        ("refund", refund.key, 150_000, "USD"),
    ]


def test_payouts_open_one_account_per_person_and_an_onboarding_link(
    fake: FakeStripe, stripe: StripeConnect
) -> None:
    account_id = stripe.open_payout_account(user_id="UFREELA01", team_id="T1")
    assert stripe.open_payout_account(user_id="UFREELA01", team_id="T1") == account_id
    assert not stripe.payout_account(account_id).ready

    url = stripe.payout_link(account_id, refresh_url=CANCEL, return_url=SUCCESS)
    assert url.endswith(f"/connect/onboarding/{account_id}")

    updated = webhook(stripe, fake.finish_onboarding(account_id))
    assert updated.type == "account.updated"
    assert updated.account is not None and updated.account.ready
    assert stripe.payout_account(account_id).ready


def test_the_adapter_never_shows_its_secrets() -> None:
    adapter = StripeConnect(api_key="sk_test_secret_value", webhook_secret="whsec_secret_value")
    assert "secret_value" not in repr(adapter)
