"""The Slack emulator in a process of its own, so that it never competes with the
load generator for one interpreter lock.

The benchmark talks to it over two pipes: requests (issue response_urls, read a card)
go over one; over the other the emulator reports, as they happen, every response_url
POST and every `chat.update`, stamped with `time.monotonic()` (CLOCK_MONOTONIC, the
same clock in every process of the machine), so the load generator can tell when an
interaction completed without polling.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from sandbox.emulator import ApiCall, ResponsePost, SlackEmulator

REPLY = "reply"
UPDATE = "update"


def update_key(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def serve(requests: Connection, events: Connection) -> None:
    """The child's main: run the emulator until told to stop."""
    slack = SlackEmulator(validate_blocks=False, response_url_max_uses=5)
    sending = threading.Lock()

    def report(item: ApiCall | ResponsePost) -> None:
        at = time.monotonic()
        if isinstance(item, ResponsePost):
            text = str(item.body.get("text", ""))[:200]
            message = (REPLY, item.url, at, item.status == 200, text)
        elif item.method == "chat.update":
            key = update_key(str(item.params.get("channel")), str(item.params.get("ts")))
            message = (UPDATE, key, at, item.ok, "")
        else:
            return
        with sending:
            events.send(message)

    slack.add_listener(report)
    slack.start()
    requests.send(slack.api_url)
    try:
        while True:
            command, argument = requests.recv()
            if command == "stop":
                requests.send(None)
                return
            requests.send(_answer(slack, command, argument))
    finally:
        slack.stop()


def _answer(slack: SlackEmulator, command: str, argument: Any) -> Any:
    if command == "response_urls":
        return [
            slack.new_response_url(channel=channel, user_id=user, message_ts=ts)
            for channel, user, ts in argument
        ]
    if command == "card":
        channel, ts, action_id = argument
        message = slack.message(channel, ts)
        if message is None:
            return None
        button = slack.find_button(channel, ts, action_id=action_id)
        return message.to_slack(), button.value, button.block_id
    if command == "stats":
        calls = slack.calls
        failed: dict[str, int] = {}
        for call in calls:
            if not call.ok:
                name = f"{call.method}: {call.error or call.status}"
                failed[name] = failed.get(name, 0) + 1
        return {"calls": len(calls), "failed": failed}
    if command == "forget":
        slack.reset()
        return None
    raise ValueError(f"unknown command {command}")


@dataclass
class Arrival:
    at: float
    ok: bool
    text: str


class SlackProcess:
    """The parent's handle: start, ask, wait for completions, stop."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._requests, child_requests = context.Pipe()
        self._events, child_events = context.Pipe(duplex=False)
        self._process = context.Process(
            target=serve, args=(child_requests, child_events), name="slack-emulator", daemon=True
        )
        self._asking = threading.Lock()
        self._arrived: dict[tuple[str, str], Arrival] = {}
        self._changed = threading.Condition()
        self.api_url = ""

    def start(self) -> SlackProcess:
        self._process.start()
        if not self._requests.poll(30):
            raise RuntimeError("the Slack emulator did not start")
        self.api_url = str(self._requests.recv())
        threading.Thread(target=self._receive, name="slack-events", daemon=True).start()
        return self

    def _receive(self) -> None:
        while True:
            try:
                kind, key, at, ok, text = self._events.recv()
            except (EOFError, OSError):
                return
            with self._changed:
                # The first arrival counts (a card may be updated again later).
                self._arrived.setdefault((kind, key), Arrival(at, ok, text))
                self._changed.notify_all()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def ask(self, command: str, argument: Any = None) -> Any:
        with self._asking:
            self._requests.send((command, argument))
            return self._requests.recv()

    def wait(self, kind: str, key: str, timeout: float) -> Arrival | None:
        """When `kind` (REPLY or UPDATE) for `key` arrived, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (kind, key) not in self._arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return self._arrived[(kind, key)]

    def forget_update(self, key: str) -> None:
        """A card about to be clicked again: its next update is the one to wait for."""
        with self._changed:
            self._arrived.pop((UPDATE, key), None)

    def stop(self) -> None:
        if self._process.is_alive():
            try:
                self.ask("stop")
            except (EOFError, OSError):
                pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
