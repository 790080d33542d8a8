"""Block helpers, ephemeral clicks, selects, concurrency and mounted routes."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from slack_sdk import WebClient

from sandbox.emulator import (
    HttpReply,
    HttpRequest,
    SlackEmulator,
    build_state_values,
    element_value,
)

SELECT = {
    "type": "static_select",
    "action_id": "pick",
    "option_groups": [
        {
            "label": {"type": "plain_text", "text": "G"},
            "options": [{"text": {"type": "plain_text", "text": "One"}, "value": "1"}],
        }
    ],
}


def test_element_value_by_type() -> None:
    assert element_value({"type": "plain_text_input"}, "x") == {
        "type": "plain_text_input",
        "value": "x",
    }
    assert element_value({"type": "multi_users_select"}, ["U1"]) == {
        "type": "multi_users_select",
        "selected_users": ["U1"],
    }
    assert element_value(SELECT, "1")["selected_option"]["value"] == "1"
    assert element_value({"type": "checkboxes", "options": []}, None)["selected_options"] == []
    with pytest.raises(LookupError, match="'1'"):
        element_value(SELECT, "2")
    ready = {"type": "timepicker", "selected_time": "09:00"}
    assert element_value({"type": "timepicker"}, ready) == ready


def test_build_state_values_rejects_unknown_inputs() -> None:
    blocks = [{"type": "input", "block_id": "b", "element": {"type": "plain_text_input"}}]
    state = build_state_values(blocks)
    assert state == {"b": {"auto-action-0-0": {"type": "plain_text_input", "value": None}}}
    assert build_state_values(blocks, inputs={"b": "v"})["b"]["auto-action-0-0"]["value"] == "v"
    with pytest.raises(LookupError, match="typo"):
        build_state_values(blocks, inputs={"typo": "v"})


def test_unique_ts_under_concurrency(emulator: SlackEmulator, client: WebClient) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda i: client.chat_postMessage(channel="C1", text=str(i)), range(24))
        )
    stamps = [r["ts"] for r in results]
    assert len(set(stamps)) == 24
    assert [m.ts for m in emulator.messages("C1")] == sorted(stamps)


def test_mount_extra_route(emulator: SlackEmulator) -> None:
    def hello(request: HttpRequest) -> HttpReply:
        return HttpReply.json(200, {"path": request.path})

    emulator.mount("/ui", hello)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{emulator.url}/ui/x", timeout=5) as reply:
        assert json.loads(reply.read()) == {"path": "/ui/x"}
    with pytest.raises(ValueError):
        emulator.mount("/api/", hello)


def test_root_base_url_also_works(emulator: SlackEmulator) -> None:
    client = WebClient(token="xoxb-t", base_url=emulator.url)
    assert client.auth_test()["ok"]
    assert emulator.calls_to("auth.test")
