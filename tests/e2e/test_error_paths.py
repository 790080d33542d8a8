"""Error paths end to end: forged and stale requests, wrong people, stale and double
clicks, replays, bad input. Each gets a clear answer and changes nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import CHANNEL, CLIENT, FREELANCER, MEMBER, OUTSIDER, Bot
from tests.e2e.test_features import (
    NEW,
    active,
    contract,
    exported,
    funded,
    negotiated,
    submitted,
)


def counts(bot: Bot) -> tuple[str, int]:
    """The whole exported state and the number of channel posts, to compare."""
    return repr(exported(bot)), len(bot.slack.messages(CHANNEL))


def test_a_forged_signature_is_refused_with_401_and_changes_nothing(bot: Bot) -> None:
    active(bot)
    before = counts(bot)
    body = b"command=%2Fmilestone&text=fund&user_id=U0CLIENT&channel_id=C0DEALS"
    headers = bot.driver.sign(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = bot.driver.raw(body, headers)
    assert response.status == 401
    assert counts(bot) == before


def test_a_stale_timestamp_is_refused_with_401(bot: Bot) -> None:
    active(bot)
    before = counts(bot)
    body = b"command=%2Fmilestone&text=fund&user_id=U0CLIENT&channel_id=C0DEALS"
    headers = bot.driver.sign(body, timestamp=int(time.time()) - 301)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert bot.driver.raw(body, headers).status == 401
    assert counts(bot) == before


def test_missing_signature_headers_are_refused(bot: Bot) -> None:
    body = b"command=%2Fmilestone&text=help"
    response = bot.driver.raw(body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 401


def test_an_outsider_clicking_fund_is_told_who_can_and_nothing_changes(bot: Bot) -> None:
    active(bot)
    before = counts(bot)
    reply = bot.click(OUTSIDER, bot.card("contract:1"), "Fund")
    assert "not a party" in reply and f"<@{CLIENT}>" in reply
    assert counts(bot) == before


def test_the_freelancer_clicking_accept_is_told_only_the_client_can(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    before = repr(exported(bot))
    reply = bot.click(FREELANCER, bot.card("request:1"), "Accept")
    assert f"Only the client, <@{CLIENT}>, can accept change request #1" in reply
    assert repr(exported(bot)) == before


def test_an_agency_member_cannot_propose_changes(bot: Bot) -> None:
    bot.say(
        CLIENT,
        f'new "Agency work" client=<@{CLIENT}> agency="Pixel" manager=<@U0MANAGE> '
        f"members=<@{MEMBER}>",
    )
    bot.say(CLIENT, 'add "One" 100 2030-01-01')
    bot.say(CLIENT, "start")
    bot.say("U0MANAGE", "start")
    before = repr(exported(bot))
    reply = bot.say(MEMBER, "edit 1 amount=200")
    assert "Only" in reply and "manager" in reply
    assert repr(exported(bot)) == before


def accept_button(message: Any) -> dict[str, Any]:
    return next(
        e
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"].startswith("Accept")
    )


def click_stale(bot: Bot, user: str, stale: Any, label: str) -> str:
    """Click a button on an old copy of a message, as a client that hasn't refreshed would."""
    button = next(
        e
        for b in stale.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"].startswith(label)
    )
    response_url = bot.slack.new_response_url(channel=CHANNEL, user_id=user, message_ts=stale.ts)
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0001"},
        "team": {"id": "T0001"},
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "message_ts": stale.ts, "channel_id": CHANNEL},
        "message": {"ts": stale.ts, "blocks": stale.blocks, "text": stale.text},
        "trigger_id": bot.slack.issue_trigger_id(user),
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "value": button["value"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    response = bot.driver.send_payload(payload)
    assert response.status == 200
    post = bot.slack.wait_for(lambda: [r for r in bot.slack.responses if r.url == response_url])
    return str(post[-1].body.get("text", ""))


def test_a_second_click_on_accept_says_it_is_already_done(bot: Bot) -> None:
    funded(bot)
    bot.say(FREELANCER, "edit 1 amount=2000")
    stale = bot.card("request:1")  # the copy with buttons, as a slow client still shows it
    bot.click(CLIENT, stale, "Accept")
    assert "already accepted" in click_stale(bot, CLIENT, stale, "Accept")
    assert contract(bot)["escrow"]["funded_minor"] == 200000  # topped up once


def test_accept_clicked_on_a_withdrawn_request_explains_and_changes_nothing(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    stale = bot.card("request:1")  # the copy with buttons, before the withdrawal
    bot.click(FREELANCER, stale, "Withdraw")
    before = repr(exported(bot))
    assert "withdrawn" in click_stale(bot, CLIENT, stale, "Accept")
    assert repr(exported(bot)) == before


def test_a_button_value_pointing_at_another_contract_is_refused(bot: Bot) -> None:
    active(bot)
    bot.say(FREELANCER, "edit 2 amount=3000")
    bot.slack.add_channel("C0OTHER", "other", members=[OUTSIDER, FREELANCER])
    bot.say(
        OUTSIDER, f'new "Other" client=<@{OUTSIDER}> freelancer=<@{FREELANCER}>', channel="C0OTHER"
    )
    before = repr(exported(bot))
    card = bot.card("request:1")
    accept = next(
        e
        for b in card.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"].startswith("Accept")
    )
    # The outsider is the client of contract 2 and rewrites the value to name it.
    response = bot.driver.click(
        OUTSIDER,
        channel_id=CHANNEL,
        message_ts=bot.card("request:1").ts,
        action_id=accept["action_id"],
        value='{"c":2,"r":1}',
    )
    assert "not part of contract 2" in bot.reply_to(response)
    assert repr(exported(bot)) == before


def test_a_replayed_command_changes_nothing_the_second_time(bot: Bot) -> None:
    active(bot)
    bot.say(CLIENT, "fund")
    before = counts(bot)
    bot.reply_to(bot.driver.command(FREELANCER, 'submit "done"', channel_id=CHANNEL))
    first = bot.driver.last_request
    after_first = counts(bot)
    assert after_first != before
    replay = bot.driver.replay(first)
    assert replay.status == 200
    time.sleep(0.3)
    assert counts(bot) == after_first


def test_a_replayed_fund_click_moves_no_money_the_second_time(bot: Bot) -> None:
    active(bot)
    bot.click(CLIENT, bot.card("contract:1"), "Fund")
    first = bot.driver.last_request
    state = counts(bot)
    assert bot.driver.replay(first).status == 200
    time.sleep(0.3)
    assert counts(bot) == state
    ledger = contract(bot)["ledger"]
    assert [e["kind"] for e in ledger] == ["fund"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('add "Extra" -5 2030-01-01', "negative"),
        ('add "Extra" abc 2030-01-01', "not an amount"),
        ('add "Extra" 1.234 2030-01-01', "decimals"),
        ('add "Extra" 99999999999 2030-01-01', "largest"),
        ('add "Extra" 100 2030-02-30', "YYYY-MM-DD"),
        ('add "Extra" 100 someday', "YYYY-MM-DD"),
        ('add "Extra" 100 2020-01-01', "past"),
        ('add "' + "x" * 201 + '" 100 2030-01-01', "limit is 200"),
        ('add "Extra" 100 2030-01-01 "' + "d" * 2001 + '"', "limit is 2,000"),
        ("frobnicate", "frobnicate"),
    ],
)
def test_bad_input_gets_a_clear_reason_and_changes_nothing(
    bot: Bot, text: str, expected: str
) -> None:
    bot.say(CLIENT, NEW)
    before = counts(bot)
    reply = bot.say(CLIENT, text)
    assert expected.lower() in reply.lower(), reply
    assert counts(bot) == before


def test_new_in_a_channel_without_the_bot_says_how_to_invite_it(bot: Bot) -> None:
    bot.slack.add_channel("C0NOBOT", "private-talk", is_member=False, members=[CLIENT])
    reply = bot.say(CLIENT, NEW, channel="C0NOBOT")
    assert "/invite" in reply
    assert exported(bot) == {"contracts": []}


def test_commands_without_a_contract_in_the_channel_say_how_to_create_one(bot: Bot) -> None:
    reply = bot.say(CLIENT, "status")
    assert "/milestone new" in reply


def test_mentions_arrive_in_both_escaped_forms_and_quotes_may_be_curly(bot: Bot) -> None:
    reply = bot.say(CLIENT, f"NEW “Curly title” client=<@{CLIENT}> freelancer=<@{FREELANCER}|fred>")
    assert "Curly title" in reply
    assert contract(bot)["title"] == "Curly title"


def test_user_typed_mrkdwn_pings_nobody_on_the_card(bot: Bot) -> None:
    # With escaping on, Slack sends what the user typed with &, <, > escaped; a real
    # @channel mention arrives as <!channel>. Neither may ping anyone from the card.
    bot.say(
        CLIENT, f'new "&lt;!channel&gt; &amp; co" client=<@{CLIENT}> freelancer=<@{FREELANCER}>'
    )
    bot.say(CLIENT, 'add "<!here> launch" 100 2030-01-01')
    card = bot.card_text("contract:1")
    assert "<!channel>" not in card and "<!here>" not in card
    assert "&lt;!channel&gt; &amp; co" in card


HOSTILE = "<!channel> <http://evil.example|click>"
# What Slack sends (escaping on) when someone types those characters in a command.
HOSTILE_TYPED = "&lt;!channel&gt; &lt;http://evil.example|click&gt;"


def _shows_hostile_markup(text: str) -> bool:
    return "<!channel>" in text or "<http://evil.example|click>" in text


def test_a_hostile_title_is_shown_as_text_in_every_ephemeral_reply(bot: Bot) -> None:
    negotiated(bot, amounts=("1500",))
    added = bot.say(FREELANCER, f'add "{HOSTILE_TYPED}" 100 2030-01-01')
    assert contract(bot)["milestones"][1]["title"] == HOSTILE
    assert "Milestone 2" in added and not _shows_hostile_markup(added)
    bot.say(CLIENT, "start")
    bot.say(FREELANCER, "start")
    bot.say(CLIENT, "fund")
    bot.say(FREELANCER, "submit")
    bot.say(CLIENT, "approve")
    funded_reply = bot.say(CLIENT, "fund")  # the client is shown the freelancer's title
    assert "Funded milestone 2" in funded_reply
    assert not _shows_hostile_markup(funded_reply)


def test_a_hostile_title_from_a_form_is_shown_as_text_in_the_confirmation(bot: Bot) -> None:
    negotiated(bot, amounts=("1500",))
    bot.driver.command(FREELANCER, "add", channel_id=CHANNEL)
    bot.slack.wait_for(lambda: bot.slack.open_views(FREELANCER))
    result = bot.driver.submit_view(
        FREELANCER, inputs={"title": HOSTILE, "amount": "100", "due_date": "2030-05-01"}
    )
    assert result.status == 200
    bot.ephemeral_to(FREELANCER, "Milestone 2")
    shown = [e for e in bot.slack.ephemerals(user=FREELANCER) if "Milestone 2" in e.text]
    assert shown and not any(_shows_hostile_markup(e.text) for e in shown)
    assert not any(_shows_hostile_markup(str(e.blocks)) for e in shown)


def test_a_rate_limited_card_update_is_delivered_after_retry_after(bot: Bot) -> None:
    bot.say(CLIENT, NEW)
    bot.slack.fail_next("chat.update", status=429, retry_after=1)
    bot.expected_errors.add("ratelimited")
    bot.say(CLIENT, 'add "Design" 1500 2030-01-01')
    assert "Design" not in bot.card_text("contract:1")  # deferred, not lost
    time.sleep(1.1)
    bot.delivery.sweep()
    bot.card_shows("contract:1", "Design")


def test_work_submitted_can_not_be_ended_by_the_client(bot: Bot) -> None:
    submitted(bot)
    before = repr(exported(bot))
    reply = bot.say(CLIENT, "end")
    assert "approve it or request changes" in reply
    assert repr(exported(bot)) == before
