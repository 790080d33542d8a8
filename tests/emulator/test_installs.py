"""The emulator with several installs: a Slack Connect channel knows which installed
workspace's bot is a member (per calling token), a message is posted as the calling
token's bot and only that bot may edit it, and an org-wide install answers as Slack's
`oauth.v2.access` does for one."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.emulator import SlackEmulator

SHARED = "C0SHARED"


def installed(emulator: SlackEmulator, code: str) -> WebClient:
    answer = WebClient(base_url=emulator.api_url).oauth_v2_access(
        client_id=emulator.oauth.client_id, client_secret=emulator.oauth.client_secret, code=code
    )
    return WebClient(token=answer["access_token"], base_url=emulator.api_url)


def test_membership_posts_and_edits_follow_the_calling_tokens_bot(
    emulator: SlackEmulator,
) -> None:
    a = installed(emulator, emulator.oauth.authorize("T0AAA", "A"))
    b = installed(emulator, emulator.oauth.authorize("T0BBB", "B"))
    emulator.add_channel(SHARED, "shared", bot_teams=["T0BBB"])

    assert a.conversations_info(channel=SHARED)["channel"]["is_member"] is False
    assert b.conversations_info(channel=SHARED)["channel"]["is_member"] is True
    with pytest.raises(SlackApiError) as refused:
        a.chat_postMessage(channel=SHARED, text="hello")
    assert refused.value.response["error"] == "not_in_channel"

    ts = b.chat_postMessage(channel=SHARED, text="card")["ts"]
    message = emulator.message(SHARED, ts)
    assert message is not None and message.team == "T0BBB" and message.user.startswith("UB")

    emulator.set_membership(SHARED, is_member=True, team_id="T0AAA")
    with pytest.raises(SlackApiError) as not_its_own:
        a.chat_update(channel=SHARED, ts=ts, text="edited by A")
    assert not_its_own.value.response["error"] == "cant_update_message"
    assert b.chat_update(channel=SHARED, ts=ts, text="edited by B")["ok"]

    emulator.set_membership(SHARED, is_member=False, team_id="T0BBB")
    assert b.conversations_info(channel=SHARED)["channel"]["is_member"] is False
    assert a.conversations_info(channel=SHARED)["channel"]["is_member"] is True


def test_an_org_wide_install_answers_with_the_org_and_no_workspace(
    emulator: SlackEmulator,
) -> None:
    answer = WebClient(base_url=emulator.api_url).oauth_v2_access(
        client_id=emulator.oauth.client_id,
        client_secret=emulator.oauth.client_secret,
        code=emulator.oauth.authorize_org("E0ORG", "Org"),
    )

    assert answer["team"] is None and answer["is_enterprise_install"] is True
    assert answer["enterprise"] == {"id": "E0ORG", "name": "Org"}
    assert emulator.oauth.team_of_token(answer["access_token"]) == "E0ORG"
