"""`PAYMENTS=stripe` end to end: the real app over signed HTTP against the Slack
emulator, stripe-python against localstripe and the fake of what it lacks
(tests/payments/fake_stripe.py), and Stripe's webhooks posted, signed, to
`POST /stripe/webhook` as Stripe would.

The money's path: the provider side links a payout account (`/milestone payouts` →
`/payouts/<token>` → Stripe's onboarding → `account.updated`); the client funds
(`/milestone fund` → their own pay link → `/pay/<token>` → Checkout → the
`checkout.session.completed` webhook → funded card); approval and automatic release
→ a Transfer under the release's key; ending → a Refund of what is held. Faults:
replayed and forged webhooks, Stripe down and answers lost while a transfer is
made — after each, nothing is lost, nothing moved twice, `ledger verify` and
`payments reconcile` clean.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from bot.cli import main
from domain.db import read_transaction
from domain.model import (
    LedgerEntry,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    MovementState,
    ProviderMovement,
    ProviderPayment,
)
from domain.payments import FUNDED_NOTE, RECORD_ONLY_NOTE, RELEASED_NOTE
from domain.verify import verify
from tests.e2e.conftest import CHANNEL, CLIENT, FREELANCER, PROXY_VARS, Bot, running_bot
from tests.e2e.test_features import active
from tests.payments.fake_stripe import (
    API_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    running_fake_stripe,
    sign,
)

PUBLIC = "https://bot.example.test"
T = TypeVar("T")


@pytest.fixture(scope="module")
def stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripe]:
    with running_fake_stripe(tmp_path_factory.mktemp("localstripe")) as fake:
        yield fake


@pytest.fixture
def bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stripe: FakeStripe) -> Iterator[Bot]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")
    stripe.down, stripe.lose_responses = False, 0
    stripe.transfers.clear()  # each test's contract 1 is a new one: its own transfer group
    settings = {
        "PAYMENTS": "stripe",
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe.base_url,
        "PUBLIC_URL": PUBLIC,
        "AUTO_RELEASE_DAYS": 1,
    }
    for name, value in settings.items():  # `payments reconcile` reads the same
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    with running_bot(f"sqlite:///{tmp_path / 'bot.sqlite3'}", **settings) as running:
        assert running.started is not None and running.started.payments is not None
        running.started.payments.base_backoff = 0.2  # Stripe's outage is short here
        yield running
    stripe.down, stripe.lose_responses = False, 0


# --- acting as the people and as Stripe ----------------------------------------------------


def eventually(found: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = found()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def get(bot: Bot, path: str) -> tuple[int, dict[str, str], str]:
    url = urlsplit(bot.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def post_webhook(bot: Bot, event: dict[str, Any], *, signature: str | None = None) -> int:
    """Stripe delivers `event` to the bot, signed with the endpoint's secret."""
    payload = json.dumps(event).encode()
    url = urlsplit(bot.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    conn.request(
        "POST",
        "/stripe/webhook",
        body=payload,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature if signature is not None else sign(payload),
        },
    )
    status = conn.getresponse().status
    conn.close()
    bot.quiet()
    return status


def link_in_reply(bot: Bot, user: str, command: str, route: str) -> str:
    """Type `/milestone <command>`: the token of the `<PUBLIC_URL>/<route>/<token>`
    link only `user` is given (never posted in the channel)."""
    response = bot.driver.command(user, command, channel_id=CHANNEL, show_reply=False)
    assert response.status == 200, response.text
    bot.reply_to(response)
    answers = [r.body for r in bot.slack.responses if r.url == response.response_url]
    pattern = re.compile(re.escape(f"{PUBLIC}/{route}/") + r"([\w-]+)")
    [token] = {m for a in answers for m in pattern.findall(json.dumps(a))}
    channel_posts = json.dumps([m.blocks for m in bot.slack.messages(CHANNEL)])
    assert token not in channel_posts and token not in json.dumps(bot.posts())
    return token


def link_payouts(bot: Bot, stripe: FakeStripe) -> str:
    """The freelancer sets up payouts; Stripe says the account is ready. Its id."""
    token = link_in_reply(bot, FREELANCER, "payouts", "payouts")
    status, headers, _ = get(bot, f"/payouts/{token}")
    assert status == 303 and "/connect/onboarding/acct_" in headers["location"]
    account_id = headers["location"].rsplit("/", 1)[1]
    assert post_webhook(bot, stripe.finish_onboarding(account_id)) == 200
    return account_id


def pay(bot: Bot, stripe: FakeStripe) -> dict[str, Any]:
    """The client funds the next milestone through their link and pays; the event
    Stripe sends (not yet delivered)."""
    token = link_in_reply(bot, CLIENT, "fund", "pay")
    status, headers, _ = get(bot, f"/pay/{token}")
    assert status == 303, "the pay link opens Stripe's checkout"
    session_id = headers["location"].rsplit("/", 1)[1]
    assert stripe.sessions[session_id]["client_reference_id"].startswith("fund:")
    return stripe.pay(session_id)


def ledger(bot: Bot) -> list[tuple[str, str, int]]:
    with bot.runtime.sessions() as session:
        return [
            (str(e.kind), e.key, e.amount_minor)
            for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))
        ]


def movement(bot: Bot, key: str) -> ProviderMovement | None:
    with bot.runtime.sessions() as session:
        return session.scalar(select(ProviderMovement).where(ProviderMovement.key == key))


def sent(bot: Bot, key: str) -> ProviderMovement:
    return eventually(
        lambda: (m := movement(bot, key)) and m.state == MovementState.SENT and m,
        f"{key} carried out",
    )


def transfers_for(stripe: FakeStripe, key: str, account_id: str) -> list[dict[str, Any]]:
    """The transfers of `key` to this test's account (the fake Stripe outlives a test)."""
    return [
        t
        for t in stripe.transfers.values()
        if t["metadata"].get("ledger_key") == key and t["destination"] == account_id
    ]


def milestone_status(bot: Bot, number: int) -> MilestoneStatus:
    with bot.runtime.sessions() as session:
        found = session.scalar(select(Milestone).where(Milestone.number == number))
        assert found is not None
        return found.status


def all_agree(bot: Bot, capsys: pytest.CaptureFixture[str]) -> None:
    with bot.runtime.sessions() as session, read_transaction(session):
        assert verify(session) == []
    capsys.readouterr()
    code = main(["payments", "reconcile"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "the ledger and Stripe agree" in out


# --- the tests -------------------------------------------------------------------------------


def test_fund_through_checkout_then_approve_transfers_to_the_payout_account(
    bot: Bot, stripe: FakeStripe, capsys: pytest.CaptureFixture[str]
) -> None:
    active(bot)
    account_id = link_payouts(bot, stripe)

    event = pay(bot, stripe)
    assert milestone_status(bot, 1) == MilestoneStatus.PENDING, "nothing funded before Stripe says"
    assert ledger(bot) == []
    assert "payment pending" in bot.card_text("contract:1").lower()

    assert post_webhook(bot, event) == 200
    assert milestone_status(bot, 1) == MilestoneStatus.FUNDED
    assert [kind for kind, _, _ in ledger(bot)] == [LedgerKind.FUND]
    assert any("you can start" in t for t in bot.posts()), "the provider side is told"

    # Stripe delivers the same event again, and a forged and a stale one: nothing changes.
    assert post_webhook(bot, event) == 200
    forged = dict(event, id="evt_forged")
    assert (
        post_webhook(bot, forged, signature=sign(json.dumps(forged).encode(), secret="whsec_x"))
        == 400
    )
    stale = dict(event, id="evt_stale")
    stale_payload = json.dumps(stale).encode()
    assert post_webhook(bot, stale, signature=sign(stale_payload, at=int(time.time()) - 600)) == 400
    assert [kind for kind, _, _ in ledger(bot)] == [LedgerKind.FUND]

    bot.say(FREELANCER, 'submit "Designs are in Figma"')
    approved = bot.say(CLIENT, "approve")
    assert "Stripe transfers it to the provider side's payout account" in approved
    [(_, release_key, amount)] = [e for e in ledger(bot) if e[0] == LedgerKind.RELEASE]
    done = sent(bot, release_key)
    [transfer] = transfers_for(stripe, release_key, account_id)
    assert transfer["destination"] == account_id and transfer["amount"] == amount
    assert transfer["transfer_group"] == "contract-1" and done.provider_ref == transfer["id"]
    # Nothing says the bot only keeps the record: here Stripe holds and moves the money.
    shown = [bot.card_text("contract:1"), *bot.posts(), json.dumps(bot.open_home(CLIENT))]
    for note in (RECORD_ONLY_NOTE, FUNDED_NOTE, RELEASED_NOTE, "move the money yourselves"):
        assert not [text for text in shown if note in text], note
    all_agree(bot, capsys)


def test_stripe_down_and_a_lost_answer_never_lose_or_double_a_transfer(
    bot: Bot, stripe: FakeStripe, capsys: pytest.CaptureFixture[str]
) -> None:
    active(bot)
    account_id = link_payouts(bot, stripe)
    assert post_webhook(bot, pay(bot, stripe)) == 200
    bot.say(FREELANCER, 'submit "Designs are in Figma"')

    stripe.down = True
    bot.say(CLIENT, "approve")
    [(_, key, _)] = [e for e in ledger(bot) if e[0] == LedgerKind.RELEASE]
    eventually(
        lambda: (m := movement(bot, key)) and m.attempts >= 2 and m, "tries while Stripe is down"
    )
    assert movement(bot, key).state == MovementState.PENDING  # type: ignore[union-attr]
    assert transfers_for(stripe, key, account_id) == []

    stripe.lose_responses = 1  # the transfer is made, its answer lost: tried again, same key
    stripe.down = False
    assert bot.started is not None and bot.started.payments is not None
    bot.started.payments.nudge()
    sent(bot, key)
    assert len(transfers_for(stripe, key, account_id)) == 1, "one transfer, however often asked"
    all_agree(bot, capsys)


def test_automatic_release_transfers_and_ending_refunds_the_client(
    bot: Bot, stripe: FakeStripe, capsys: pytest.CaptureFixture[str]
) -> None:
    active(bot)
    account_id = link_payouts(bot, stripe)
    assert post_webhook(bot, pay(bot, stripe)) == 200
    bot.say(FREELANCER, 'submit "Designs are in Figma"')
    with bot.runtime.sessions() as session, session.begin():  # the review period runs out
        session.execute(
            update(Milestone)
            .where(Milestone.number == 1)
            .values(auto_release_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert bot.started is not None
    bot.started.sweep()
    [(_, key, _)] = [e for e in ledger(bot) if e[0] == LedgerKind.RELEASE]
    sent(bot, key)
    assert len(transfers_for(stripe, key, account_id)) == 1

    # The second milestone is paid for, then the freelancer ends: the client's money back.
    assert post_webhook(bot, pay(bot, stripe)) == 200
    assert milestone_status(bot, 2) == MilestoneStatus.FUNDED
    reply = bot.say(FREELANCER, "end")
    assert "End contract" in reply
    [confirmation] = [
        e
        for e in bot.slack.ephemerals(CHANNEL, FREELANCER)
        if "End contract" in json.dumps(e.blocks)
    ][-1:]
    assert (
        bot.driver.click_button(FREELANCER, CHANNEL, confirmation.ts, "End contract").status == 200
    )
    bot.quiet()
    [(_, refund_key, refunded)] = [e for e in ledger(bot) if e[0] == LedgerKind.REFUND]
    done = sent(bot, refund_key)
    with bot.runtime.sessions() as session:
        paid = session.scalar(
            select(ProviderPayment)
            .where(ProviderPayment.ledger_key.like("fund:%"))
            .order_by(ProviderPayment.id.desc())
        )
        assert paid is not None and paid.payment_intent
    refunds = stripe.localstripe("GET", f"/v1/refunds?payment_intent={paid.payment_intent}")
    ours = [r for r in refunds["data"] if (r.get("metadata") or {}).get("ledger_key") == refund_key]
    assert sum(r["amount"] for r in ours) == refunded and done.provider_ref
    all_agree(bot, capsys)


def test_a_payment_refunded_outside_the_bot_freezes_the_milestone(
    bot: Bot, stripe: FakeStripe
) -> None:
    active(bot)
    event = pay(bot, stripe)
    assert post_webhook(bot, event) == 200
    payment_intent = event["data"]["object"]["payment_intent"]
    refund = stripe.localstripe(
        "POST", "/v1/refunds", {"payment_intent": payment_intent, "amount": "100"}
    )
    outside = stripe.event("refund.created", refund)
    assert post_webhook(bot, outside) == 200
    assert milestone_status(bot, 1) == MilestoneStatus.DISPUTED
    assert any(
        "refunded outside the bot" in t for t in [bot.card_text("contract:1"), *bot.posts()]
    ) or any(
        "refunded outside the bot" in json.dumps(m.blocks) for m in bot.slack.messages(CHANNEL)
    )
    # Frozen: submitting, approving or releasing is refused while it is.
    for user, words in [
        (FREELANCER, 'submit "Designs"'),
        (CLIENT, "approve"),
        (CLIENT, "release 1 100"),
    ]:
        refusal = bot.say(user, words)
        assert "disputed" in refusal.lower(), (words, refusal)
    assert milestone_status(bot, 1) == MilestoneStatus.DISPUTED
    assert [kind for kind, _, _ in ledger(bot)] == [LedgerKind.FUND]
