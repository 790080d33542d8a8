"""`milestone-bot` as an operator types it, in-process: `bot.cli.main([...])`.

Each test runs in an empty working directory with a clean environment, so the
default SQLite file and any `.env` are the test's own.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from bot.cli import main
from domain import services
from domain.db import alembic_config, make_engine, make_session_factory, upgrade_schema
from domain.export_csv import CSV_COLUMNS
from domain.model import Base
from domain.services import MilestoneEdit
from tests import factories as f

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "DATABASE_URL",
    "AUTO_RELEASE_DAYS",
    "END_WINDOW_DAYS",
    "REQUEST_REMINDER_FIRST_HOURS",
    "REQUEST_REMINDER_EVERY_HOURS",
    "REVIEW_REMINDER_DAYS_BEFORE",
    "FUND_REMINDER_HOURS",
    "WORKING_HOURS",
    "SWEEP_SECONDS",
    "SHUTDOWN_SECONDS",
    "MAX_AMOUNT",
    "LOG_LEVEL",
    "PAYMENTS",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "PUBLIC_URL",
)


@pytest.fixture(autouse=True)
def operator_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory and an environment with none of the bot's settings."""
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    # `main` calls logging.basicConfig; with a handler on the root logger that is a
    # no-op, so no handler is left pointing at a captured (later closed) stderr.
    guard = logging.NullHandler()
    logging.getLogger().addHandler(guard)
    yield tmp_path
    logging.getLogger().removeHandler(guard)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {lines!r}"
    return lines[0]


def head_revision() -> str:
    engine = make_engine("sqlite://")
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    engine.dispose()
    assert head is not None
    return head


# --- serve refuses to start without what it needs ------------------------------------------


def test_serve_without_bot_token_names_it_and_where_to_get_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")

    code, out, err = run(capsys, "serve")

    assert code == 2
    line = one_line(err)
    assert "SLACK_BOT_TOKEN" in line
    assert "api.slack.com/apps" in line and "OAuth & Permissions" in line
    assert "SLACK_SIGNING_SECRET" not in line  # it is set
    assert out == ""


def test_serve_in_http_mode_without_signing_secret_names_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")

    code, _, err = run(capsys, "serve")

    assert code == 2
    line = one_line(err)
    assert "SLACK_SIGNING_SECRET" in line and "Signing Secret" in line
    assert "api.slack.com/apps" in line
    assert "SLACK_BOT_TOKEN" not in line


def test_serve_in_socket_mode_without_app_token_names_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")

    code, _, err = run(capsys, "serve", "--socket-mode")

    assert code == 2
    line = one_line(err)
    assert "SLACK_APP_TOKEN" in line and "xapp-" in line and "connections:write" in line
    assert "SLACK_SIGNING_SECRET" not in line  # not needed over Socket Mode


def test_worker_without_bot_token_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "worker")

    assert code == 2
    assert "SLACK_BOT_TOKEN" in one_line(err)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTO_RELEASE_DAYS", "abc"),
        ("SWEEP_SECONDS", "-1"),
        ("WORKING_HOURS", "18:00-09:00"),
        ("DATABASE_URL", "mysql://db/bot"),
    ],
)
def test_a_malformed_setting_stops_start_up_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv(name, value)

    code, _, err = run(capsys, "serve")

    assert code == 2
    assert name in one_line(err)


def test_a_malformed_setting_in_the_env_file_is_named_too(
    capsys: pytest.CaptureFixture[str], operator_shell: Path
) -> None:
    (operator_shell / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-test\nSLACK_SIGNING_SECRET=s3cret\nAUTO_RELEASE_DAYS=abc\n",
        encoding="utf-8",
    )

    code, _, err = run(capsys, "serve")

    assert code == 2
    line = one_line(err)
    assert "AUTO_RELEASE_DAYS" in line and "abc" in line


def test_a_bot_token_of_the_wrong_kind_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-user-token-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")

    code, _, err = run(capsys, "serve")

    assert code == 2
    line = one_line(err)
    assert "SLACK_BOT_TOKEN" in line and "xoxb-" in line
    assert "user-token-secret" not in line


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)

    assert code == 2
    assert "serve" in out and "export" in out


# --- db upgrade ---------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_in_a_fresh_sqlite_file_in_the_working_directory(
    capsys: pytest.CaptureFixture[str], operator_shell: Path
) -> None:
    database = operator_shell / "milestone-bot.sqlite3"  # the default DATABASE_URL
    assert not database.exists()

    code, out, err = run(capsys, "db", "upgrade")

    assert code == 0
    assert out == f"database schema is at revision {head_revision()}\n"
    assert err == "milestone-bot: upgrading sqlite:///milestone-bot.sqlite3\n"
    engine = make_engine(f"sqlite:///{database}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_db_upgrade_twice_is_harmless(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'twice.sqlite3'}")

    first = run(capsys, "db", "upgrade")
    second = run(capsys, "db", "upgrade")

    assert first[0] == second[0] == 0
    assert head_revision() in second[1] + second[2]


# --- export -------------------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The bot's database, with its schema and no contracts yet, as `DATABASE_URL`."""
    url = f"sqlite:///{tmp_path / 'export.sqlite3'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def reading(url: str) -> str:
    """The line a command reading the database at `url` starts stderr with."""
    return f"milestone-bot: reading {url}\n"


def seed_contract(url: str) -> int:
    """An active contract: milestone 1 funded, a pending request to lower milestone 2."""
    engine = make_engine(url)
    upgrade_schema(engine)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            contract_id = f.active_contract(session)
            services.fund_milestone(
                session, contract_id=contract_id, actor_id=f.CLIENT, now=f.later(hours=1)
            )
            services.change_milestones(
                session,
                contract_id=contract_id,
                actor_id=f.FREELANCER,
                changes=[MilestoneEdit(2, amount="2,000")],
                message="A smaller second phase",
                now=f.later(hours=2),
            )
    finally:
        engine.dispose()
    return contract_id


def assert_contains(actual: Any, expected: Any, where: str = "$") -> None:
    """`actual` has every key of `expected` with the same value (extra keys are welcome)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: missing {key!r}"
            assert_contains(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: expected {len(expected)} items, got {actual!r}"
        )
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def parse_utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    return parsed


def test_export_of_an_empty_database_is_an_empty_list(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, out, err = run(capsys, "export")

    assert code == 0
    assert json.loads(out) == {"contracts": []}
    assert err == reading(database_url)


def test_export_prints_a_contract_in_the_interface_schema(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    contract_id = seed_contract(database_url)

    code, out, _ = run(capsys, "export")

    assert code == 0
    data = json.loads(out)
    milestone_keys = {
        "number", "title", "description", "amount_minor", "due_date", "status",
        "submitted_at", "auto_release_at", "released_at", "released_automatically",
    }  # fmt: skip
    unset = {"submitted_at": None, "auto_release_at": None, "released_at": None}
    assert_contains(
        data,
        {
            "contracts": [
                {
                    "id": contract_id,
                    "title": "Website redesign",
                    "team_id": f.TEAM,
                    "channel_id": f.CHANNEL,
                    "currency": "USD",
                    "status": "active",
                    "client_id": f.CLIENT,
                    "freelancer_id": f.FREELANCER,
                    "agency": None,
                    "milestones": [
                        {
                            "number": 1,
                            "title": "Milestone 1",
                            "description": "",
                            "amount_minor": 150000,
                            "due_date": f.DUE.isoformat(),
                            "status": "funded",
                            **unset,
                            "released_automatically": False,
                        },
                        {
                            "number": 2,
                            "title": "Milestone 2",
                            "amount_minor": 250000,  # unchanged while the request is pending
                            "status": "pending",
                            **unset,
                            "released_automatically": False,
                        },
                    ],
                    "change_requests": [
                        {
                            "number": 1,
                            "status": "pending",
                            "proposed_by": f.FREELANCER,
                            "decided_by": None,
                            "message": "A smaller second phase",
                            "changes": [
                                {
                                    "kind": "edit",
                                    "milestone_number": 2,
                                    "fields": {"amount_minor": 200000},
                                }
                            ],
                        }
                    ],
                    "escrow": {
                        "funded_minor": 150000,
                        "released_minor": 0,
                        "refunded_minor": 0,
                        "balance_minor": 150000,
                    },
                    "ledger": [
                        {
                            "kind": "fund",
                            "milestone_number": 1,
                            "amount_minor": 150000,
                            "actor": f.CLIENT,
                        }
                    ],
                }
            ]
        },
    )
    contract = data["contracts"][0]
    assert all(milestone_keys <= set(m) for m in contract["milestones"])
    assert parse_utc(contract["ledger"][0]["at"]) == f.later(hours=1).astimezone(UTC)


def test_export_of_one_contract_prints_only_that_one(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    first = seed_contract(database_url)
    second = seed_contract(database_url)

    code, out, _ = run(capsys, "export", "--contract", str(second))

    assert code == 0
    assert [c["id"] for c in json.loads(out)["contracts"]] == [second]
    assert first != second


def test_export_of_an_unknown_contract_says_so_and_fails(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, out, err = run(capsys, "export", "--contract", "999")

    assert code == 1
    assert out == ""
    assert err.startswith(reading(database_url))
    assert "999" in one_line(err.removeprefix(reading(database_url)))


def seed_for_the_accountant(url: str) -> tuple[int, int]:
    """Milestone 1 funded and approved, milestone 2 funded; and a JPY contract whose
    title a spreadsheet would take for a formula, with milestone 1 funded."""
    engine = make_engine(url)
    upgrade_schema(engine)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            first = f.active_contract(session)
            for hours in (1, 3):
                services.fund_milestone(
                    session, contract_id=first, actor_id=f.CLIENT, now=f.later(hours=hours)
                )
                if hours == 1:
                    services.submit_work(
                        session, contract_id=first, actor_id=f.FREELANCER, now=f.later(hours=1)
                    )
                    services.approve_work(
                        session, contract_id=first, actor_id=f.CLIENT, now=f.later(hours=2)
                    )
            second = f.new_contract(session, currency="JPY", title="=HYPERLINK(1)")
            f.add(session, second, "Logo", "150000")
            for person in (f.CLIENT, f.FREELANCER):
                services.agree_to_terms(session, contract_id=second, actor_id=person, now=f.NOW)
            services.fund_milestone(
                session, contract_id=second, actor_id=f.CLIENT, now=f.later(hours=4)
            )
    finally:
        engine.dispose()
    return first, second


def test_export_as_csv_writes_the_ledger_and_milestones_for_a_spreadsheet(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    first, second = seed_for_the_accountant(database_url)

    code, out, err = run(capsys, "export", "--format", "csv")

    assert code == 0 and err == reading(database_url)
    assert out.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == list(CSV_COLUMNS) == [
        "record", "date", "contract_id", "contract_title", "milestone_number",
        "milestone_title", "kind", "amount", "currency", "actor", "status", "due_date",
    ]  # fmt: skip
    body = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    ledger = [(r["contract_id"], r["date"], r["milestone_number"], r["kind"], r["amount"],
               r["currency"], r["actor"]) for r in body if r["record"] == "ledger"]  # fmt: skip
    assert ledger == [
        (str(first), "2026-11-02 11:00:00", "1", "fund", "1500.00", "USD", f.CLIENT),
        (str(first), "2026-11-02 12:00:00", "1", "release", "1500.00", "USD", f.CLIENT),
        (str(first), "2026-11-02 13:00:00", "2", "fund", "2500.00", "USD", f.CLIENT),
        (str(second), "2026-11-02 14:00:00", "1", "fund", "150000", "JPY", f.CLIENT),
    ]
    milestones = [(r["contract_id"], r["milestone_number"], r["milestone_title"], r["amount"],
                   r["status"], r["due_date"], r["kind"], r["actor"])
                  for r in body if r["record"] == "milestone"]  # fmt: skip
    assert milestones == [
        (str(first), "1", "Milestone 1", "1500.00", "released", "2026-12-01", "", ""),
        (str(first), "2", "Milestone 2", "2500.00", "funded", "2026-12-01", "", ""),
        (str(second), "1", "Logo", "150000", "funded", "2026-12-01", "", ""),
    ]
    assert {r["contract_title"] for r in body if r["contract_id"] == str(second)} == {
        "'=HYPERLINK(1)"
    }
    assert [r["record"] for r in body] == ["ledger"] * 3 + ["milestone"] * 2 + [
        "ledger",
        "milestone",
    ]


def test_export_as_csv_of_one_contract_and_of_none(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, out, _ = run(capsys, "export", "--format", "csv")
    assert (code, out) == (0, ",".join(CSV_COLUMNS) + "\r\n")

    first, second = seed_for_the_accountant(database_url)
    code, out, _ = run(capsys, "export", "--format", "csv", "--contract", str(second))

    assert code == 0
    assert {row[2] for row in list(csv.reader(io.StringIO(out)))[1:]} == {str(second)}
    assert first != second


# --- manifest -----------------------------------------------------------------------------


def test_manifest_prints_the_committed_socket_mode_manifest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "manifest")

    assert code == 0
    committed = (REPO_ROOT / "manifest.yaml").read_text(encoding="utf-8")
    assert out == committed
    assert yaml.safe_load(out)["settings"]["socket_mode_enabled"] is True


def test_manifest_with_a_request_url_prints_the_http_variant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "https://example.com/slack/events"

    code, out, _ = run(capsys, "manifest", "--request-url", url)

    assert code == 0
    manifest = yaml.safe_load(out)
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["interactivity"]["request_url"] == url
    assert settings["event_subscriptions"]["request_url"] == url
    assert [c["url"] for c in manifest["features"]["slash_commands"]] == [url]
    socket_mode = yaml.safe_load((REPO_ROOT / "manifest.yaml").read_text(encoding="utf-8"))
    assert manifest["display_information"] == socket_mode["display_information"]
    assert manifest["oauth_config"] == socket_mode["oauth_config"]


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/slack/events", "slack/events"])
def test_manifest_with_a_bad_request_url_fails_with_one_line(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, out, err = run(capsys, "manifest", "--request-url", url)

    assert code == 2
    assert out == ""
    assert "--request-url" in one_line(err)


# --- where each command prints: the answer on stdout, the rest on stderr --------------------


def test_help_lists_every_command_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out, err = capsys.readouterr()

    assert exited.value.code == 0
    for command in ("serve", "worker", "sandbox", "db", "export", "ledger", "outbox", "manifest"):
        assert command in out
    assert err == ""


@pytest.mark.parametrize(
    ("argv", "verb", "answer"),
    [
        (["export"], "reading", '{\n  "contracts": []\n}\n'),
        (["ledger", "verify"], "reading", "ledger OK: 0 contracts, 0 entries\n"),
        (["outbox"], "reading", "0 pending, 0 held, 0 dead-lettered\n"),
        (["outbox", "list"], "reading", "0 pending, 0 held, 0 dead-lettered\n"),
        (
            ["outbox", "retry"],
            "updating",
            "0 messages queued for delivery; a running serve or worker sends them\n",
        ),
    ],
)
def test_a_command_on_the_database_answers_on_stdout_and_names_the_database_on_stderr(
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    argv: list[str],
    verb: str,
    answer: str,
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 0
    assert out == answer
    assert err == f"milestone-bot: {verb} {database_url}\n"


def test_ledger_verify_counts_in_correct_english(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    seed_contract(database_url)  # one contract, one fund entry

    code, out, _ = run(capsys, "ledger", "verify")

    assert (code, out) == (0, "ledger OK: 1 contract, 1 entry\n")


def test_ledger_verify_names_one_problem_in_the_singular(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    seed_contract(database_url)
    engine = make_engine(database_url)
    with engine.begin() as conn:  # a hand-edit behind the services' back
        conn.execute(text("UPDATE milestone SET amount_minor = amount_minor + 1 WHERE number = 1"))
    engine.dispose()

    code, out, err = run(capsys, "ledger", "verify")

    assert code == 1
    problems = out.strip().splitlines()
    assert len(problems) == 1
    assert err == reading(database_url) + "ledger differs: 1 problem\n"


def test_ledger_alone_prints_its_usage_on_stderr_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "ledger")

    assert code == 2
    assert out == ""
    assert "verify" in err


def test_the_password_of_a_database_url_is_never_printed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 1: the command fails to connect, and says where it tried.
    monkeypatch.setenv("DATABASE_URL", "postgresql://ops:hunter2@127.0.0.1:1/bot")

    code, out, err = run(capsys, "export")

    assert code == 2
    assert out == ""
    assert "hunter2" not in err
    lines = err.splitlines()
    assert lines[0] == "milestone-bot: reading postgresql+psycopg://ops:***@127.0.0.1:1/bot"
    assert lines[1].startswith("milestone-bot: cannot open postgresql+psycopg://ops:***@")
    assert len(lines) == 2


# --- a command that reads the bot's data never creates an empty database -----------------


READERS = [["export"], ["ledger", "verify"], ["outbox"], ["outbox", "retry"]]


@pytest.mark.parametrize("argv", READERS, ids=" ".join)
def test_a_missing_sqlite_file_is_an_error_naming_database_url_and_the_sandbox_file(
    capsys: pytest.CaptureFixture[str], operator_shell: Path, argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    command = " ".join(argv)
    first, *hints = err.strip().splitlines()
    assert first.startswith(f"milestone-bot: no database at {operator_shell}")
    assert "milestone-bot.sqlite3" in first and "DATABASE_URL" in first and "default" in first
    hint = " ".join(hints)
    assert "throw-away" in hint
    assert "`milestone-bot sandbox --db sandbox.sqlite3`" in hint
    assert f"`DATABASE_URL=sqlite:///sandbox.sqlite3 milestone-bot {command}`" in hint
    assert list(operator_shell.iterdir()) == []  # nothing created


def test_a_missing_file_named_in_database_url_is_not_called_the_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, operator_shell: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///kept.sqlite3")

    code, _, err = run(capsys, "export")

    assert code == 2
    first = err.splitlines()[0]
    assert str(operator_shell / "kept.sqlite3") in first
    assert "DATABASE_URL is sqlite:///kept.sqlite3)" in first
    assert list(operator_shell.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"not a database\n"], ids=["empty", "text"])
@pytest.mark.parametrize("argv", READERS, ids=" ".join)
def test_a_file_that_holds_no_bot_data_is_refused_and_left_as_it_was(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    operator_shell: Path,
    argv: list[str],
    content: bytes,
) -> None:
    path = operator_shell / "other.sqlite3"
    path.write_bytes(content)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///other.sqlite3")

    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    saying_which, refusal = err.strip().splitlines()
    verb = "updating" if argv == ["outbox", "retry"] else "reading"
    assert saying_which == f"milestone-bot: {verb} sqlite:///other.sqlite3"
    assert refusal.startswith("milestone-bot: ") and "sqlite:///other.sqlite3" in refusal
    assert path.read_bytes() == content
    assert [p.name for p in operator_shell.iterdir()] == ["other.sqlite3"]


def test_another_applications_sqlite_database_is_refused_and_left_as_it_was(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, operator_shell: Path
) -> None:
    path = operator_shell / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE note (body TEXT)")
    conn.close()
    before = path.read_bytes()
    monkeypatch.setenv("DATABASE_URL", "sqlite:///other.sqlite3")

    code, out, err = run(capsys, "export")

    assert code == 2
    assert out == ""
    assert "holds no milestone-bot data" in err and "DATABASE_URL" in err
    assert path.read_bytes() == before  # still in its own journal mode, no tables added
    assert [p.name for p in operator_shell.iterdir()] == ["other.sqlite3"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://ops:hunter2@127.0.0.1:1/bot",
            "postgresql+psycopg://ops:***@127.0.0.1:1/bot",
        ),
        ("sqlite:///no/such/folder/bot.sqlite3", "sqlite:///no/such/folder/bot.sqlite3"),
    ],
    ids=["unreachable server", "missing folder"],
)
def test_db_upgrade_of_a_database_it_cannot_open_says_so_in_a_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    operator_shell: Path,
    url: str,
    shown: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)

    code, out, err = run(capsys, "db", "upgrade")

    assert code == 2
    assert out == ""
    assert err.splitlines()[0] == f"milestone-bot: upgrading {shown}"
    assert one_line(err.split("\n", 1)[1]).startswith(f"milestone-bot: cannot open {shown}: ")
    assert "hunter2" not in err
    assert list(operator_shell.iterdir()) == []
