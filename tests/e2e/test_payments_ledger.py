"""`PAYMENTS=ledger` end to end, over signed HTTP: the bot records the money and holds
none, and what people see says so — the card, the fund and approve replies, the
announcements, the help and `/milestone payouts`."""

from __future__ import annotations

from domain.payments import FUNDED_NOTE, PAYOUTS_NOTE, RECORD_ONLY_NOTE, RELEASED_NOTE
from tests.e2e.conftest import CLIENT, FREELANCER, Bot
from tests.e2e.test_features import active

SAID_PAID = "Recorded as paid"


def test_funding_and_approving_say_the_money_is_recorded_not_held(bot: Bot) -> None:
    active(bot)
    assert RECORD_ONLY_NOTE in bot.card_text("contract:1")

    funded = bot.say(CLIENT, "fund")
    assert "Funded milestone 1" in funded and FUNDED_NOTE in funded
    assert any("you can start" in t and FUNDED_NOTE in t for t in bot.posts())

    bot.say(FREELANCER, 'submit "Designs are in Figma"')
    approved = bot.say(CLIENT, "approve")
    assert "Approved milestone 1" in approved and RELEASED_NOTE in approved
    assert any("is paid" in t and SAID_PAID in t for t in bot.posts())
    assert RECORD_ONLY_NOTE in bot.card_shows("contract:1", "*paid*")


def test_help_and_payouts_say_the_bot_holds_no_money(bot: Bot) -> None:
    assert RECORD_ONLY_NOTE in bot.say(FREELANCER, "help")
    assert PAYOUTS_NOTE in bot.say(FREELANCER, "payouts")
