"""One end-to-end test per feature: signed HTTP in, Web API calls out to the emulator."""

from __future__ import annotations

import json

from domain import export
from tests.e2e.conftest import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    MANAGER,
    MEMBER,
    OTHER_TEAM,
    PARTNER,
    Bot,
    blocks_text,
)

NEW = f'new "Website redesign" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'


def exported(bot: Bot) -> dict:
    with bot.runtime.sessions() as session, session.begin():
        return export.export_contracts(session)


def contract(bot: Bot) -> dict:
    return exported(bot)["contracts"][0]


def negotiated(bot: Bot, *, amounts: tuple[str, ...] = ("1500", "2500")) -> None:
    bot.say(CLIENT, NEW)
    for number, amount in enumerate(amounts, start=1):
        bot.say(CLIENT, f'add "Milestone {number}" {amount} 2030-0{number}-01')


def active(bot: Bot, **kwargs: tuple[str, ...]) -> None:
    negotiated(bot, **kwargs)
    bot.say(CLIENT, "start")
    bot.say(FREELANCER, "start")


def funded(bot: Bot) -> None:
    active(bot)
    bot.click(CLIENT, bot.card("contract:1"), "Fund")


def submitted(bot: Bot) -> None:
    funded(bot)
    bot.say(FREELANCER, 'submit "Designs are in Figma"')


def test_create_posts_the_contract_card_and_announces_it(bot: Bot) -> None:
    reply = bot.say(CLIENT, NEW)
    assert "Contract 1" in reply and "created" in reply
    card = bot.card_text("contract:1")
    assert "Website redesign" in card and f"<@{CLIENT}>" in card and f"<@{FREELANCER}>" in card
    assert any("created contract 1" in text for text in bot.posts())
    parties = contract(bot)
    assert parties["client_id"] == CLIENT and parties["freelancer_id"] == FREELANCER


def test_create_from_the_modal_with_an_agency(bot: Bot) -> None:
    response = bot.driver.command(MANAGER, "new", channel_id=CHANNEL)
    assert response.status == 200
    view = bot.slack.wait_for(lambda: bot.slack.open_views(MANAGER))[-1]
    assert view["callback_id"] == "new_contract"
    result = bot.driver.submit_view(
        MANAGER,
        inputs={
            "title": "Mobile app",
            "client": CLIENT,
            "agency_name": "Pixel & Co",
            "managers": [MANAGER],
            "members": [MEMBER],
            "currency": "EUR",
        },
    )
    assert result.status == 200 and result.body == b""
    bot.ephemeral_to(MANAGER, "Contract 1")
    data = contract(bot)
    assert data["currency"] == "EUR"
    assert data["agency"] == {
        "name": "Pixel & Co",
        "manager_ids": [MANAGER],
        "member_ids": [MEMBER],
    }


def test_a_modal_with_invalid_input_shows_the_error_next_to_the_field_and_saves_nothing(
    bot: Bot,
) -> None:
    negotiated(bot, amounts=("1500",))
    bot.driver.command(CLIENT, "add", channel_id=CHANNEL)
    bot.slack.wait_for(lambda: bot.slack.open_views(CLIENT))
    result = bot.driver.submit_view(
        CLIENT, inputs={"title": "Extra", "amount": "-5", "due_date": "2030-05-01"}
    )
    body = result.json()
    assert body["response_action"] == "errors"
    assert "amount" in body["errors"]
    assert len(contract(bot)["milestones"]) == 1
    assert bot.slack.open_views(CLIENT), "the modal stays open"


def test_negotiation_changes_apply_directly_and_clear_agreement(bot: Bot) -> None:
    negotiated(bot)
    bot.say(CLIENT, "start")
    reply = bot.say(FREELANCER, "edit 2 amount=3000")
    assert "updated" in reply
    card = bot.card_text("contract:1")
    assert "$3,000.00" in card
    assert bot.say(FREELANCER, "delete 1").startswith("Milestone 1")
    data = contract(bot)
    assert [m["status"] for m in data["milestones"]] == ["deleted", "pending"]
    assert data["status"] == "negotiating"
    # the client's earlier agreement was cleared by the edit: the contract is not active
    bot.say(FREELANCER, "start")
    assert contract(bot)["status"] == "negotiating"


def test_start_needs_both_sides_and_the_agree_button_works(bot: Bot) -> None:
    negotiated(bot)
    assert "Waiting for" in bot.say(CLIENT, "start")
    card = bot.card("contract:1")
    assert "Active" in bot.click(FREELANCER, card, "Agree")  # the card is the answer
    assert contract(bot)["status"] == "active"
    assert "Fund" in blocks_text(bot.card("contract:1").blocks)


def test_propose_creates_a_request_card_with_accept_decline_withdraw(bot: Bot) -> None:
    active(bot)
    reply = bot.say(FREELANCER, 'edit 2 amount=3000 message="Scope grew"')
    assert "change request #1" in reply.lower()
    card = bot.card("request:1")
    text = blocks_text(card.blocks)
    assert "$2,500.00" in text and "$3,000.00" in text and "Scope grew" in text
    labels = [
        e["text"]["text"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert any(label.startswith("Accept") for label in labels)
    assert any(label.startswith("Decline") for label in labels)
    assert any(label.startswith("Withdraw") for label in labels)


def test_accept_by_button_applies_the_change_and_removes_the_buttons(bot: Bot) -> None:
    funded(bot)
    bot.say(FREELANCER, "edit 1 amount=2000")
    answer = bot.click(CLIENT, bot.card("request:1"), "Accept")
    assert "Change request #1" in answer and "Accepted" in answer  # the card, in place
    card = bot.card("request:1")
    assert not [b for b in card.blocks if b["type"] == "actions"]
    assert "accepted" in blocks_text(card.blocks).lower()
    data = contract(bot)
    assert data["milestones"][0]["amount_minor"] == 200000
    assert data["escrow"]["funded_minor"] == 200000  # topped up by the difference at once


def test_one_click_one_confirmation_the_card_and_one_announcement(bot: Bot) -> None:
    funded(bot)
    bot.say(FREELANCER, "edit 1 amount=2000")
    bot.quiet()
    posts_before = len(bot.posts())
    ephemerals_before = len(bot.slack.ephemerals(CHANNEL, CLIENT))

    response = bot.press(CLIENT, bot.card("request:1"), "Accept")

    assert bot.answers_to(response) == [], "the card is the answer: no ephemeral beside it"
    assert len(bot.slack.ephemerals(CHANNEL, CLIENT)) == ephemerals_before
    new_posts = bot.posts()[posts_before:]
    assert len(new_posts) == 1 and "accepted change request #1" in new_posts[0]
    assert "Accepted" in bot.card_text("request:1")


def test_decline_with_a_reason_from_the_modal(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    bot.press(CLIENT, bot.card("request:1"), "Decline")
    bot.slack.wait_for(lambda: bot.slack.open_views(CLIENT))
    result = bot.driver.submit_view(CLIENT, inputs={"reason": "Budget is fixed"})
    assert result.status == 200
    bot.card_shows("request:1", "Declined")
    data = contract(bot)
    assert data["change_requests"][0]["status"] == "declined"
    assert data["change_requests"][0]["decline_reason"] == "Budget is fixed"
    text = blocks_text(bot.card("request:1").blocks)
    assert "Budget is fixed" in text


def test_withdraw_by_the_proposer(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    assert "Withdrawn" in bot.click(FREELANCER, bot.card("request:1"), "Withdraw")
    assert contract(bot)["change_requests"][0]["status"] == "withdrawn"
    assert not [b for b in bot.card("request:1").blocks if b["type"] == "actions"]


def test_fund_tells_the_provider_to_start(bot: Bot) -> None:
    active(bot)
    card = bot.card("contract:1")
    button = bot.driver.find_button(CHANNEL, card.ts, label_startswith="Fund")
    fund = next(
        e
        for b in card.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") == button.action_id
    )
    assert "confirm" in fund, "money-moving buttons ask for confirmation"
    bot.click(CLIENT, card, "Fund")
    assert contract(bot)["milestones"][0]["status"] == "funded"
    assert any(f"<@{FREELANCER}>" in t and "you can start" in t for t in bot.posts())


def test_submit_posts_the_work_card_with_approve_and_request_changes(bot: Bot) -> None:
    submitted(bot)
    card = bot.card("work:1:1")
    text = blocks_text(card.blocks)
    assert "Designs are in Figma" in text
    assert "<!date^" in text, "the automatic release instant is a date token"
    labels = [
        e["text"]["text"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert any(label.startswith("Approve") for label in labels)
    assert any(label.startswith("Request changes") for label in labels)


def test_approve_releases_and_tells_the_provider_they_are_paid(bot: Bot) -> None:
    submitted(bot)
    assert "released" in bot.click(CLIENT, bot.card("work:1:1"), "Approve")  # on the card
    data = contract(bot)
    assert data["milestones"][0]["status"] == "released"
    assert data["escrow"]["released_minor"] == 150000
    assert any(f"<@{FREELANCER}>" in t and "paid" in t.lower() for t in bot.posts())
    assert not [b for b in bot.card("work:1:1").blocks if b["type"] == "actions"]


def test_request_changes_from_the_modal_stops_the_clock(bot: Bot) -> None:
    submitted(bot)
    bot.press(CLIENT, bot.card("work:1:1"), "Request changes")
    bot.slack.wait_for(lambda: bot.slack.open_views(CLIENT))
    bot.driver.submit_view(CLIENT, inputs={"note": "Bigger logo please"})
    bot.card_shows("work:1:1", "Bigger logo please")  # the card is the answer
    milestone = contract(bot)["milestones"][0]
    assert milestone["status"] == "funded" and milestone["auto_release_at"] is None
    assert "Bigger logo please" in blocks_text(bot.card("work:1:1").blocks)


def test_status_and_history_answer_ephemerally(bot: Bot) -> None:
    funded(bot)
    status = bot.say(FREELANCER, "status")
    assert "Milestone 1" in status and "$1,500.00" in status
    history = bot.say(FREELANCER, "history")
    assert "funded" in history and "added" in history


def test_app_home_shows_contracts_and_what_waits_for_the_user(bot: Bot) -> None:
    active(bot)
    home = bot.open_home(CLIENT)
    text = blocks_text(home["blocks"])
    assert "Website redesign" in text
    assert "Fund" in text, "the client owes the funding: its button is on Home"


def test_a_button_on_app_home_works_like_the_one_in_the_channel(bot: Bot) -> None:
    active(bot)
    home = bot.open_home(CLIENT)
    fund = next(
        e
        for b in home["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"].startswith("Fund")
    )
    response = bot.driver.click_home(CLIENT, fund["action_id"], fund["value"])
    assert response.status == 200
    bot.slack.wait_for(lambda: contract(bot)["milestones"][0]["status"] == "funded")


def test_end_refunds_escrow_and_cancels_pending_requests(bot: Bot) -> None:
    funded(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    assert "End contract" in bot.say(FREELANCER, "end"), "a confirmation comes first"
    assert contract(bot)["status"] == "active"
    confirmation = [
        e for e in bot.slack.ephemerals(CHANNEL, FREELANCER) if "End contract" in str(e.blocks)
    ][-1]
    response = bot.driver.click_button(FREELANCER, CHANNEL, confirmation.ts, "End contract")
    assert "ended" in bot.answers_to(response)[-1]
    data = contract(bot)
    assert data["status"] == "closed"
    assert data["escrow"]["refunded_minor"] == 150000 and data["escrow"]["balance_minor"] == 0
    assert data["change_requests"][0]["status"] == "cancelled"


def test_a_party_from_another_workspace_is_identified_by_user_id(bot: Bot) -> None:
    bot.say(CLIENT, f'new "Shared" client=<@{CLIENT}> freelancer=<@{PARTNER}|pat>')
    bot.say(CLIENT, 'add "Work" 100 2030-01-01')
    bot.say(CLIENT, "start")
    reply = bot.say(PARTNER, "start")
    assert "active" in reply
    from domain.model import Party

    with bot.runtime.sessions() as session:
        party = session.query(Party).filter_by(user_id=PARTNER).one()
    assert party.team_id == OTHER_TEAM


def test_help_shows_examples(bot: Bot) -> None:
    reply = bot.say(OUTSIDER_OR_ANYONE, "help")
    assert "/milestone new" in reply and "/milestone add" in reply


OUTSIDER_OR_ANYONE = "U0OUTSID"


def test_export_json_matches_the_interface_after_a_whole_contract(bot: Bot) -> None:
    submitted(bot)
    bot.click(CLIENT, bot.card("work:1:1"), "Approve")
    data = json.loads(json.dumps(exported(bot)))
    entry = data["contracts"][0]
    assert {
        "id",
        "title",
        "team_id",
        "channel_id",
        "currency",
        "status",
        "client_id",
        "freelancer_id",
        "agency",
        "milestones",
        "change_requests",
        "escrow",
        "ledger",
    } <= set(entry)
    assert [e["kind"] for e in entry["ledger"]] == ["fund", "release"]


def test_app_home_is_refreshed_for_every_party_who_has_opened_it(bot: Bot) -> None:
    negotiated(bot)
    bot.open_home(CLIENT)
    bot.open_home(FREELANCER)
    bot.quiet()  # the Homes of the negotiation are all out
    published = len(bot.slack.calls_to("views.publish"))
    bot.say(CLIENT, "start")
    bot.slack.wait_for(lambda: len(bot.slack.calls_to("views.publish")) >= published + 2)
    home = blocks_text(bot.slack.home_view(FREELANCER)["blocks"])
    assert "Agree" in home, "the freelancer's Home now shows the agreement it owes"


def test_a_home_never_opened_is_rendered_when_it_is_first_opened(bot: Bot) -> None:
    negotiated(bot)
    bot.say(CLIENT, "start")
    bot.quiet()
    assert bot.slack.calls_to("views.publish") == [], "nobody has opened the Home tab yet"

    home = blocks_text(bot.open_home(FREELANCER)["blocks"])

    assert "Website redesign" in home and "Agree" in home
