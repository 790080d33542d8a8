"""What a one-shot `milestone-bot` command prints, as a real process: its answer on stdout,
one line on stderr saying which database it used, and no library logging unless
`LOG_LEVEL` asks for it (alembic alone says ten INFO lines while it opens a database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from domain.db import alembic_config, current_revision, make_engine, upgrade_schema
from tests.test_cli import SETTINGS_VARS, head_revision

REPO_ROOT = Path(__file__).resolve().parents[1]


def milestone_bot(*argv: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`milestone-bot ARGV` in `cwd`, with none of the bot's settings but `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def database_at(path: Path, *, revision: str = "head") -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    if revision == "head":
        upgrade_schema(engine)
    else:
        with engine.begin() as conn:
            config = alembic_config(engine)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    engine.dispose()
    return url


def test_db_upgrade_of_a_new_file_prints_the_revision_and_no_migration_chatter(
    tmp_path: Path,
) -> None:
    done = milestone_bot("db", "upgrade", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"database schema is at revision {head_revision()}\n"
    assert done.stderr == "milestone-bot: upgrading sqlite:///milestone-bot.sqlite3\n"


@pytest.mark.parametrize(
    ("argv", "answer"),
    [
        (["export"], '{\n  "contracts": []\n}\n'),
        (["ledger", "verify"], "ledger OK: 0 contracts, 0 entries\n"),
        (["outbox"], "0 pending, 0 held, 0 dead-lettered\n"),
    ],
    ids=["export", "ledger verify", "outbox"],
)
def test_a_reading_command_prints_its_answer_and_only_which_database_it_read(
    tmp_path: Path, argv: list[str], answer: str
) -> None:
    url = database_at(tmp_path / "bot.sqlite3")

    done = milestone_bot(*argv, cwd=tmp_path, DATABASE_URL=url)

    assert done.returncode == 0, done.stderr
    assert done.stdout == answer
    assert done.stderr == f"milestone-bot: reading {url}\n"


def test_an_older_schema_is_brought_up_to_date_without_a_word(tmp_path: Path) -> None:
    url = database_at(tmp_path / "old.sqlite3", revision="0001")

    done = milestone_bot("export", cwd=tmp_path, DATABASE_URL=url)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"contracts": []}
    assert done.stderr == f"milestone-bot: reading {url}\n"
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_log_level_info_shows_the_migrations_on_stderr_and_leaves_stdout_alone(
    tmp_path: Path,
) -> None:
    url = database_at(tmp_path / "old.sqlite3", revision="0001")

    done = milestone_bot("export", cwd=tmp_path, DATABASE_URL=url, LOG_LEVEL="INFO")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"contracts": []}
    assert "INFO alembic.runtime.migration: Running upgrade 0001 -> 0002" in done.stderr


def test_a_missing_database_fails_with_exit_code_2_and_creates_nothing(tmp_path: Path) -> None:
    done = milestone_bot("export", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"milestone-bot: no database at {tmp_path}")
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
