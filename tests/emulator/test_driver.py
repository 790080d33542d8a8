"""The driver against a tiny real bolt app served over HTTP, talking to the emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from sandbox.emulator import SlackDriver, SlackEmulator

from .conftest import SIGNING_SECRET, serve_bolt

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "deal",
    "title": {"type": "plain_text", "text": "New deal"},
    "submit": {"type": "plain_text", "text": "Create"},
    "private_metadata": "meta-1",
    "notify_on_close": True,
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "title_in"},
        },
        {
            "type": "input",
            "block_id": "due",
            "optional": True,
            "label": {"type": "plain_text", "text": "Due"},
            "element": {"type": "datepicker", "action_id": "due_pick"},
        },
        {
            "type": "input",
            "block_id": "owner",
            "optional": True,
            "label": {"type": "plain_text", "text": "Owner"},
            "element": {"type": "users_select", "action_id": "owner_pick"},
        },
        {
            "type": "input",
            "block_id": "currency",
            "label": {"type": "plain_text", "text": "Currency"},
            "element": {
                "type": "static_select",
                "action_id": "cur",
                "initial_option": {"text": {"type": "plain_text", "text": "EUR"}, "value": "EUR"},
                "options": [
                    {"text": {"type": "plain_text", "text": "EUR"}, "value": "EUR"},
                    {"text": {"type": "plain_text", "text": "USD"}, "value": "USD"},
                ],
            },
        },
        {
            "type": "actions",
            "block_id": "more",
            "elements": [
                {
                    "type": "button",
                    "action_id": "add_milestone",
                    "text": {"type": "plain_text", "text": "Add milestone"},
                }
            ],
        },
    ],
}

BUTTONS: list[dict[str, Any]] = [
    {
        "type": "actions",
        "block_id": "acts",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "deal-7",
                "text": {"type": "plain_text", "text": "Approve"},
            }
        ],
    }
]


@dataclass
class Seen:
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def last(self, kind: str) -> dict[str, Any]:
        for body in reversed(self.bodies):
            if body.get("type") == kind or (kind == "command" and "command" in body):
                return dict(body)
        raise LookupError(kind)


def build_app(emulator: SlackEmulator, seen: Seen) -> App:
    app = App(
        client=WebClient(token="xoxb-test", base_url=emulator.api_url),
        signing_secret=SIGNING_SECRET,
    )

    @app.command("/milestone")
    def on_command(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        seen.bodies.append(body)
        text = body["text"]
        if text == "echo":
            ack(text="echo!")
            return
        if text == "public":
            ack(text="everyone sees this", response_type="in_channel")
            return
        ack()
        if text == "post":
            client.chat_postMessage(channel=body["channel_id"], text="deal", blocks=BUTTONS)
        elif text == "modal":
            client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        elif text == "later":
            respond(text="later reply")

    @app.action("approve")
    def on_approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        seen.bodies.append(body)
        ack()
        respond(text=f"Approved {body['actions'][0]['value']}", replace_original=True)

    @app.action("add_milestone")
    def on_add(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        seen.bodies.append(body)
        ack()
        client.views_push(trigger_id=body["trigger_id"], view=dict(MODAL, callback_id="ms"))

    @app.action("home_btn")
    def on_home(ack: Ack, body: dict[str, Any]) -> None:
        seen.bodies.append(body)
        ack()

    @app.view("deal")
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        seen.bodies.append(body)
        values = view["state"]["values"]
        if not values["title"]["title_in"]["value"]:
            ack(response_action="errors", errors={"title": "Title is required"})
        elif values["title"]["title_in"]["value"] == "replace":
            ack(response_action="update", view=dict(MODAL, callback_id="deal2"))
        else:
            ack()

    @app.view("ms")
    def on_ms_submit(ack: Ack) -> None:
        ack(response_action="clear")

    @app.view_closed("deal")
    def on_closed(ack: Ack, body: dict[str, Any]) -> None:
        seen.bodies.append(body)
        ack()

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(
            user_id=event["user"],
            view={
                "type": "home",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "home_btn",
                                "value": "h",
                                "text": {"type": "plain_text", "text": "Go"},
                            }
                        ],
                    }
                ],
            },
        )

    return app


@dataclass
class Rig:
    emulator: SlackEmulator
    driver: SlackDriver
    seen: Seen


@pytest.fixture
def rig(emulator: SlackEmulator) -> Iterator[Rig]:
    emulator.add_user("U1", "alice", tz="Europe/Berlin")
    emulator.add_channel("C1", "general", members=["U1"])
    seen = Seen()
    url, server, thread = serve_bolt(build_app(emulator, seen))
    try:
        yield Rig(emulator, SlackDriver(emulator, url, SIGNING_SECRET), seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_signed_command_is_acked_with_realistic_fields(rig: Rig) -> None:
    resp = rig.driver.command("U1", "hello", channel_id="C1")
    assert resp.status == 200 and resp.body == b""
    body = rig.seen.last("command")
    assert body["user_name"] == "alice"
    assert body["channel_name"] == "general"
    assert body["team_id"] == "T0001"
    assert body["command"] == "/milestone"
    assert body["is_enterprise_install"] == "false"
    assert body["response_url"] == resp.response_url
    assert body["trigger_id"] == resp.trigger_id


def test_bad_signature_stale_timestamp_and_replay(rig: Rig) -> None:
    first = rig.driver.command("U1", "hello", channel_id="C1")
    assert first.status == 200
    sent = rig.driver.last_request
    assert sent is not None

    forged = dict(sent.headers, **{"X-Slack-Signature": "v0=" + "0" * 64})
    resp = rig.driver.raw(sent.body, forged)
    assert resp.status == 401
    assert resp.json() == {"error": "invalid request"}

    stale = rig.driver.sign(sent.body, timestamp=int(time.time()) - 301)
    resp = rig.driver.raw(sent.body, dict(sent.headers, **stale))
    assert resp.status == 401

    # bolt itself does not dedupe: the exact same bytes are accepted again
    assert rig.driver.replay(sent).status == 200
    assert len([b for b in rig.seen.bodies if "command" in b]) == 2


def test_shifted_clock_signs_out_of_window(emulator: SlackEmulator, rig: Rig) -> None:
    url = rig.driver.endpoint.removesuffix("/slack/events")
    late = SlackDriver(emulator, url, SIGNING_SECRET, clock=lambda: time.time() + 3600)
    assert late.command("U1", "hello", channel_id="C1").status == 401


def test_listener_post_lands_in_emulator_and_click_replaces(rig: Rig) -> None:
    emu = rig.emulator
    assert rig.driver.command("U1", "post", channel_id="C1").status == 200
    msg = emu.wait_for(lambda: emu.messages("C1"))[-1]
    assert msg.text == "deal" and msg.user == "U0BOT"
    post = emu.calls_to("chat.postMessage")[0]
    assert post.params["team_id"] == "T0001"  # bolt's per-request client adds it

    resp = rig.driver.click_button("U1", "C1", msg.ts, "Appr")
    assert resp.status == 200
    body = rig.seen.last("block_actions")
    assert body["container"] == {
        "type": "message",
        "message_ts": msg.ts,
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert body["message"]["blocks"] == BUTTONS
    assert body["actions"][0]["block_id"] == "acts"
    assert body["actions"][0]["action_ts"]

    def replaced() -> bool:
        current = emu.message("C1", msg.ts)
        return current is not None and current.text == "Approved deal-7"

    emu.wait_for(replaced)
    assert emu.responses[-1].body["replace_original"] is True


def test_command_ack_text_is_shown(rig: Rig) -> None:
    rig.driver.command("U1", "echo", channel_id="C1")
    assert [e.text for e in rig.emulator.ephemerals("C1", "U1")] == ["echo!"]
    rig.driver.command("U1", "public", channel_id="C1")
    assert rig.emulator.messages("C1")[-1].text == "everyone sees this"
    rig.driver.command("U1", "later", channel_id="C1")
    rig.emulator.wait_for(lambda: len(rig.emulator.ephemerals("C1", "U1")) == 2)


def test_modal_submit_errors_keep_it_open_then_close(rig: Rig) -> None:
    emu = rig.emulator
    rig.driver.command("U1", "modal", channel_id="C1")
    view = emu.wait_for(lambda: emu.open_views("U1"))[-1]
    assert view["callback_id"] == "deal"

    resp = rig.driver.submit_view("U1", view["id"], inputs={"title_in": ""})
    assert resp.json() == {"response_action": "errors", "errors": {"title": "Title is required"}}
    assert [v["id"] for v in emu.open_views("U1")] == [view["id"]]
    assert emu.view_errors(view["id"]) == {"title": "Title is required"}

    resp = rig.driver.submit_view(
        "U1",
        values={"title": {"title_in": "Logo"}, "due": {"due_pick": "2030-01-31"}},
        inputs={"owner_pick": "U1", "cur": "USD"},
    )
    assert resp.status == 200 and resp.body == b""
    assert emu.open_views("U1") == []
    submitted = rig.seen.last("view_submission")["view"]
    assert submitted["private_metadata"] == "meta-1"
    assert submitted["hash"] == view["hash"]
    assert submitted["state"]["values"] == {
        "title": {"title_in": {"type": "plain_text_input", "value": "Logo"}},
        "due": {"due_pick": {"type": "datepicker", "selected_date": "2030-01-31"}},
        "owner": {"owner_pick": {"type": "users_select", "selected_user": "U1"}},
        "currency": {
            "cur": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "USD"}, "value": "USD"},
            }
        },
    }


def test_untouched_inputs_use_initial_or_null(rig: Rig) -> None:
    emu = rig.emulator
    rig.driver.command("U1", "modal", channel_id="C1")
    emu.wait_for(lambda: emu.open_views("U1"))
    rig.driver.submit_view("U1", inputs={"title_in": "x"})
    values = rig.seen.last("view_submission")["view"]["state"]["values"]
    assert values["due"]["due_pick"]["selected_date"] is None
    assert values["currency"]["cur"]["selected_option"]["value"] == "EUR"
    with pytest.raises(LookupError, match="no open modal"):
        rig.driver.submit_view("U1", inputs={"title_in": "x"})


def test_modal_update_push_clear_and_close(rig: Rig) -> None:
    emu = rig.emulator
    rig.driver.command("U1", "modal", channel_id="C1")
    root = emu.wait_for(lambda: emu.open_views("U1"))[-1]
    rig.driver.submit_view("U1", inputs={"title_in": "replace"})
    (updated,) = emu.open_views("U1")
    assert updated["id"] == root["id"] and updated["callback_id"] == "deal2"

    rig.driver.click_in_view("U1", root["id"], "add_milestone")
    assert rig.seen.last("block_actions")["container"] == {"type": "view", "view_id": root["id"]}
    stack = emu.wait_for(lambda: emu.open_views("U1")[1:])
    assert stack[-1]["callback_id"] == "ms"
    rig.driver.submit_view("U1", inputs={"title_in": "m1"})
    assert emu.open_views("U1") == []

    rig.driver.command("U1", "modal", channel_id="C1")
    emu.wait_for(lambda: emu.open_views("U1"))
    closed = rig.driver.close_view("U1")
    assert closed is not None and closed.status == 200
    assert rig.seen.last("view_closed")["is_cleared"] is False
    assert emu.open_views("U1") == []


def test_app_home_opened_publish_and_click_home(rig: Rig) -> None:
    emu = rig.emulator
    resp = rig.driver.app_home_opened("U1")
    assert resp.status == 200
    home = emu.wait_for(lambda: emu.home_view("U1"))
    assert home["type"] == "home"
    assert rig.driver.click_home("U1", "home_btn").status == 200
    body = rig.seen.last("block_actions")
    assert body["view"]["id"] == home["id"]
    assert body["actions"][0]["value"] == "h"
    assert "response_url" not in body and "channel" not in body


def test_url_verification_and_unhandled(rig: Rig) -> None:
    resp = rig.driver.url_verification("abc123")
    assert resp.status == 200 and resp.json() == {"challenge": "abc123"}
    resp = rig.driver.send_payload({"type": "block_actions", "actions": [{"action_id": "nope"}]})
    assert resp.status == 404


def test_event_envelope_and_retry_headers(rig: Rig) -> None:
    resp = rig.driver.event({"type": "app_home_opened", "user": "U1"}, retry_num=1)
    assert resp.status == 200
    sent = json.loads(resp.request.body)
    assert sent["type"] == "event_callback"
    assert sent["authorizations"][0]["user_id"] == "U0BOT"
    assert resp.request.headers["X-Slack-Retry-Num"] == "1"


def test_click_on_ephemeral_and_select_in_message(rig: Rig) -> None:
    emu = rig.emulator
    client = WebClient(token="xoxb-test", base_url=emu.api_url)
    ts = client.chat_postEphemeral(channel="C1", user="U1", text="deal", blocks=BUTTONS)[
        "message_ts"
    ]
    ref = rig.driver.find_button("C1", ts, label_startswith="Appr", user="U1")
    assert rig.driver.click("U1", channel_id="C1", message_ts=ts, action_id=ref.action_id).ok
    body = rig.seen.last("block_actions")
    assert body["container"]["is_ephemeral"] is True and "message" not in body
    emu.wait_for(lambda: emu.ephemerals("C1", "U1")[0].text == "Approved deal-7")
    with pytest.raises(LookupError, match="no element"):
        rig.driver.click("U1", channel_id="C1", message_ts=ts, action_id="missing")
