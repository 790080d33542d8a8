"""The service suite's `db`: the shared one, with a faster PostgreSQL clean-up.

`TRUNCATE … RESTART IDENTITY` costs about 130 ms per test on PostgreSQL (it swaps
every table's files); deleting the few rows a test wrote and restarting the id
sequences leaves the same empty database in a few milliseconds. With several
hundred PostgreSQL tests here, that is most of the suite's run time.
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


def empty_postgres(database: Database) -> None:
    """Delete every row (children first) and restart the id sequences."""
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        sequences = conn.scalars(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
        ).all()
        for sequence in sequences:
            conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        yield Database("sqlite", url, engine, make_session_factory(engine))
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url, pool_size=5, max_overflow=10)
    database = Database("postgresql", url, engine, make_session_factory(engine))
    empty_postgres(database)
    yield database
    engine.dispose()
