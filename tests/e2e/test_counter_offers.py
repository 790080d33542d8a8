"""Counter-offers and one-step revisions over signed HTTP: *Suggest changes* and *Revise*
on a request card open the form prefilled with the request; sending it replaces the
request, whose card is updated in place, and posts the new one."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import CLIENT, FREELANCER, Bot, blocks_text
from tests.e2e.test_features import active, contract


def _inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def _buttons(bot: Bot, subject: str) -> list[str]:
    card = bot.card(subject)
    return [e["text"]["text"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]


def _opened(bot: Bot, user: str, callback_id: str) -> dict[str, Any]:
    views = bot.slack.wait_for(
        lambda: [v for v in bot.slack.open_views(user) if v.get("callback_id") == callback_id],
        message=f"no {callback_id} form open for {user}",
    )
    return views[-1]


def test_the_client_suggests_changes_and_the_freelancer_accepts_the_counter(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, 'edit 2 amount=3000 message="Scope grew"')
    assert "Suggest changes" in _buttons(bot, "request:1")

    bot.press(CLIENT, bot.card("request:1"), "Suggest changes")
    view = _opened(bot, CLIENT, "counter_request")
    assert _inputs(view)["m2_amount"]["element"]["initial_value"] == "3000.00"
    result = bot.driver.submit_view(
        CLIENT, inputs={"m2_amount": "2750", "message": "Meet me halfway"}
    )

    assert result.status == 200 and result.body == b""
    bot.ephemeral_to(CLIENT, "Sent change request #2")
    bot.quiet()  # the work after the ack: both cards and the announcement
    first = bot.card_shows("request:1", "Countered")
    assert "as change request #2" in first
    assert _buttons(bot, "request:1") == []
    second = bot.card_text("request:2")
    assert "counter-offer to change request #1" in second and "Meet me halfway" in second
    assert f"<@{FREELANCER}> accepts, declines or suggests changes" in second
    assert any("counter-offer, change request #2" in text for text in bot.posts()), bot.posts()

    answer = bot.click(FREELANCER, bot.card("request:2"), "Accept")

    assert "Accepted" in answer  # the card, updated in place
    data = contract(bot)
    assert [r["status"] for r in data["change_requests"]] == ["countered", "accepted"]
    assert data["change_requests"][1]["counter_of"] == 1
    assert data["milestones"][1]["amount_minor"] == 275_000


def test_the_freelancer_revises_its_request_in_one_step_with_a_new_description(
    bot: Bot,
) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")

    bot.press(FREELANCER, bot.card("request:1"), "Revise")
    _opened(bot, FREELANCER, "revise_request")
    result = bot.driver.submit_view(
        FREELANCER, inputs={"m2_amount": "2900", "m2_description": "Shop and blog"}
    )

    assert result.status == 200 and result.body == b""
    bot.quiet()
    assert "revised as change request #2" in bot.card_shows("request:1", "Withdrawn")
    assert "replaces #1" in bot.card_text("request:2")
    bot.click(CLIENT, bot.card("request:2"), "Accept")
    data = contract(bot)
    assert [r["status"] for r in data["change_requests"]] == ["withdrawn", "accepted"]
    assert data["milestones"][1]["amount_minor"] == 290_000
    assert data["milestones"][1]["description"] == "Shop and blog"


def test_the_wrong_side_is_told_before_any_form_opens(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")

    own = bot.click(FREELANCER, bot.card("request:1"), "Suggest changes")
    other = bot.click(CLIENT, bot.card("request:1"), "Revise")

    assert "Only the client" in own and "suggest changes to change request #1" in own
    assert "Only the freelancer" in other and "revise change request #1" in other
    assert bot.slack.open_views(FREELANCER) == [] and bot.slack.open_views(CLIENT) == []
    assert contract(bot)["change_requests"][0]["status"] == "pending"
    assert "Pending" in blocks_text(bot.card("request:1").blocks)


def test_a_form_sent_after_the_request_was_answered_is_refused_in_the_form(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    bot.press(CLIENT, bot.card("request:1"), "Suggest changes")
    _opened(bot, CLIENT, "counter_request")
    bot.click(FREELANCER, bot.card("request:1"), "Withdraw")  # meanwhile

    result = bot.driver.submit_view(CLIENT, inputs={"m2_amount": "2750"})

    body = result.json()
    assert body["response_action"] == "errors"
    assert "already withdrawn" in " ".join(body["errors"].values())
    assert [r["status"] for r in contract(bot)["change_requests"]] == ["withdrawn"]
