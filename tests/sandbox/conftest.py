"""A running sandbox (the real bot + the local Slack) and its page API, in-process."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.settings import Settings
from domain import export
from sandbox.http import HttpRequest
from sandbox.sandbox import Sandbox
from sandbox.web import SandboxWeb

SETTINGS_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "DATABASE_URL",
    "AUTO_RELEASE_DAYS",
    "REQUEST_REMINDER_FIRST_HOURS",
    "REQUEST_REMINDER_EVERY_HOURS",
    "REVIEW_REMINDER_DAYS_BEFORE",
    "FUND_REMINDER_HOURS",
    "WORKING_HOURS",
    "SWEEP_SECONDS",
    "MAX_AMOUNT",
)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS_VARS + PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")


@pytest.fixture
def sandbox(tmp_path: Path, clean_env: None) -> Iterator[Sandbox]:
    """No ticker: tests sweep through the clock endpoint, deterministically."""
    with Sandbox(
        Settings(_env_file=None), database=tmp_path / "sandbox.sqlite3", ticker=False
    ) as running:
        yield running


@dataclass
class Api:
    """The page's JSON API, called the way the page calls it (no socket needed)."""

    web: SandboxWeb

    def get(self, path: str, **query: Any) -> tuple[int, Any]:
        request = HttpRequest("GET", path, urlencode(query), {"host": "127.0.0.1"}, b"")
        reply = self.web.handle(request)
        return reply.status, _decode(reply.body, reply.headers)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        request = HttpRequest(
            "POST",
            path,
            "",
            {"host": "127.0.0.1", "content-type": "application/json"},
            json.dumps(body).encode(),
        )
        reply = self.web.handle(request)
        return reply.status, _decode(reply.body, reply.headers)

    def state(self, user: str) -> dict[str, Any]:
        status, body = self.get("/api/state", **{"as": user})
        assert status == 200, body
        return dict(body)

    def ok(self, path: str, body: Any) -> dict[str, Any]:
        status, answer = self.post(path, body)
        assert status == 200 and answer["ok"], answer
        return dict(answer)


def _decode(body: bytes, headers: dict[str, str]) -> Any:
    if "json" in headers.get("content-type", ""):
        return json.loads(body)
    return body.decode()


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def api(sandbox: Sandbox) -> Api:
    return Api(SandboxWeb(sandbox))


def contracts(sandbox: Sandbox) -> list[dict[str, Any]]:
    with sandbox.runtime.sessions() as session, session.begin():
        return list(export.export_contracts(session)["contracts"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's report on the test item, so a fixture can tell a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)
