"""Bursts of Approve clicks against a real `serve`, and what must be true afterwards.

Each click approves the submitted work of its own contract in its own channel, so the
clicks run at once without queueing on one contract's lock. After whatever happened to
the processes, each click is judged by what Slack saw (`status`: 200 is an ack, 0 no
answer at all) against what the database holds:

- acked ⇒ the money was released exactly once and the clicker's answer — the card
  they clicked, updated in place — is queued;
- not acked ⇒ nothing was released, or it was released and the card's update is queued
  (the person sees Slack's error first, then the card saying it was paid: what they
  are shown at last is true);
- no milestone is released twice and the ledger verifies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from domain import services
from domain.model import (
    IntentKind,
    LedgerEntry,
    LedgerKind,
    MessageRef,
    Milestone,
    OutboxMessage,
    OutboxState,
)
from domain.services import NewMilestone
from domain.verify import check
from sandbox.emulator import Response, SlackDriver, SlackEmulator
from tests.process.conftest import CLIENT, FREELANCER, wait_until
from tests.process.test_processes import Database


@dataclass(frozen=True)
class Work:
    channel: str
    contract_id: int
    milestone_id: int


@dataclass(frozen=True)
class Click:
    work: Work
    response: Response


def seed_submitted(database: Database, slack: SlackEmulator, count: int, *, tag: str) -> list[Work]:
    """`count` contracts, each in a channel of its own, with work submitted for review."""
    now = datetime.now(UTC)
    found = []
    for i in range(count):
        channel = f"C0{tag}{i:03d}"
        slack.add_channel(channel, channel.lower(), members=[CLIENT, FREELANCER])
        with database.sessions() as session:
            contract_id = services.create_contract(
                session,
                title=f"Burst {tag}{i}",
                team_id="T0001",
                channel_id=channel,
                creator_id=CLIENT,
                client_id=CLIENT,
                freelancer_id=FREELANCER,
                now=now,
            ).contract_id
            services.change_milestones(
                session,
                contract_id=contract_id,
                actor_id=CLIENT,
                changes=[NewMilestone("Work", "1000", date.today() + timedelta(days=30), "")],
                now=now,
            )
            for party in (CLIENT, FREELANCER):
                services.agree_to_terms(session, contract_id=contract_id, actor_id=party, now=now)
            services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=now)
            services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=now)
        contract = database.contract(contract_id)
        milestone_id = _milestone_id(database, contract_id)
        assert contract["milestones"][0]["status"] == "submitted"
        found.append(Work(channel, contract_id, milestone_id))
    return found


def _milestone_id(database: Database, contract_id: int) -> int:
    with database.sessions() as session:
        return int(session.scalar(select(Milestone.id).where(Milestone.contract_id == contract_id)))


def wait_for_work_cards(database: Database, works: list[Work]) -> dict[int, str]:
    """The ts of each work card, once the bot has posted them all."""

    def posted() -> dict[int, str] | None:
        with database.sessions() as session:
            rows = dict(
                session.execute(
                    select(MessageRef.subject, MessageRef.ts).where(
                        MessageRef.subject.in_([f"work:{w.milestone_id}:1" for w in works])
                    )
                ).all()
            )
        cards = {w.contract_id: rows.get(f"work:{w.milestone_id}:1", "") for w in works}
        return cards if all(cards.values()) else None

    return wait_until(posted, timeout=60, what="every work card to be posted")


def burst(
    driver: SlackDriver,
    works: list[Work],
    cards: dict[int, str],
    *,
    during: Callable[[], object] | None = None,
    after_acks: int = 0,
) -> list[Click]:
    """Click Approve on every card at once; `during()` runs (a kill, a stop) as soon as
    `after_acks` of the clicks have been acked, the others still in flight."""
    start = threading.Barrier(len(works) + 1)
    acked = threading.Condition()
    count = 0

    def one(work: Work) -> Click:
        nonlocal count
        start.wait(timeout=30)
        response = driver.click_button(CLIENT, work.channel, cards[work.contract_id], "Approve")
        with acked:
            count += 1
            acked.notify_all()
        return Click(work, response)

    with ThreadPoolExecutor(max_workers=len(works)) as pool:
        futures = [pool.submit(one, work) for work in works]
        start.wait(timeout=30)
        if during is not None:
            with acked:
                acked.wait_for(lambda: count >= after_acks, timeout=30)
            during()
        return [future.result(timeout=120) for future in futures]


def cards_queued(database: Database) -> dict[int, OutboxState]:
    """The work-card update each release queued (the clicker's answer): contract → its
    state. It is written in the release's transaction, so at the release's instant."""
    with database.sessions() as session:
        return dict(
            session.execute(
                select(OutboxMessage.contract_id, OutboxMessage.state)
                .join(
                    LedgerEntry,
                    (LedgerEntry.contract_id == OutboxMessage.contract_id)
                    & (LedgerEntry.kind == LedgerKind.RELEASE)
                    & (LedgerEntry.at == OutboxMessage.created_at),
                )
                .where(OutboxMessage.kind == IntentKind.WORK_CARD)
            ).all()
        )


def releases(database: Database) -> dict[int, int]:
    with database.sessions() as session:
        return dict(
            session.execute(
                select(LedgerEntry.contract_id, func.count())
                .where(LedgerEntry.kind == LedgerKind.RELEASE)
                .group_by(LedgerEntry.contract_id)
            ).all()
        )


def judge(database: Database, clicks: list[Click]) -> tuple[int, int]:
    """Check every click (see the module); returns (acked, applied)."""
    released = releases(database)
    cards = cards_queued(database)
    assert all(n == 1 for n in released.values()), f"released twice: {released}"
    acked = applied = 0
    for click in clicks:
        answered = click.work.contract_id in cards
        done = released.get(click.work.contract_id, 0) == 1
        if click.response.status == 200:
            acked += 1
            assert done, f"acked but not applied: {click}"
            assert answered, f"acked and applied but nobody is told: {click}"
        else:
            assert click.response.status == 0, click.response.text
            assert not done or answered, f"applied without an ack and not told: {click}"
        applied += done
    with database.sessions() as session, session.begin():
        verified = check(session)
    assert verified.ok, verified.discrepancies
    return acked, applied


def answers_delivered(database: Database) -> bool:
    """Every queued card update (each clicker's answer) has reached Slack."""
    return all(state == OutboxState.SENT for state in cards_queued(database).values())
