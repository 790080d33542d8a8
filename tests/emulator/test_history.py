"""conversations.history / conversations.replies windows, paging and message metadata."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.emulator import SlackEmulator

METADATA: dict[str, Any] = {
    "event_type": "milestone_posted",
    "event_payload": {"contract_id": 7, "milestone": "m-1"},
}


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages]


def _post(client: WebClient, *texts: str, **kwargs: Any) -> list[str]:
    return [client.chat_postMessage(channel="C1", text=t, **kwargs)["ts"] for t in texts]


def test_history_finds_a_posted_message_by_its_metadata_only_when_asked_for_all_metadata(
    emulator: SlackEmulator, client: WebClient
) -> None:
    before = client.chat_postMessage(channel="C1", text="earlier")["ts"]
    posted = client.chat_postMessage(channel="C1", text="card", metadata=METADATA)
    client.chat_postMessage(channel="C1", text="later")
    assert posted["message"]["metadata"] == METADATA  # the post's own answer carries it

    found = client.conversations_history(channel="C1", oldest=before, include_all_metadata=True)
    tagged = [m for m in found["messages"] if m.get("metadata") == METADATA]
    assert [m["ts"] for m in tagged] == [posted["ts"]]
    assert _texts(found["messages"]) == ["later", "card"]  # newest first, oldest excluded

    plain = client.conversations_history(channel="C1")
    assert _texts(plain["messages"]) == ["later", "card", "earlier"]
    assert all("metadata" not in m for m in plain["messages"])
    flag_off = client.conversations_history(channel="C1", include_all_metadata=False)
    assert all("metadata" not in m for m in flag_off["messages"])
    stored = emulator.message("C1", posted["ts"])
    assert stored is not None and stored.metadata == METADATA


def test_metadata_given_as_a_json_string_in_a_form_body_is_stored_and_updatable(
    emulator: SlackEmulator, client: WebClient
) -> None:
    form = {"channel": "C1", "text": "card", "metadata": json.dumps(METADATA)}
    posted = client.api_call("chat.postMessage", data=form)
    assert posted["message"]["metadata"] == METADATA
    ts = posted["ts"]

    changed = {"event_type": "milestone_approved", "event_payload": {"milestone": "m-1"}}
    updated = client.chat_update(channel="C1", ts=ts, text="approved", metadata=changed)
    assert updated["message"]["metadata"] == changed
    client.chat_update(channel="C1", ts=ts, text="approved again")  # no metadata: kept
    stored = emulator.message("C1", ts)
    assert stored is not None and stored.metadata == changed
    client.api_call("chat.update", data={"channel": "C1", "ts": ts, "metadata": "{}"})
    stored = emulator.message("C1", ts)
    assert stored is not None and stored.metadata is None  # an empty object removes it


def test_malformed_metadata_is_refused_and_schemaless_metadata_ignored_with_a_warning(
    emulator: SlackEmulator, client: WebClient
) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("chat.postMessage", data={"channel": "C1", "text": "x", "metadata": "{"})
    assert err.value.response["error"] == "invalid_metadata_format"
    assert emulator.messages("C1") == []

    resp = client.chat_postMessage(channel="C1", text="x", metadata={"event_type": "a.b"})
    assert resp["warning"] == "invalid_metadata_schema"
    assert "metadata" not in resp["message"]
    stored = emulator.message("C1", resp["ts"])
    assert stored is not None and stored.metadata is None


def test_history_bounds_are_exclusive_unless_inclusive(
    emulator: SlackEmulator, client: WebClient
) -> None:
    a, b, c, d = _post(client, "a", "b", "c", "d")

    def history(**kwargs: Any) -> list[str]:
        return _texts(client.conversations_history(channel="C1", **kwargs)["messages"])

    assert history(oldest=a, latest=d) == ["c", "b"]
    assert history(oldest=a, latest=d, inclusive=True) == ["d", "c", "b", "a"]
    assert history(oldest=b) == ["d", "c"]
    assert history(latest=c) == ["b", "a"]
    assert history(latest=c, inclusive=True) == ["c", "b", "a"]
    assert history(oldest=d) == []
    assert history(inclusive=True) == ["d", "c", "b", "a"]  # ignored without a bound
    with pytest.raises(SlackApiError) as err:
        client.conversations_history(channel="C1", oldest="yesterday")
    assert err.value.response["error"] == "invalid_ts_oldest"


def test_history_limit_defaults_to_100_and_is_capped_at_999(
    emulator: SlackEmulator, client: WebClient
) -> None:
    for n in range(1005):
        emulator.post_user_message("C1", "U1", f"m{n}")
    first = client.conversations_history(channel="C1")
    assert len(first["messages"]) == 100 and first["has_more"] is True
    assert first["messages"][0]["text"] == "m1004"
    capped = client.conversations_history(channel="C1", limit=5000)
    assert len(capped["messages"]) == 999 and capped["has_more"] is True
    rest = client.conversations_history(
        channel="C1", limit=5000, cursor=capped["response_metadata"]["next_cursor"]
    )
    assert _texts(rest["messages"]) == [f"m{n}" for n in range(5, -1, -1)]
    assert rest["has_more"] is False and rest["response_metadata"]["next_cursor"] == ""


def test_history_cursor_neither_repeats_nor_skips_when_messages_arrive_between_pages(
    emulator: SlackEmulator, client: WebClient
) -> None:
    oldest = _post(client, "before")[0]
    _post(client, "one", "two", "three", "four", "five")
    page = client.conversations_history(channel="C1", oldest=oldest, limit=2)
    seen = _texts(page["messages"])
    _post(client, "six")  # newer than the first page: not part of this walk
    while page["has_more"]:
        cursor = page["response_metadata"]["next_cursor"]
        page = client.conversations_history(channel="C1", oldest=oldest, limit=2, cursor=cursor)
        seen.extend(_texts(page["messages"]))
    assert seen == ["five", "four", "three", "two", "one"]

    walked = [
        m["text"]
        for resp in client.conversations_history(channel="C1", oldest=oldest, limit=2)
        for m in resp["messages"]
    ]  # slack_sdk's own cursor iteration
    assert walked == ["six", "five", "four", "three", "two", "one"]
    with pytest.raises(SlackApiError) as err:
        client.conversations_history(channel="C1", cursor="not-a-cursor")
    assert err.value.response["error"] == "invalid_cursor"


def test_replies_honour_the_window_and_any_ts_of_a_thread_names_the_whole_thread(
    emulator: SlackEmulator, client: WebClient
) -> None:
    parent = _post(client, "parent", metadata=METADATA)[0]
    r1, r2, r3 = _post(client, "r1", "r2", "r3", thread_ts=parent)
    lone = _post(client, "lone")[0]

    def replies(ts: str, **kwargs: Any) -> list[dict[str, Any]]:
        resp = client.conversations_replies(channel="C1", ts=ts, **kwargs)
        messages: list[dict[str, Any]] = resp["messages"]
        return messages

    assert _texts(replies(r2)) == ["parent", "r1", "r2", "r3"]
    assert _texts(replies(parent, oldest=r1)) == ["r2", "r3"]
    assert _texts(replies(parent, oldest=r1, latest=r3, inclusive=True)) == ["r1", "r2", "r3"]
    assert _texts(replies(parent, latest=r2)) == ["parent", "r1"]
    assert _texts(replies(lone)) == ["lone"]

    assert "metadata" not in replies(parent)[0]
    assert replies(parent, include_all_metadata=True)[0]["metadata"] == METADATA

    first = client.conversations_replies(channel="C1", ts=parent, limit=3)
    assert _texts(first["messages"]) == ["parent", "r1", "r2"] and first["has_more"]
    cursor = first["response_metadata"]["next_cursor"]
    second = client.conversations_replies(channel="C1", ts=parent, limit=3, cursor=cursor)
    assert _texts(second["messages"]) == ["r3"] and not second["has_more"]
    with pytest.raises(SlackApiError) as err:
        client.conversations_replies(channel="C1", ts="1.000001")
    assert err.value.response["error"] == "thread_not_found"
