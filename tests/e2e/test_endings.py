"""End-to-end over signed HTTP: ending with consent and disputes.

`end` answers with a confirmation and its *End contract* button; the client ending
with escrow held posts an ending notice with *Accept refund* / *Dispute* for the
provider; a dispute posts a card where a proposed split gets *Agree to split*; the
window running out refunds by itself (the scheduler's sweep, once the window has been
moved into the past)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from domain.db import read_transaction
from domain.model import Contract
from domain.verify import verify
from scheduler.jobs import sweep_ending_windows
from tests.e2e.conftest import CHANNEL, CLIENT, FREELANCER, Bot, blocks_text
from tests.e2e.test_features import contract, funded, submitted


def buttons(bot: Bot, subject: str) -> list[str]:
    card = bot.card(subject)
    return [e["text"]["text"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]


def confirm_end(bot: Bot, user: str) -> str:
    """Type `end`, check the confirmation, click its *End contract*; the answer."""
    reply = bot.say(user, "end")
    assert "End contract" in reply
    [confirmation] = [
        e for e in bot.slack.ephemerals(CHANNEL, user) if "End contract" in blocks_text(e.blocks)
    ][-1:]
    response = bot.driver.click_button(user, CHANNEL, confirmation.ts, "End contract")
    assert response.status == 200, response.text
    answers = bot.answers_to(response)
    assert answers, "the clicker is told what ending did"
    return answers[-1]


def ledger_agrees(bot: Bot) -> None:
    with bot.runtime.sessions() as session, read_transaction(session):
        assert verify(session) == []


def test_end_confirms_then_the_provider_disputes_and_a_split_is_agreed(bot: Bot) -> None:
    funded(bot)

    reply = bot.say(CLIENT, "end")
    assert "$1,500.00" in reply and "ending" in reply
    assert contract(bot)["status"] == "active", "typing end changes nothing by itself"

    answer = confirm_end(bot, CLIENT)
    assert "is ending" in answer
    assert contract(bot)["status"] == "ending"
    notice = bot.card_text("ending:1")
    assert "is ending" in notice and "$1,500.00" in notice
    labels = buttons(bot, "ending:1")
    assert any(label.startswith("Accept refund") for label in labels)
    assert any(label.startswith("Dispute") for label in labels)
    # The client can't answer the provider's window.
    assert "Only" in bot.click(CLIENT, bot.card("ending:1"), "Accept refund")
    assert contract(bot)["status"] == "ending"

    bot.press(FREELANCER, bot.card("ending:1"), "Dispute")
    bot.slack.wait_for(lambda: bot.slack.open_views(FREELANCER))
    result = bot.driver.submit_view(FREELANCER, inputs={"reason": "Most of it was delivered"})
    assert result.status == 200
    bot.card_shows("ending:1", "Refund disputed")
    assert "Most of it was delivered" in bot.card_text("dispute:1")
    assert contract(bot)["milestones"][0]["status"] == "disputed"
    assert not buttons(bot, "ending:1"), "the notice's buttons are gone"

    assert "proposed a split" in bot.say(FREELANCER, "settle 1 1000")
    assert any(label.startswith("Agree to split") for label in buttons(bot, "dispute:1"))
    # The proposer can't agree to its own proposal.
    assert "agrees to it" in bot.click(FREELANCER, bot.card("dispute:1"), "Agree to split")

    card = bot.click(CLIENT, bot.card("dispute:1"), "Agree to split")
    assert "Settled by agreement" in card
    data = contract(bot)
    assert data["status"] == "closed"
    assert data["milestones"][0]["status"] == "released"
    assert (data["escrow"]["released_minor"], data["escrow"]["refunded_minor"]) == (
        100000,
        50000,
    )
    assert not buttons(bot, "dispute:1")
    assert any("agreed to settle" in text for text in bot.posts())
    ledger_agrees(bot)


def test_the_window_running_out_refunds_by_itself(bot: Bot) -> None:
    funded(bot)
    confirm_end(bot, CLIENT)
    bot.quiet()

    # Seven days pass (the bot's clock can't be moved: the window is moved back instead).
    with bot.runtime.sessions() as session, session.begin():
        session.execute(
            update(Contract).values(ending_deadline_at=bot.runtime.clock() - timedelta(minutes=1))
        )

    refunded = sweep_ending_windows(bot.runtime.sessions, bot.runtime.clock(), bot.delivery.deliver)

    assert refunded == 1
    bot.quiet()
    data = contract(bot)
    assert data["status"] == "closed"
    assert data["escrow"]["refunded_minor"] == 150000
    bot.card_shows("ending:1", "Closed")
    assert not buttons(bot, "ending:1")
    assert any("in time" in text for text in bot.posts())
    ledger_agrees(bot)


def test_the_provider_accepts_the_refund_from_the_notice(bot: Bot) -> None:
    funded(bot)
    confirm_end(bot, CLIENT)

    card = bot.click(FREELANCER, bot.card("ending:1"), "Accept refund")

    assert "Closed" in card
    assert contract(bot)["status"] == "closed"
    assert not buttons(bot, "ending:1"), "nothing left to answer"


def test_the_client_disputes_submitted_work_from_the_work_card(bot: Bot) -> None:
    submitted(bot)
    labels = buttons(bot, "work:1:1")
    assert any(label.startswith("Dispute") for label in labels)

    bot.press(CLIENT, bot.card("work:1:1"), "Dispute")
    bot.slack.wait_for(lambda: bot.slack.open_views(CLIENT))
    bot.driver.submit_view(CLIENT, inputs={"reason": "Not the agreed pages"})

    bot.card_shows("work:1:1", "Disputed")
    assert not buttons(bot, "work:1:1"), "no Approve on frozen work"
    assert "Not the agreed pages" in bot.card_text("dispute:1")
    assert contract(bot)["milestones"][0]["status"] == "disputed"
    # Typed, the other way round: the client proposes, the freelancer agrees by typing.
    bot.say(CLIENT, "settle 1 0")
    assert "settled" in bot.say(FREELANCER, "settle 1 0")
    data = contract(bot)
    assert data["milestones"][0]["status"] == "pending"
    assert data["escrow"]["refunded_minor"] == 150000
    bot.card_shows("work:1:1", "Dispute settled")
    ledger_agrees(bot)


def test_ending_with_nothing_held_closes_at_once(bot: Bot) -> None:
    submitted(bot)
    bot.click(CLIENT, bot.card("work:1:1"), "Approve")

    answer = confirm_end(bot, FREELANCER)

    assert "ended" in answer
    assert contract(bot)["status"] == "closed"
