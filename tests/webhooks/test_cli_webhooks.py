"""`milestone-bot webhooks add URL --secret S | list | remove ID | log` as an operator
types them: answers on stdout, diagnostics on stderr, the secret never shown in full."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.webhooks import WebhookSender
from domain.db import make_engine, make_session_factory
from tests import factories as f
from tests.test_cli import operator_shell, run  # noqa: F401 - the autouse fixture
from tests.webhooks.receiver import SECRET, receiving


@pytest.fixture
def database(
    operator_shell: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    url = f"sqlite:///{operator_shell / 'bot.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert run(capsys, "db", "upgrade")[0] == 0
    return url


def test_add_list_remove_and_the_secret_is_never_shown_in_full(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "webhooks", "add", "https://example.com/hooks", "--secret", SECRET)
    assert code == 0
    assert out.strip() == (
        "webhook endpoint 1 added: https://example.com/hooks (secret …cdef); "
        "it receives every event from now on"
    )
    assert SECRET not in out + err

    code, out, err = run(capsys, "webhooks", "list")
    assert code == 0 and SECRET not in out + err
    lines = out.strip().splitlines()
    assert lines[0].startswith("1\thttps://example.com/hooks\tsecret …cdef\tadded ")
    assert lines[0].endswith("0 pending, 0 sent, 0 dead")
    assert lines[-1] == "1 webhook endpoint"

    code, out, _ = run(capsys, "webhooks", "remove", "1")
    assert (code, out.strip()) == (0, "webhook endpoint 1 removed")
    code, out, _ = run(capsys, "webhooks", "list")
    assert out.strip() == "0 webhook endpoints"


def test_removing_an_unknown_endpoint_is_refused_on_stderr(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "webhooks", "remove", "7")

    assert (code, out) == (1, "")
    assert err.strip().endswith("There is no webhook endpoint 7.")


def test_a_url_that_is_not_a_web_address_is_refused(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "webhooks", "add", "example.com/hooks", "--secret", SECRET)

    assert (code, out) == (2, "")
    assert "is not a web address" in err


def test_a_short_secret_is_taken_with_a_warning(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "webhooks", "add", "http://localhost/x", "--secret", "short")

    assert code == 0 and "added" in out and "short" not in out
    assert "easy to guess" in err


def test_the_log_shows_state_attempts_and_the_last_error(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with receiving() as receiver:
        run(capsys, "webhooks", "add", receiver.url, "--secret", SECRET)
        engine = make_engine(database)
        sessions = make_session_factory(engine)
        with sessions() as session:
            f.new_contract(session)
            f.new_contract(session)
        receiver.status = 500
        clock = lambda: datetime.now(UTC)  # noqa: E731
        WebhookSender(sessions, clock, max_attempts=1).send_due()
        receiver.status = 200
        with sessions() as session:
            f.new_contract(session)
        WebhookSender(sessions, clock).send_due()
        engine.dispose()

    code, out, err = run(capsys, "webhooks", "log")

    assert code == 0
    lines = out.strip().splitlines()
    newest, *_ = lines
    assert "\tevt_3\tcontract.created\tcontract 3\tsent\tattempts 1\tHTTP 200\tsent " in newest
    dead = [line for line in lines if "\tdead\t" in line]
    assert len(dead) == 1 and dead[0].endswith("HTTP 500")
    assert "attempts 1\tHTTP 500" in dead[0]
    assert lines[-1] == "1 sent, 1 pending, 1 dead, 0 cancelled (latest 3)"


def test_the_same_url_twice_is_refused(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "webhooks", "add", "https://example.com/hooks", "--secret", SECRET)

    code, out, err = run(capsys, "webhooks", "add", "https://example.com/hooks", "--secret", "x")

    assert (code, out) == (2, "")
    assert "Endpoint 1 already receives the events at https://example.com/hooks" in err


def test_the_secret_can_come_from_standard_input(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))

    code, out, err = run(capsys, "webhooks", "add", "https://example.com/in", "--secret", "-")

    assert code == 0 and "(secret …cdef)" in out and SECRET not in out + err
