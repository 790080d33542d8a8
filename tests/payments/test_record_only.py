"""`PAYMENTS=ledger`, the default: the bot records the money and moves none, and every
surface says so, so that nobody mistakes a record for money held in escrow."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from bot.cli import main
from bot.settings import Settings, SettingsError, load_settings
from domain import ledger, services
from domain.ledger import Escrow
from domain.model import ContractStatus, LedgerKind, MilestoneStatus
from domain.payments import (
    DIRECTIONS,
    FUNDED_NOTE,
    RECORD_ONLY,
    RECORD_ONLY_NOTE,
    REFUNDED_NOTE,
    RELEASED_NOTE,
    Direction,
    PaymentsMode,
    PaymentsProvider,
    movement_of,
)
from handlers.blocks import build_announcement, build_contract_card, build_help, build_work_card
from handlers.blocks.contract import fund_button
from handlers.grammar import USAGE, ShowPayouts, parse
from tests.blocks.support import (
    NOW,
    all_text,
    buttons,
    check_message,
    contract,
    event,
    milestone,
    snap,
)
from tests.factories import (
    CLIENT,
    FREELANCER,
    active_contract,
    funded_contract,
    submitted_contract,
)
from tests.factories import NOW as SERVICE_NOW
from tests.test_cli import SETTINGS_VARS

# --- the port ---------------------------------------------------------------------------


def test_every_kind_of_ledger_entry_is_a_movement_with_a_direction() -> None:
    assert set(DIRECTIONS) == set(LedgerKind)
    assert DIRECTIONS[LedgerKind.FUND] == DIRECTIONS[LedgerKind.TOP_UP] == Direction.INTO_ESCROW
    assert DIRECTIONS[LedgerKind.RELEASE] == Direction.TO_PROVIDER
    assert DIRECTIONS[LedgerKind.REFUND] == Direction.TO_CLIENT


def test_a_movement_carries_the_ledger_key_as_its_idempotency_key(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=SERVICE_NOW)

    moves = [movement_of(e, currency="usd") for e in ledger.entries(session, contract_id)]

    assert [(m.kind, m.amount_minor, m.currency) for m in moves] == [
        (LedgerKind.FUND, 150_000, "USD"),
        (LedgerKind.RELEASE, 150_000, "USD"),
    ]
    fund, release = moves
    assert fund.key == f"fund:{fund.milestone_id}"
    assert release.key == f"release:{release.milestone_id}"
    assert fund.group == release.group == f"contract-{contract_id}"
    assert release.direction == Direction.TO_PROVIDER
    session.rollback()


def test_the_record_only_provider_moves_no_money() -> None:
    provider: PaymentsProvider = RECORD_ONLY
    assert provider.mode == PaymentsMode.LEDGER
    assert provider.moves_money is False


# --- settings and start-up -------------------------------------------------------------


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("no_settings")
def test_payments_default_to_the_ledger_and_stripe_secrets_stay_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().PAYMENTS == "ledger"
    assert load_settings().require_payments() is None
    monkeypatch.setenv("PAYMENTS", " Ledger ")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_very_secret")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_very_secret")
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:8420")
    settings = load_settings()
    assert settings.PAYMENTS == "ledger"
    assert settings.STRIPE_API_BASE == "http://127.0.0.1:8420"
    assert "very_secret" not in repr(settings) and "very_secret" not in str(settings)


@pytest.mark.usefixtures("no_settings")
def test_an_unknown_payments_provider_is_refused_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYMENTS", "paypal")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.message == (
        "PAYMENTS: must be ledger (the bot records the money, the parties move it) or stripe "
        "(got 'paypal')"
    )


@pytest.mark.usefixtures("no_settings")
@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_stripe_payments_without_their_settings_are_refused_naming_each_missing_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    monkeypatch.setenv("PAYMENTS", "stripe")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_very_secret")

    code = main(command)

    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("milestone-bot: Set STRIPE_WEBHOOK_SECRET (")
    assert "PUBLIC_URL (" in line and "STRIPE_API_KEY" not in line
    assert "very_secret" not in line
    assert not list(Path.cwd().iterdir())  # refused before any database was made


@pytest.mark.usefixtures("no_settings")
def test_stripe_payments_need_http_not_socket_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "PAYMENTS": "stripe",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": "xapp-test",
        "STRIPE_API_KEY": "sk_test_very_secret",
        "STRIPE_WEBHOOK_SECRET": "whsec_very_secret",
        "PUBLIC_URL": "https://bot.example.com",
    }.items():
        monkeypatch.setenv(name, value)

    code = main(["serve", "--socket-mode"])

    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "PAYMENTS=stripe runs over HTTP" in err and "very_secret" not in err


def test_stripe_settings_give_the_credentials_and_never_show_the_secrets() -> None:
    settings = Settings(
        _env_file=None,
        PAYMENTS="stripe",
        STRIPE_API_KEY="sk_test_very_secret",
        STRIPE_WEBHOOK_SECRET="whsec_very_secret",
        PUBLIC_URL="https://bot.example.com/",
    )
    credentials = settings.require_payments()
    assert credentials is not None
    assert credentials.api_key == "sk_test_very_secret"
    assert credentials.public_url == "https://bot.example.com"
    assert "very_secret" not in repr(credentials) and "very_secret" not in repr(settings)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, PAYMENTS="stripe", PUBLIC_URL="bot.example.com")
    assert "PUBLIC_URL" in str(caught.value) and "https://" in str(caught.value)


# --- what the people are told ------------------------------------------------------------


def test_funding_releasing_and_refunding_replies_say_the_money_is_only_recorded(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    funded = services.fund_milestone(
        session, contract_id=contract_id, actor_id=CLIENT, now=SERVICE_NOW
    )
    assert funded.summary.endswith(FUNDED_NOTE)
    services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=SERVICE_NOW)
    approved = services.approve_work(
        session, contract_id=contract_id, actor_id=CLIENT, now=SERVICE_NOW
    )
    assert approved.summary.endswith(RELEASED_NOTE)

    other = funded_contract(session)
    ended = services.end_contract(session, contract_id=other, actor_id=FREELANCER, now=SERVICE_NOW)
    assert ended.summary.endswith(REFUNDED_NOTE)
    session.rollback()


def test_the_card_the_help_and_the_fund_confirmation_say_the_bot_holds_no_money() -> None:
    active = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1)])
    card = check_message(build_contract_card(snap(active, escrow=Escrow()), now=NOW))
    assert RECORD_ONLY_NOTE in all_text(card)

    assert RECORD_ONLY_NOTE in all_text(check_message(build_help()))

    confirm = fund_button(active, active.milestones[0]).to_dict()["confirm"]
    assert "holds no money, so pay it yourselves" in confirm["text"]["text"]
    assert len(confirm["text"]["text"]) <= 300  # Slack's limit for a confirmation


def test_the_announcements_and_the_work_card_say_recorded_as_funded_and_paid() -> None:
    active = contract(
        status=ContractStatus.ACTIVE, milestones=[milestone(1, status=MilestoneStatus.FUNDED)]
    )
    funded = build_announcement(
        active, event("milestone_funded", milestone_number=1, amount_minor=150_000)
    )
    assert funded is not None and funded.text.endswith(FUNDED_NOTE)

    released = build_announcement(
        active,
        event("milestone_released", milestone_number=1, amount_minor=150_000, automatic=True),
    )
    assert released is not None and RELEASED_NOTE in released.text

    paid = contract(
        status=ContractStatus.ACTIVE,
        milestones=[milestone(1, status=MilestoneStatus.RELEASED, released_at=NOW)],
    )
    work = check_message(build_work_card(paid, paid.milestones[0]))
    assert RELEASED_NOTE in all_text(work)
    assert not buttons(work)


def test_payouts_is_a_command_without_arguments() -> None:
    assert parse("payouts") == ShowPayouts()
    assert USAGE["payouts"] == "`/milestone payouts`"
