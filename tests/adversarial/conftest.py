"""The adversarial suite's bots: the real app over signed HTTP (tests/e2e), on a SQLite
file or on PostgreSQL. Every test ends with `milestone-bot ledger verify`, run by the
fixture after the test's last request has been answered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.support import assert_ledger_verifies
from tests.conftest import Database
from tests.e2e.conftest import PROXY_VARS, Bot, running_bot


@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.sqlite3'}"


@pytest.fixture
def bot(quiet_env: None, sqlite_url: str) -> Iterator[Bot]:
    with running_bot(sqlite_url) as running:
        yield running
    assert_ledger_verifies(sqlite_url)


@pytest.fixture
def pg_bot(quiet_env: None, pg: Database) -> Iterator[Bot]:
    """The same bot on PostgreSQL (fails under CI, skips elsewhere, when it is down)."""
    with running_bot(pg.url) as running:
        yield running
    assert_ledger_verifies(pg.url)
