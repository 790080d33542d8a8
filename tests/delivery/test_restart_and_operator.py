"""Nothing is lost across a crash between commit and delivery; operators can see and
retry what waits for Slack (`milestone-bot outbox`, `outbox retry`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.delivery import Delivery
from domain import outbox, services
from domain.model import LedgerEntry, OutboxMessage
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import Clock, web_client
from tests.factories import CHANNEL, CLIENT, NOW, active_contract


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        ledger = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
        waiting = (
            session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state != "sent")
            )
            or 0
        )
    return ledger, waiting


def test_a_change_committed_just_before_a_crash_is_delivered_by_the_next_process(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    # The "process" that made these changes died after its commits, before delivering.
    with db.session() as session:
        contract_id = active_contract(session)
    with db.session() as session:
        services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    ledger_before, waiting = counts(db)
    assert waiting > 0 and not slack.messages(CHANNEL)

    # A new process starts: its first sweep delivers everything, the business step is
    # not run again (the ledger is unchanged), and a second sweep has nothing to do.
    restarted = Delivery(db.sessions, web_client(slack), clock)
    while restarted.sweep():
        pass
    assert counts(db) == (ledger_before, 0)
    texts = [m.text for m in slack.messages(CHANNEL)]
    assert any("funded" in text for text in texts)
    assert restarted.sweep() == 0


def test_outbox_command_lists_dead_letters_and_retry_queues_them_again(
    db: Database,
    slack: SlackEmulator,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with db.session() as session:
        active_contract(session)
    slack.fail_next("*", error="invalid_blocks", times=1000)
    Delivery(db.sessions, web_client(slack), clock).sweep(limit=500)
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)

    assert main(["outbox"]) == 0
    listed = capsys.readouterr()
    assert "dead" in listed.out and "invalid_blocks" in listed.out
    assert "0 pending, 0 held," in listed.out and "dead-lettered" in listed.out

    assert main(["outbox", "retry"]) == 0
    assert "queued for delivery" in capsys.readouterr().out
    with db.session() as session:
        assert all(item.state == "pending" for item in outbox.waiting(session))
    slack.clear_faults()
    clock.now = datetime.now(UTC) + timedelta(seconds=1)  # the CLI used the wall clock
    delivery = Delivery(db.sessions, web_client(slack), clock)
    while delivery.sweep():
        pass
    assert counts(db)[1] == 0
