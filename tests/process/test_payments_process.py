"""`PAYMENTS=stripe` with real processes on PostgreSQL: `serve` is killed (SIGKILL of the
whole tree, as the OOM killer does) while a transfer is owed and Stripe is down, and
again right after Stripe made a transfer whose answer was lost; after each restart the
release is carried out exactly once, and `payments reconcile` finds nothing to report."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from domain.db import make_engine, make_session_factory
from domain.model import (
    LedgerEntry,
    LedgerKind,
    MovementState,
    PayoutAccount,
    ProviderMovement,
    ProviderPayment,
)
from sandbox.emulator import SlackEmulator
from tests.payments.fake_stripe import (
    API_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    running_fake_stripe,
    sign,
)
from tests.process.conftest import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    REPO_ROOT,
    BotProcess,
    Launcher,
    driver_for,
    wait_until,
)
from tests.process.test_processes import reply_to

pytestmark = pytest.mark.e2e

NEW = f'new "Website redesign" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'


@pytest.fixture(scope="module")
def stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripe]:
    with running_fake_stripe(tmp_path_factory.mktemp("localstripe")) as fake:
        yield fake


def request(
    process: BotProcess, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, str]:
    assert process.url is not None
    url = urlsplit(process.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    conn.request(method, path, body=body or None, headers=headers)
    response = conn.getresponse()
    response.read()
    location = response.getheader("Location") or ""
    conn.close()
    return response.status, location


def deliver(process: BotProcess, event: dict[str, object]) -> int:
    payload = json.dumps(event).encode()
    status, _ = request(
        process,
        "POST",
        "/stripe/webhook",
        payload,
        **{"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
    )
    return status


def test_killed_serve_carries_out_an_owed_transfer_once_after_restart(
    launcher: Launcher,
    slack: SlackEmulator,
    fresh_postgres_url: str,
    stripe: FakeStripe,
    tmp_path: Path,
) -> None:
    env = launcher.env(
        slack,
        fresh_postgres_url,
        PAYMENTS="stripe",
        STRIPE_API_KEY=API_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe.base_url,
        PUBLIC_URL="https://bot.example.test",
        SWEEP_SECONDS="1",
    )
    engine = make_engine(fresh_postgres_url)
    sessions = make_session_factory(engine)
    bot = launcher.serve("--workers", "1", env=env)
    bot.wait_healthy()
    driver = driver_for(slack, bot)

    def say(user: str, text: str) -> str:
        return reply_to(slack, driver.command(user, text, channel_id=CHANNEL))

    say(CLIENT, NEW)
    say(CLIENT, 'add "Designs" 1500 2030-01-01')
    say(CLIENT, "start")
    say(FREELANCER, "start")

    # The freelancer links a payout account; the client pays for milestone 1.
    say(FREELANCER, "payouts")
    with sessions() as session:
        payouts_token = session.scalar(select(PayoutAccount.token))
    status, location = request(bot, "GET", f"/payouts/{payouts_token}")
    assert status == 303, location
    assert deliver(bot, stripe.finish_onboarding(location.rsplit("/", 1)[1])) == 200
    say(CLIENT, "fund")
    with sessions() as session:
        pay_token = session.scalar(select(ProviderPayment.token))
    status, location = request(bot, "GET", f"/pay/{pay_token}")
    assert status == 303, location
    assert deliver(bot, stripe.pay(location.rsplit("/", 1)[1])) == 200
    say(FREELANCER, 'submit "Designs are in Figma"')

    # Stripe goes down; the approval's transfer is owed when serve is killed outright.
    stripe.down = True
    try:
        say(CLIENT, "approve")
        with sessions() as session:
            key = session.scalar(
                select(LedgerEntry.key).where(LedgerEntry.kind == LedgerKind.RELEASE)
            )
        assert key is not None

        def tried() -> bool:
            with sessions() as session:
                row = session.scalar(select(ProviderMovement).where(ProviderMovement.key == key))
                return row is not None and row.attempts >= 1

        wait_until(tried, timeout=20, what="a try while Stripe is down")
        bot.kill()
        assert [t for t in stripe.transfers.values() if t["metadata"]["ledger_key"] == key] == []

        # Stripe comes back but the first answer is lost: the transfer is made, unheard.
        stripe.lose_responses = 1
        stripe.down = False
    finally:
        stripe.down = False

    restarted = launcher.serve("--workers", "1", env=env)
    restarted.wait_healthy()

    def carried_out() -> bool:
        with sessions() as session:
            row = session.scalar(select(ProviderMovement).where(ProviderMovement.key == key))
            return row is not None and row.state == MovementState.SENT

    # Claimed before the kill for a lease: the restarted sender takes it over after it.
    wait_until(carried_out, timeout=120, what="the owed transfer after the restart")
    transfers = [t for t in stripe.transfers.values() if t["metadata"]["ledger_key"] == key]
    assert len(transfers) == 1, transfers
    assert restarted.stop() == 0
    engine.dispose()

    reconcile = subprocess.run(
        [sys.executable, "-m", "bot.cli", "payments", "reconcile"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reconcile.returncode == 0, (reconcile.stdout, reconcile.stderr)
    assert "the ledger and Stripe agree" in reconcile.stdout
