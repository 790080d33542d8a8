"""Fixtures for the Block Kit builders: a SQLite session for flows through the services.

The schema comes from the models (`create_all`), not the migrations: these tests are
about rendering real service results, and stay independent of migrations in flight.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from domain.db import make_engine, make_session_factory
from domain.model import Base


@pytest.fixture
def sqlite_session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'blocks.sqlite3'}")
    Base.metadata.create_all(engine)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()
