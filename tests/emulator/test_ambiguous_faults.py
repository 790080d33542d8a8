"""Faults with an ambiguous outcome (applied, answered late or never) and timed outages."""

from __future__ import annotations

import time
from http.client import RemoteDisconnected

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.emulator import SlackEmulator


def test_a_late_answer_times_the_client_out_although_the_message_is_stored(
    emulator: SlackEmulator,
) -> None:
    impatient = WebClient(token="xoxb-test", base_url=emulator.api_url, timeout=1)
    emulator.answer_late("chat.postMessage", 3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel="C1", text="hello")
    assert time.monotonic() - started < 2.5  # gave up before the answer came
    assert [m.text for m in emulator.messages("C1")] == ["hello"]
    (call,) = emulator.calls_to("chat.postMessage")
    assert (call.delivery, call.ok) == ("late", True)

    assert impatient.chat_postMessage(channel="C1", text="again")["ok"]  # times=1: used up
    assert emulator.calls_to("chat.postMessage")[-1].delivery == "sent"


def test_a_late_answer_still_reaches_a_patient_client(
    emulator: SlackEmulator, client: WebClient
) -> None:
    emulator.answer_late("chat.postMessage", 0.4)
    started = time.monotonic()
    resp = client.chat_postMessage(channel="C1", text="hello")
    assert time.monotonic() - started >= 0.4
    assert resp["ok"] and emulator.message("C1", resp["ts"]) is not None


def test_a_dropped_answer_is_a_connection_error_although_the_message_is_stored(
    emulator: SlackEmulator,
) -> None:
    no_retries = WebClient(token="xoxb-test", base_url=emulator.api_url, retry_handlers=[])
    emulator.drop_after_apply("chat.postMessage")
    with pytest.raises(RemoteDisconnected):
        no_retries.chat_postMessage(channel="C1", text="hello")
    assert [m.text for m in emulator.messages("C1")] == ["hello"]
    (call,) = emulator.calls_to("chat.postMessage")
    assert (call.delivery, call.ok) == ("dropped", True)
    assert no_retries.chat_postMessage(channel="C1", text="again")["ok"]


def test_the_default_client_retries_a_dropped_post_and_so_posts_it_twice(
    emulator: SlackEmulator, client: WebClient
) -> None:
    emulator.drop_after_apply("chat.postMessage")
    assert client.chat_postMessage(channel="C1", text="hello")["ok"]
    assert [m.text for m in emulator.messages("C1")] == ["hello", "hello"]
    assert [c.delivery for c in emulator.calls_to("chat.postMessage")] == ["dropped", "sent"]


def test_ambiguous_faults_are_used_up_only_by_applied_calls_in_their_channel(
    emulator: SlackEmulator,
) -> None:
    no_retries = WebClient(token="xoxb-test", base_url=emulator.api_url, retry_handlers=[])
    emulator.drop_after_apply("chat.postMessage", channel="C2", times=2)
    emulator.fail_next("chat.postMessage", status=500, channel="C2")
    assert no_retries.chat_postMessage(channel="C1", text="elsewhere")["ok"]
    with pytest.raises(SlackApiError) as err:  # refused, not applied: answered
        no_retries.chat_postMessage(channel="C2", text="refused")
    assert err.value.response.status_code == 500
    with pytest.raises(SlackApiError) as err:  # a Slack error is answered too
        no_retries.chat_postMessage(channel="C2")
    assert err.value.response["error"] == "no_text"
    for text in ("first", "second"):
        with pytest.raises(RemoteDisconnected):
            no_retries.chat_postMessage(channel="C2", text=text)
    assert no_retries.chat_postMessage(channel="C2", text="third")["ok"]
    assert [m.text for m in emulator.messages("C2")] == ["first", "second", "third"]
    deliveries = [(c.params.get("text"), c.delivery) for c in emulator.calls]
    assert deliveries[-2:] == [("second", "dropped"), ("third", "sent")]


def test_fail_for_refuses_every_call_until_the_window_closes() -> None:
    now = [1_700_000_000.0]
    with SlackEmulator(clock=lambda: now[0]) as emu:
        client = WebClient(token="xoxb-test", base_url=emu.api_url)
        emu.fail_for("*", 15, error="token_revoked")
        for _ in range(3):  # however often the app retries
            with pytest.raises(SlackApiError) as err:
                client.auth_test()
            assert err.value.response.status_code == 200
            assert err.value.response["error"] == "token_revoked"
        now[0] += 14.9
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C1", text="during")
        assert err.value.response["error"] == "token_revoked"
        assert emu.messages("C1") == []
        now[0] += 0.1
        assert client.auth_test()["ok"]
        assert client.chat_postMessage(channel="C1", text="after")["ok"]
        assert [m.text for m in emu.messages("C1")] == ["after"]


def test_fail_for_can_rate_limit_one_method_in_one_channel() -> None:
    now = [1_700_000_000.0]
    with SlackEmulator(clock=lambda: now[0]) as emu:
        client = WebClient(token="xoxb-test", base_url=emu.api_url)
        emu.fail_for("chat.postMessage", 30, status=429, retry_after=30, channel="C2")
        assert client.chat_postMessage(channel="C1", text="other channel")["ok"]
        assert client.auth_test()["ok"]
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C2", text="limited")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "30"
        now[0] += 30
        assert client.chat_postMessage(channel="C2", text="limited")["ok"]


def test_clear_faults_ends_a_fail_for_window_and_pending_ambiguous_faults(
    emulator: SlackEmulator, client: WebClient
) -> None:
    emulator.fail_for("*", 600, error="token_revoked")
    emulator.answer_late("chat.postMessage", 5)
    emulator.drop_after_apply("*")
    with pytest.raises(SlackApiError):
        client.auth_test()
    emulator.clear_faults()
    assert client.auth_test()["ok"]
    started = time.monotonic()
    assert client.chat_postMessage(channel="C1", text="prompt")["ok"]
    assert time.monotonic() - started < 1
    assert [c.delivery for c in emulator.calls] == ["sent", "sent", "sent"]


def test_fault_rules_reject_nonsense_arguments(emulator: SlackEmulator) -> None:
    with pytest.raises(ValueError):
        emulator.fail_for("*", 0, error="token_revoked")
    with pytest.raises(ValueError):
        emulator.fail_for("*", 5, status=200)
    with pytest.raises(ValueError):
        emulator.answer_late("chat.postMessage", 1, times=0)
    with pytest.raises(ValueError):
        emulator.drop_after_apply("chat.postMessage", times=0)
