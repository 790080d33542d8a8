"""The work process's turns (bot/turns.py): at most `slots` jobs run at a time, in the
order they asked, a job's first turn ahead of later parts and background passes; a job
waiting for Slack lets another run; nobody waits longer than the patience; and
urllib's default opener — slack_sdk's — gives the turn up."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from slack_sdk import WebClient

from bot.emulator import SlackEmulator
from bot.turns import Turns, give_turns_up_during_http

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def started(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def holding(turns: Turns, release: threading.Event) -> threading.Thread:
    """A job that takes a turn and keeps it until `release` is set."""

    def job() -> None:
        with turns.taken():
            release.wait(10)

    thread = started(job)
    eventually(lambda: turns.running == 1)
    return thread


def test_jobs_run_one_at_a_time_in_the_order_they_asked() -> None:
    turns = Turns(slots=1, patience=30)
    release = threading.Event()
    first = holding(turns, release)
    order: list[str] = []
    inside: list[int] = []

    def job(name: str) -> Callable[[], None]:
        def run() -> None:
            with turns.taken():
                inside.append(turns.running)
                order.append(name)
                time.sleep(0.01)

        return run

    waiting = []
    for count, name in enumerate(("a", "b", "c", "d"), start=1):
        waiting.append(started(job(name)))
        eventually(lambda count=count: turns.waiting == count)  # asked before the next
    assert order == []  # the first job still has the only turn
    release.set()
    for thread in [first, *waiting]:
        thread.join(5)
    assert order == ["a", "b", "c", "d"]
    assert inside == [1, 1, 1, 1]
    assert turns.running == 0 and turns.waiting == 0


def test_a_job_waiting_for_slack_lets_the_next_one_run_and_then_queues_behind_it() -> None:
    turns = Turns(slots=1, patience=30)
    answer = threading.Event()
    events: list[str] = []

    def slow() -> None:
        with turns.taken():
            events.append("slow starts")
            with turns.given_up():
                answer.wait(10)  # Slack takes its time
            events.append("slow goes on")

    def quick() -> None:
        with turns.taken():
            events.append("quick runs")
            answer.set()  # Slack answers the slow job meanwhile
            eventually(lambda: turns.waiting == 1)  # which now waits for the turn
            events.append("quick ends")

    slow_job = started(slow)
    eventually(lambda: events == ["slow starts"] and turns.running == 0)
    quick_job = started(quick)
    for thread in (slow_job, quick_job):
        thread.join(5)
    assert events == ["slow starts", "quick runs", "quick ends", "slow goes on"]


def test_a_jobs_first_turn_goes_ahead_of_later_parts_and_background_passes() -> None:
    turns = Turns(slots=1, patience=30)
    release = threading.Event()
    first = holding(turns, release)
    order: list[str] = []

    def job(name: str, *, first: bool) -> Callable[[], None]:
        def run() -> None:
            with turns.taken(first=first):
                order.append(name)

        return run

    waiting = []
    for count, (name, is_first) in enumerate(
        [("home pass", False), ("new click", True), ("another home pass", False)], start=1
    ):
        waiting.append(started(job(name, first=is_first)))
        eventually(lambda count=count: turns.waiting == count)
    release.set()
    for thread in [first, *waiting]:
        thread.join(5)
    assert order == ["new click", "home pass", "another home pass"]


def test_nobody_waits_longer_than_the_patience() -> None:
    turns = Turns(slots=1, patience=0.1)
    release = threading.Event()
    first = holding(turns, release)
    ran: list[float] = []

    def job() -> None:
        began = time.monotonic()
        with turns.taken():
            ran.append(time.monotonic() - began)
            assert turns.running == 2  # beside the job that would not give way

    started(job).join(5)
    release.set()
    first.join(5)
    assert len(ran) == 1 and 0.09 <= ran[0] < 2
    assert turns.running == 0 and turns.waiting == 0


def test_a_turn_taken_again_inside_one_or_given_up_without_one_changes_nothing() -> None:
    turns = Turns(slots=1, patience=30)
    with turns.given_up():  # no turn to give up (the sweep's thread, say)
        assert turns.running == 0
    with turns.taken():
        with turns.taken():  # nested: no second turn, no deadlock with one slot
            assert turns.running == 1
        assert turns.running == 1
    assert turns.running == 0


@pytest.fixture
def default_opener() -> Iterator[None]:
    yield
    urllib.request.install_opener(None)  # urllib builds its default one again


def test_a_slack_call_is_waited_for_without_the_turn(
    monkeypatch: pytest.MonkeyPatch, default_opener: None
) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")
    turns = Turns(slots=1, patience=30)
    give_turns_up_during_http(turns)
    events: list[str] = []
    with SlackEmulator() as slack:
        slack.delay("auth.test", 2.0, times=1)
        client = WebClient(token="xoxb-test", base_url=slack.api_url)

        calling = threading.Event()

        def calls_slack() -> None:
            with turns.taken():
                calling.set()
                client.auth_test()  # two seconds without the turn
                events.append("the Slack call returned")

        def other() -> None:
            with turns.taken():
                events.append("another job ran")

        caller = started(calls_slack)
        assert calling.wait(5)
        eventually(lambda: turns.running == 0, timeout=1.5)  # given up inside the call
        started(other).join(5)
        caller.join(5)
        assert events == ["another job ran", "the Slack call returned"]
        assert [c.method for c in slack.calls] == ["auth.test"]
