"""`milestone-bot serve --socket-mode`: the real CLI process over a WebSocket, as Slack
runs it (apps.connections.open → wss URL → envelopes in, acks out)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.server import ServerConnection, serve

from sandbox.emulator import SlackEmulator
from tests.e2e.conftest import CHANNEL, CLIENT, FREELANCER, PROXY_VARS

ROOT = Path(__file__).resolve().parents[2]


class SocketModeSlack:
    """The WebSocket half of Slack's Socket Mode: sends envelopes, collects acks."""

    def __init__(self) -> None:
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self._connection: ServerConnection | None = None
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handle(self, connection: ServerConnection) -> None:
        self._connection = connection
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        self.connected.set()
        for raw in connection:
            self.acks.put(json.loads(raw))

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        envelope_id = str(uuid.uuid4())
        assert self._connection is not None
        self._connection.send(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                }
            )
        )
        return envelope_id

    def ack_for(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            ack = self.acks.get(timeout=timeout)
            if ack.get("envelope_id") == envelope_id:
                return ack

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture
def socket_slack() -> Iterator[SocketModeSlack]:
    server = SocketModeSlack()
    yield server
    server.close()


def test_serve_over_socket_mode_acks_commands_and_acts_on_them(
    socket_slack: SocketModeSlack, tmp_path: Path
) -> None:
    with SlackEmulator() as slack:
        slack.socket_mode_url = f"ws://127.0.0.1:{socket_slack.port}/link/?ticket=t"
        slack.add_user(CLIENT, "carol")
        slack.add_user(FREELANCER, "fred")
        slack.add_channel(CHANNEL, "deals", members=[CLIENT, FREELANCER])
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        env.update(
            SLACK_BOT_TOKEN="xoxb-socket",
            SLACK_APP_TOKEN="xapp-1-socket",
            SLACK_API_URL=slack.api_url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
            PYTHONPATH=str(ROOT),
            SKIP_SLACK_SDK_WARNING="1",
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--socket-mode", "--no-scheduler"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert socket_slack.connected.wait(20), "the bot never connected"
            envelope = socket_slack.send(
                "slash_commands",
                {
                    "command": "/milestone",
                    "user_id": CLIENT,
                    "team_id": "T0001",
                    "channel_id": CHANNEL,
                    "trigger_id": slack.issue_trigger_id(CLIENT),
                    "response_url": slack.new_response_url(channel=CHANNEL, user_id=CLIENT),
                    "text": f'new "Over sockets" client=<@{CLIENT}> freelancer=<@{FREELANCER}>',
                },
            )
            assert socket_slack.ack_for(envelope)["envelope_id"] == envelope
            reply = slack.wait_for(lambda: slack.responses, timeout=10)[-1]
            assert "Contract 1" in reply.body["text"]
            slack.wait_for(lambda: slack.messages(CHANNEL), timeout=10)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
