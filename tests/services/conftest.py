"""The service suite's `db`: the shared one (SQLite and PostgreSQL), made cheap per test.

The shared fixture builds a new engine for every test and empties PostgreSQL with
`TRUNCATE … RESTART IDENTITY`. Over several hundred tests that dominates the run
time: `TRUNCATE` swaps every table's files (~130 ms a test), and a new engine
starts with an empty statement cache and no connections, so every statement is
compiled again and every test pays for new connections. Here each backend keeps
one migrated database and one engine for the whole session, and each test starts
from the same empty state: every row deleted (children first) and the id
sequences restarted, as `TRUNCATE … RESTART IDENTITY` leaves them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from domain.db import make_engine, make_session_factory
from domain.model import Base
from tests.conftest import Database


def empty_database(database: Database) -> None:
    """Delete every row (children first) and restart the ids, on either backend."""
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        if database.kind == "postgresql":
            sequences = conn.scalars(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
            ).all()
            for sequence in sequences:
                conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
        # SQLite: rowid tables without AUTOINCREMENT restart from 1 once empty.


@pytest.fixture(scope="session")
def sqlite_database(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    path = tmp_path_factory.mktemp("services") / "services.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    yield Database("sqlite", url, engine, make_session_factory(engine))
    engine.dispose()


@pytest.fixture(scope="session")
def postgresql_database(postgres_url: str) -> Iterator[Database]:
    engine = make_engine(postgres_url, pool_size=5, max_overflow=10)
    yield Database("postgresql", postgres_url, engine, make_session_factory(engine))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    database: Database = request.getfixturevalue(f"{request.param}_database")
    empty_database(database)
    yield database
