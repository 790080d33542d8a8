"""The emulator's Web API side, exercised with a real slack_sdk WebClient."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from sandbox.emulator import SlackEmulator

BUTTON_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "block_id": "intro", "text": {"type": "mrkdwn", "text": "Hello"}},
    {
        "type": "actions",
        "block_id": "acts",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "m-1",
                "text": {"type": "plain_text", "text": "Approve milestone"},
            },
            {
                "type": "button",
                "action_id": "reject",
                "value": "m-1",
                "text": {"type": "plain_text", "text": "Reject"},
            },
        ],
    },
]

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "cb",
    "title": {"type": "plain_text", "text": "Title"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
}


def _get(url: str) -> dict[str, object]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as reply:
        data = json.loads(reply.read())
    assert isinstance(data, dict)
    return data


def test_auth_test_and_scopes_header(emulator: SlackEmulator, client: WebClient) -> None:
    resp = client.auth_test()
    assert resp["user_id"] == "U0BOT"
    assert resp["bot_id"] == "B0001"
    assert resp["team_id"] == "T0001"
    assert "chat:write" in resp.headers["x-oauth-scopes"]
    assert emulator.calls_to("auth.test")[0].http_method == "POST"


def test_bad_or_missing_token(emulator: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxp-user", base_url=emulator.api_url).auth_test()
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=emulator.api_url).auth_test()
    assert err.value.response["error"] == "not_authed"


def test_get_with_query_and_token_param(emulator: SlackEmulator) -> None:
    emulator.add_user("U1", "alice")
    data = _get(f"{emulator.api_url}users.info?user=U1&token=xoxb-q")
    assert data["ok"] is True
    call = emulator.calls_to("users.info")[0]
    assert call.http_method == "GET"
    assert call.params["user"] == "U1"


def test_post_update_roundtrip(emulator: SlackEmulator, client: WebClient) -> None:
    first = client.chat_postMessage(channel="C1", text="one", blocks=BUTTON_BLOCKS)
    second = client.chat_postMessage(channel="C1", text="two")
    assert first["ts"] != second["ts"]
    assert first["ts"] < second["ts"]
    secs, micros = first["ts"].split(".")
    assert secs.isdigit() and len(micros) == 6
    assert first["message"]["bot_id"] == "B0001"

    client.chat_update(channel="C1", ts=first["ts"], text="one (edited)", blocks=[])
    stored = emulator.message("C1", first["ts"])
    assert stored is not None
    assert (stored.text, stored.blocks, stored.edited) == ("one (edited)", [], 1)
    assert [m.text for m in emulator.messages("C1")] == ["one (edited)", "two"]

    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"

    call = emulator.calls_to("chat.update")[0]
    assert call.params["ts"] == first["ts"]
    assert call.ok


def test_threads_delete_and_permalink(emulator: SlackEmulator, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C1", text="parent")["ts"]
    reply = client.chat_postMessage(channel="C1", text="reply", thread_ts=parent)["ts"]
    assert [m.text for m in emulator.thread("C1", parent)] == ["parent", "reply"]
    assert [m.text for m in emulator.messages("C1", include_replies=False)] == ["parent"]
    parent_msg = emulator.message("C1", parent)
    assert parent_msg is not None and parent_msg.reply_count == 1
    link = client.chat_getPermalink(channel="C1", message_ts=reply)["permalink"]
    assert link.startswith(emulator.url) and "thread_ts=" in link
    client.chat_delete(channel="C1", ts=reply)
    assert emulator.message("C1", reply) is None
    parent_msg = emulator.message("C1", parent)
    assert parent_msg is not None and parent_msg.reply_count == 0


def test_no_text_and_membership(emulator: SlackEmulator, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1")
    assert err.value.response["error"] == "no_text"
    emulator.add_channel("C2", "private-ish", is_member=False)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C2", text="hi")
    assert err.value.response["error"] == "not_in_channel"
    info = client.conversations_info(channel="C2")["channel"]
    assert info["is_member"] is False and info["name"] == "private-ish"


def test_strict_mode_unknown_channel() -> None:
    with SlackEmulator(strict=True) as emu:
        client = WebClient(token="xoxb-t", base_url=emu.api_url)
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C404", text="hi")
        assert err.value.response["error"] == "channel_not_found"
        emu.add_channel("C1", "general")
        assert client.chat_postMessage(channel="C1", text="hi")["ok"]


def test_dm_by_user_id(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.add_user("U1", "alice")
    resp = client.chat_postMessage(channel="U1", text="psst")
    dm = emulator.dm_channel_id("U1")
    assert resp["channel"] == dm
    assert [m.text for m in emulator.messages(dm)] == ["psst"]
    assert client.conversations_open(users="U1")["channel"]["id"] == dm


def test_ephemeral(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.add_channel("C1", "general", members=["U1", "U2"])
    resp = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert resp["message_ts"]
    client.chat_postEphemeral(channel="C1", user="U2", text="only U2")
    assert [e.text for e in emulator.ephemerals(user="U1")] == ["only you"]
    assert len(emulator.ephemerals(channel="C1")) == 2
    assert emulator.messages("C1") == []
    with pytest.raises(SlackApiError) as err:
        client.chat_postEphemeral(channel="C1", user="U9", text="x")
    assert err.value.response["error"] == "user_not_in_channel"


def test_users_info_tz_and_unknown(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.add_user("U1", "alice", real_name="Alice A", tz="Asia/Tokyo", tz_offset=32400)
    user = client.users_info(user="U1")["user"]
    assert (user["tz"], user["tz_offset"], user["real_name"]) == ("Asia/Tokyo", 32400, "Alice A")
    assert user["team_id"] == "T0001"
    assert user["profile"]["display_name"] == "alice"
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"


def test_conversations_members_paginates(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.add_channel("C1", "general", members=["U1", "U2", "U3"])
    seen: list[str] = []
    for page in client.conversations_members(channel="C1", limit=2):
        seen.extend(page["members"])
    assert seen == ["U1", "U2", "U3", "U0BOT"]


def test_views_open_trigger_single_use(emulator: SlackEmulator, client: WebClient) -> None:
    trigger = emulator.issue_trigger_id("U1")
    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert view["id"].startswith("V") and view["callback_id"] == "cb"
    assert [v["id"] for v in emulator.open_views("U1")] == [view["id"]]
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=trigger, view=MODAL)
    assert err.value.response["error"] == "exchanged_trigger_id"
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="123.456.abc", view=MODAL)
    assert err.value.response["error"] == "invalid_trigger_id"


def test_views_trigger_expiry() -> None:
    now = [1_700_000_000.0]
    with SlackEmulator(clock=lambda: now[0]) as emu:
        client = WebClient(token="xoxb-t", base_url=emu.api_url)
        trigger = emu.issue_trigger_id("U1")
        now[0] += 3.5
        with pytest.raises(SlackApiError) as err:
            client.views_open(trigger_id=trigger, view=MODAL)
        assert err.value.response["error"] == "expired_trigger_id"


def test_views_push_update_hash_and_limit(emulator: SlackEmulator, client: WebClient) -> None:
    root = client.views_open(trigger_id=emulator.issue_trigger_id("U1"), view=MODAL)["view"]
    pushed = client.views_push(trigger_id=emulator.issue_trigger_id("U1"), view=MODAL)["view"]
    assert pushed["previous_view_id"] == root["id"] and pushed["root_view_id"] == root["id"]
    client.views_push(trigger_id=emulator.issue_trigger_id("U1"), view=MODAL)
    with pytest.raises(SlackApiError) as err:
        client.views_push(trigger_id=emulator.issue_trigger_id("U1"), view=MODAL)
    assert err.value.response["error"] == "push_limit_reached"
    assert len(emulator.open_views("U1")) == 3

    new = dict(MODAL, callback_id="cb2", external_id="ext-1")
    updated = client.views_update(view_id=root["id"], view=new, hash=root["hash"])["view"]
    assert updated["id"] == root["id"] and updated["hash"] != root["hash"]
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=root["id"], view=new, hash=root["hash"])
    assert err.value.response["error"] == "hash_conflict"
    by_external = client.views_update(external_id="ext-1", view=dict(new, callback_id="cb3"))
    assert by_external["view"]["id"] == root["id"]
    assert emulator.views[root["id"]]["callback_id"] == "cb3"
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id="V404", view=new)
    assert err.value.response["error"] == "not_found"


def test_views_publish_home(emulator: SlackEmulator, client: WebClient) -> None:
    home = {"type": "home", "blocks": BUTTON_BLOCKS}
    first = client.views_publish(user_id="U1", view=home)["view"]
    second = client.views_publish(user_id="U1", view=dict(home, blocks=[]))["view"]
    assert first["id"] == second["id"]
    stored = emulator.home_view("U1")
    assert stored is not None and stored["blocks"] == []
    with pytest.raises(SlackApiError) as err:
        client.views_publish(user_id="U1", view=MODAL)
    assert err.value.response["error"] == "invalid_arguments"


def test_rate_limit_injection(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    failed, succeeded = emulator.calls_to("chat.postMessage")
    assert (failed.status, failed.ok, succeeded.ok) == (429, False, True)
    assert len(emulator.messages("C1")) == 1


def test_fault_kinds_scoping_and_times(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.fail_next("chat.postMessage", status=429, channel="C2")
    assert client.chat_postMessage(channel="C1", text="unaffected")["ok"]
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C2", text="limited")

    emulator.fail_next("users.info", error="user_not_found", times=2)
    emulator.add_user("U1", "alice")
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.users_info(user="U1")
        assert err.value.response.status_code == 200
        assert err.value.response["error"] == "user_not_found"
    assert client.users_info(user="U1")["ok"]

    emulator.fail_next("*", status=500)
    with pytest.raises(SlackApiError) as err:
        client.auth_test()
    assert err.value.response.status_code == 500


def test_delay(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.delay("auth.test", 1.0, times=1)
    started = time.monotonic()
    client.auth_test()
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    client.auth_test()  # the delay was for one call only
    assert time.monotonic() - started < 1.0


def test_unknown_method_is_ok_and_recorded(emulator: SlackEmulator, client: WebClient) -> None:
    assert client.api_call("reactions.add", json={"name": "tada"})["ok"]
    assert emulator.calls_to("reactions.add")[0].params == {"name": "tada"}


def test_response_url_replace_original(emulator: SlackEmulator, client: WebClient) -> None:
    ts = client.chat_postMessage(channel="C1", text="pick", blocks=BUTTON_BLOCKS)["ts"]
    url = emulator.new_response_url(channel="C1", user_id="U1", message_ts=ts)
    webhook = WebhookClient(url)
    assert webhook.send(text="Approved!", replace_original=True).status_code == 200
    stored = emulator.message("C1", ts)
    assert stored is not None
    assert (stored.text, stored.blocks, stored.edited) == ("Approved!", [], 1)
    assert emulator.responses[0].body["replace_original"] is True

    webhook.send(text="just for you")
    assert [e.text for e in emulator.ephemerals("C1", "U1")] == ["just for you"]
    webhook.send(text="for all", response_type="in_channel")
    assert emulator.messages("C1")[-1].text == "for all"
    webhook.send(text="", delete_original=True)
    assert emulator.message("C1", ts) is None
    assert webhook.send(text="fifth").status_code == 200
    sixth = webhook.send(text="sixth")
    assert sixth.status_code == 404 and "used_url" in sixth.body
    assert len(emulator.responses) == 6


def test_response_url_without_origin_replaces_last_reply(
    emulator: SlackEmulator,
) -> None:
    url = emulator.new_response_url(channel="C1", user_id="U1")
    webhook = WebhookClient(url)
    webhook.send(text="working…")
    webhook.send(text="done", replace_original=True)
    assert [e.text for e in emulator.ephemerals("C1", "U1")] == ["done"]
    assert WebhookClient(f"{emulator.url}/response/nope").send(text="x").status_code == 404


def test_find_button_and_wait_for(emulator: SlackEmulator, client: WebClient) -> None:
    ts = client.chat_postMessage(channel="C1", text="pick", blocks=BUTTON_BLOCKS)["ts"]
    ref = emulator.find_button("C1", ts, label_startswith="Approve")
    assert ref == ("approve", "m-1", "acts")
    with pytest.raises(LookupError, match="Approve milestone"):
        emulator.find_button("C1", ts, label_startswith="Nope")
    assert emulator.wait_for(lambda: emulator.messages("C1"), timeout=0.5)
    with pytest.raises(AssertionError, match="never"):
        emulator.wait_for(lambda: False, timeout=0.05, message="never")


def test_validate_blocks_option() -> None:
    with SlackEmulator(validate_blocks=True) as emu:
        client = WebClient(token="xoxb-t", base_url=emu.api_url)
        bad = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 200}}]
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C1", text="t", blocks=bad)
        assert err.value.response["error"] == "invalid_blocks"
        assert client.chat_postMessage(channel="C1", text="t", blocks=BUTTON_BLOCKS)["ok"]


def test_listener_and_reset(emulator: SlackEmulator, client: WebClient) -> None:
    seen: list[str] = []
    remove = emulator.add_listener(lambda item: seen.append(type(item).__name__))
    client.auth_test()
    remove()
    client.auth_test()
    assert seen == ["ApiCall"]
    emulator.reset()
    assert emulator.calls == []
    assert emulator.user("U0BOT") is not None
