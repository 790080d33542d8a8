"""The sandbox's page API over the real bot and the local Slack (no browser)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.people import CLIENT, FREELANCER, MANAGER, MEMBER, OUTSIDER
from sandbox.sandbox import Sandbox
from sandbox.web import PageServer
from tests.sandbox.conftest import Api, contracts

NEW = '/milestone new "Website redesign" client=@carol freelancer=@fred'


def words(node: Any) -> str:
    """Every text in a block tree (what a person would read), newline-joined."""
    out: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                out.append(item["text"])
            for value in item.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(node)
    return "\n".join(out)


def wait_state(
    api: Api, user: str, predicate: Callable[[dict[str, Any]], Any], *, timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = api.state(user)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last state: {words(state['messages'])[-800:]}")
        time.sleep(0.05)


def button(state: dict[str, Any], label: str) -> tuple[str, dict[str, Any]]:
    """(message ts, button element) of the newest channel message with that button."""
    for message in reversed(state["messages"]):
        for block in message["blocks"]:
            for element in block.get("elements") or []:
                if element.get("type") == "button" and element["text"]["text"].startswith(label):
                    return message["ts"], {**element, "block_id": block.get("block_id")}
    raise AssertionError(f"no {label!r} button in the channel")


def active(sandbox: Sandbox) -> None:
    sandbox.say(CLIENT.id, NEW)
    sandbox.say(CLIENT.id, '/milestone add "Design" 1500 2030-01-31')
    sandbox.say(CLIENT.id, '/milestone add "Build" 2500 2030-03-01')
    sandbox.say(CLIENT.id, "/milestone start")
    sandbox.say(FREELANCER.id, "/milestone start")


def test_the_state_shows_the_cast_the_channel_and_sandbox_time(api: Api) -> None:
    state = api.state(CLIENT.id)
    assert [p["role"] for p in state["people"]] == [
        "client",
        "freelancer",
        "agency manager",
        "agency member",
        "outsider",
    ]
    assert state["viewer"] == CLIENT.id
    assert state["channel"]["name"] == "deals"
    assert set(state["channel"]["members"]) == {p["id"] for p in state["people"]}
    assert state["offset_days"] == 0
    now = datetime.fromisoformat(state["now"])
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)
    assert state["messages"] == [] and state["modals"] == [] and state["home"] is None


def test_the_first_visit_shows_the_client_and_an_unknown_person_is_refused(api: Api) -> None:
    status, state = api.get("/api/state")
    assert status == 200 and state["viewer"] == CLIENT.id
    status, answer = api.get("/api/state", **{"as": "U0NOBODY"})
    assert status == 409 and "no one" in answer["error"]


def test_a_typed_command_reaches_the_bot_with_mentions_escaped_like_slack(
    api: Api, sandbox: Sandbox
) -> None:
    api.ok("/api/command", {"as": CLIENT.id, "text": NEW})
    state = wait_state(api, CLIENT.id, lambda s: s["ephemerals"] and s["messages"])
    assert "created" in state["ephemerals"][0]["text"]
    assert [t["text"] for t in state["typed"]] == [NEW]
    (contract,) = contracts(sandbox)
    assert (contract["client_id"], contract["freelancer_id"]) == (CLIENT.id, FREELANCER.id)
    # Only Carol sees her command and the bot's answer to it; everyone sees the channel.
    fred = api.state(FREELANCER.id)
    assert fred["typed"] == [] and fred["ephemerals"] == []
    assert "Website redesign" in words(fred["messages"])


def test_only_milestone_commands_are_sent(api: Api, sandbox: Sandbox) -> None:
    status, answer = api.post("/api/command", {"as": CLIENT.id, "text": "hello team"})
    assert status == 400 and "/milestone" in answer["error"]
    assert not sandbox.slack.calls_to("chat.postEphemeral")


def test_a_misspelt_command_gets_slacks_answer_and_the_command_to_retype(
    api: Api, sandbox: Sandbox
) -> None:
    status, answer = api.post("/api/command", {"as": CLIENT.id, "text": "/milestne help"})
    assert status == 400
    assert answer["error"] == "/milestne is not a valid command. Did you mean /milestone help?"
    assert api.state(CLIENT.id)["typed"] == [], "Slack never sent it to the app"
    assert not sandbox.slack.calls_to("chat.postEphemeral")


def test_a_click_on_a_card_button_acts_as_the_person_and_the_card_updates_in_place(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.say(CLIENT.id, NEW)
    sandbox.say(CLIENT.id, '/milestone add "Design" 1500 2030-01-31')
    sandbox.say(CLIENT.id, "/milestone start")
    sandbox.settle()
    ts, agree = button(api.state(FREELANCER.id), "Agree")
    api.ok(
        "/api/click",
        {
            "as": FREELANCER.id,
            "ts": ts,
            "action_id": agree["action_id"],
            "block_id": agree["block_id"],
            "value": agree["value"],
        },
    )
    sandbox.slack.wait_for(lambda: contracts(sandbox)[0]["status"] == "active")
    edits = next(m["edited"] for m in api.state(FREELANCER.id)["messages"] if m["ts"] == ts)
    state = wait_state(
        api,
        FREELANCER.id,
        lambda s: "Fund" in words([m for m in s["messages"] if m["ts"] == ts]),
    )
    (card,) = [m for m in state["messages"] if m["ts"] == ts]
    assert card["edited"] >= edits, "the same message, updated by chat.update"


def test_a_modal_opens_shows_field_errors_under_the_field_and_closes(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.say(CLIENT.id, NEW)
    api.ok("/api/command", {"as": CLIENT.id, "text": "/milestone add"})
    modal = wait_state(api, CLIENT.id, lambda s: s["modals"])["modals"][-1]
    assert modal["title"]["text"] == "Add milestone"
    kinds = {b["block_id"]: b["element"]["type"] for b in modal["blocks"] if b["type"] == "input"}
    assert kinds["title"] == "plain_text_input" and kinds["due_date"] == "datepicker"
    typed = {
        "title": {"title": "Design"},
        "amount": {"amount": "-5"},
        "due_date": {"due_date": "2030-01-31"},
        "description": {"description": None},
        "message": {"message": None},
    }
    answer = api.ok("/api/submit", {"as": CLIENT.id, "view_id": modal["id"], "values": typed})
    assert not answer["closed"] and set(answer["errors"]) == {"amount"}
    shown = api.state(CLIENT.id)["modals"][-1]
    assert shown["id"] == modal["id"] and "amount" in shown["errors"]

    typed["amount"] = {"amount": "1500"}
    answer = api.ok("/api/submit", {"as": CLIENT.id, "view_id": modal["id"], "values": typed})
    assert answer["closed"] and answer["errors"] == {}
    sandbox.slack.wait_for(lambda: contracts(sandbox)[0]["milestones"])
    assert contracts(sandbox)[0]["milestones"][0]["amount_minor"] == 150000

    api.ok("/api/command", {"as": CLIENT.id, "text": "/milestone add"})
    modal = wait_state(api, CLIENT.id, lambda s: s["modals"])["modals"][-1]
    api.ok("/api/close", {"as": CLIENT.id, "view_id": modal["id"]})
    assert api.state(CLIENT.id)["modals"] == []


def test_nobody_can_submit_or_close_someone_elses_modal(api: Api, sandbox: Sandbox) -> None:
    sandbox.say(CLIENT.id, NEW)
    api.ok("/api/command", {"as": CLIENT.id, "text": "/milestone add"})
    modal = wait_state(api, CLIENT.id, lambda s: s["modals"])["modals"][-1]
    for path, body in [
        ("/api/submit", {"as": OUTSIDER.id, "view_id": modal["id"], "values": {}}),
        ("/api/close", {"as": OUTSIDER.id, "view_id": modal["id"]}),
    ]:
        status, answer = api.post(path, body)
        assert status == 409 and "not" in answer["error"]
    assert api.state(CLIENT.id)["modals"][-1]["id"] == modal["id"]


def test_opening_home_publishes_that_persons_home(api: Api, sandbox: Sandbox) -> None:
    sandbox.say(CLIENT.id, NEW)
    api.ok("/api/home_opened", {"as": CLIENT.id})
    home = wait_state(api, CLIENT.id, lambda s: s["home"])["home"]
    assert "Website redesign" in words(home["blocks"])
    assert api.state(OUTSIDER.id)["home"] is None


def test_moving_the_clock_releases_submitted_work_automatically(api: Api, sandbox: Sandbox) -> None:
    active(sandbox)
    sandbox.say(CLIENT.id, "/milestone fund")
    sandbox.say(FREELANCER.id, '/milestone submit "Designs are in Figma"')
    sandbox.settle()
    api.ok("/api/clock", {"days": 13})
    assert contracts(sandbox)[0]["milestones"][0]["status"] == "submitted"
    answer = api.ok("/api/clock", {"days": 2})
    now = datetime.fromisoformat(answer["now"])
    assert abs(now - datetime.now(UTC) - timedelta(days=15)) < timedelta(minutes=1)
    milestone = contracts(sandbox)[0]["milestones"][0]
    assert milestone["status"] == "released" and milestone["released_automatically"]
    state = wait_state(api, FREELANCER.id, lambda s: "Paid automatically" in words(s["messages"]))
    assert state["offset_days"] == 15
    # Requests are still signed with real time, so bolt accepts them after the jump.
    assert "funds milestone 2" in sandbox.say(FREELANCER.id, "/milestone status")


@pytest.mark.parametrize("days", [0, -1, "7", True, 400])
def test_the_clock_only_moves_forward_by_a_sensible_number_of_days(api: Api, days: Any) -> None:
    status, answer = api.post("/api/clock", {"days": days})
    assert status == 400 and "days" in answer["error"]
    assert api.state(CLIENT.id)["offset_days"] == 0


def test_a_long_poll_answers_as_soon_as_something_changes(api: Api, sandbox: Sandbox) -> None:
    version = api.state(CLIENT.id)["version"]
    threading.Timer(0.3, sandbox.touch).start()
    started = time.monotonic()
    status, state = api.get("/api/state", **{"as": CLIENT.id, "since": version, "wait": 10})
    assert status == 200 and state["version"] > version
    assert time.monotonic() - started < 5

    started = time.monotonic()
    status, state = api.get(
        "/api/state", **{"as": CLIENT.id, "since": state["version"], "wait": 0.3}
    )
    assert status == 200 and time.monotonic() - started >= 0.25


def test_posts_must_be_json_objects(api: Api) -> None:
    from sandbox.http import HttpRequest

    request = HttpRequest(
        "POST",
        "/api/command",
        "",
        {"host": "127.0.0.1", "content-type": "text/plain"},
        b'{"as": "U0CLIENT", "text": "/milestone help"}',
    )
    assert api.web.handle(request).status == 400
    status, answer = api.post("/api/command", ["not", "an", "object"])
    assert status == 400 and "object" in answer["error"]
    status, answer = api.post("/api/click", {"as": CLIENT.id, "action_id": "agree"})
    assert status == 409 and "ts" in answer["error"]


def test_the_page_and_its_assets_are_served(api: Api) -> None:
    status, page = api.get("/")
    assert status == 200 and "/static/app.js" in page and "/static/app.css" in page
    for asset in ("app.js", "app.css"):
        status, body = api.get(f"/static/{asset}")
        assert status == 200 and body
    status, _ = api.get("/static/../sandbox.py")
    assert status == 404


def test_the_page_server_answers_loopback_names_only(sandbox: Sandbox) -> None:
    server = PageServer(sandbox, port=0)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(server.url + "api/state?as=" + CLIENT.id, timeout=5) as reply:
            assert reply.status == 200
        rebinding = urllib.request.Request(server.url, headers={"Host": "evil.example:3001"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(rebinding, timeout=5)
        assert refused.value.code == 421
    finally:
        server.stop()


def test_a_modal_with_people_pickers_and_a_currency_creates_an_agency_contract(
    api: Api, sandbox: Sandbox
) -> None:
    api.ok("/api/command", {"as": CLIENT.id, "text": "/milestone new"})
    modal = wait_state(api, CLIENT.id, lambda s: s["modals"])["modals"][-1]
    kinds = {b["block_id"]: b["element"]["type"] for b in modal["blocks"] if b["type"] == "input"}
    assert kinds["client"] == "users_select" and kinds["managers"] == "multi_users_select"
    assert kinds["currency"] == "static_select"
    typed = {  # as the page sends them: empty inputs are null, multi-selects are lists
        "title": {"title": "Mobile app"},
        "client": {"client": CLIENT.id},
        "freelancer": {"freelancer": None},
        "agency_name": {"agency_name": "Pixel & Co"},
        "managers": {"managers": [MANAGER.id]},
        "members": {"members": [MEMBER.id]},
        "currency": {"currency": "EUR"},
    }
    answer = api.ok("/api/submit", {"as": CLIENT.id, "view_id": modal["id"], "values": typed})
    assert answer["closed"], answer
    sandbox.slack.wait_for(lambda: contracts(sandbox))
    (contract,) = contracts(sandbox)
    assert contract["currency"] == "EUR"
    assert contract["agency"] == {
        "name": "Pixel & Co",
        "manager_ids": [MANAGER.id],
        "member_ids": [MEMBER.id],
    }


def test_a_waiting_change_request_gets_reminders_in_its_thread_as_time_passes(
    api: Api, sandbox: Sandbox
) -> None:
    active(sandbox)
    sandbox.say(FREELANCER.id, "/milestone edit 2 amount=3000")
    sandbox.settle()
    # Five days always include the client's working hours after the first 24 h, whatever
    # the real time of day: time passes in steps, so a held reminder goes out at 9:00.
    api.ok("/api/clock", {"days": 5})
    state = api.state(CLIENT.id)
    (card,) = [m for m in state["messages"] if "Change request #1" in words(m["blocks"])]
    assert card["replies"], "reminders are thread replies under the request's card"
    assert all(f"<@{CLIENT.id}>" in words(r["blocks"]) for r in card["replies"])
    assert all(float(r["ts"]) > float(card["ts"]) + 86400 for r in card["replies"])
