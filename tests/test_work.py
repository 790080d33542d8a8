"""bot/work.py: the hand-over of a listener's lazy part to the work process."""

from __future__ import annotations

import json
import pickle
from urllib.parse import urlencode

from slack_bolt.request import BoltRequest

from bot.app import replay_key
from bot.work import Job


def lazy_copy(request: BoltRequest, name: str) -> BoltRequest:
    """What bolt's ThreadListenerRunner hands a lazy listener runner."""
    copied = request.to_copyable()
    copied.lazy_only = True
    copied.lazy_function_name = name
    return copied


def test_a_job_carries_an_http_request_to_the_work_process_as_a_lazy_only_copy() -> None:
    payload = {"type": "block_actions", "actions": [{"action_id": "accept", "action_ts": "1.2"}]}
    raw = urlencode({"payload": json.dumps(payload)})
    request = BoltRequest(
        body=raw,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-signature": "v0=abc",
            "x-slack-request-timestamp": "1700000000",
        },
    )

    job = pickle.loads(pickle.dumps(Job.of(lazy_copy(request, "press_button"))))
    again = job.request()

    assert again.lazy_only and again.lazy_function_name == "press_button"
    assert again.raw_body == raw and again.body == payload
    assert again.headers["x-slack-signature"] == ["v0=abc"]
    assert again.mode == "http"
    assert replay_key(again.body) == replay_key(request.body)  # the same request, not a new one


def test_a_job_carries_a_socket_mode_request_as_its_parsed_body() -> None:
    body = {"command": "/milestone", "text": "status", "trigger_id": "13345224609.8"}
    request = BoltRequest(body=body, mode="socket_mode")

    again = pickle.loads(pickle.dumps(Job.of(lazy_copy(request, "handle")))).request()

    assert again.mode == "socket_mode" and again.body == body
    assert again.lazy_only and again.lazy_function_name == "handle"
