"""Shared fixtures: databases (SQLite and PostgreSQL), clocks, hypothesis profiles.

Database tests take the `db` fixture, which runs each test on SQLite and on
PostgreSQL (127.0.0.1:5432, user postgres, trust auth). When PostgreSQL can't be
reached the PostgreSQL half fails under CI (env `CI` set) and skips elsewhere.

Every test that needs something this machine may lack (PostgreSQL, Chromium, Slack's
manifest schema beside the repository) calls `missing_dependency`: it skips naming the
exact command that provides the missing piece, and under CI it fails instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from domain.db import make_engine, make_session_factory, upgrade_schema
from domain.model import Base

# Hypothesis: a fixed example count under CI; more on demand (MILESTONE_FUZZ_EXAMPLES).
settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("MILESTONE_FUZZ_EXAMPLES", "100")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=int(os.environ.get("MILESTONE_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def under_ci() -> bool:
    """`CI` is set (`.ci/run` sets it): every test must run, none may skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


settings.load_profile("ci" if under_ci() else "dev")

# tests/benchmarks/ holds `scripts/bench`'s timing runs: never collected by pytest.
collect_ignore = ["benchmarks"]

PG_ADMIN_URL = os.environ.get(
    "MILESTONE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def missing_dependency(what: str, *, fix: str) -> NoReturn:
    """This test needs `what`, which is missing: skip it, naming `fix`, the command that
    provides it; under CI (env `CI` set) fail instead, since there every test must run."""
    if under_ci():
        pytest.fail(f"{what}, and under CI this fails instead of skipping; run: {fix}")
    pytest.skip(f"{what}; run: {fix}")


def postgres_unavailable(reason: str) -> NoReturn:
    """The test PostgreSQL server (PG_ADMIN_URL) can't be used: skip, or fail under CI."""
    missing_dependency(f"PostgreSQL not usable ({reason})", fix=postgres_fix(reason))


def postgres_fix(reason: str, *, clusters: Path = Path("/etc/postgresql")) -> str:
    """The command that makes PG_ADMIN_URL usable, for the problem `reason` describes
    (Debian's PostgreSQL; `clusters` is where its clusters' configuration lives)."""
    url = make_url(PG_ADMIN_URL)
    host, port = url.host or "127.0.0.1", url.port or 5432
    user, database = url.username or "postgres", url.database or "test"
    createdb = f"createdb -h {host} -p {port} -U {user} {database}"
    if f'database "{database}" does not exist' in reason:
        return createdb
    versions = (
        sorted((p.name for p in clusters.iterdir()), key=_version) if clusters.is_dir() else []
    )
    version = versions[-1] if versions else "$(ls " + str(clusters) + " | sort -n | tail -n 1)"
    trust = f"sed -i '1i host all {user} {host}/32 trust' {clusters}/{version}/main/pg_hba.conf"
    start = f"pg_ctlcluster --skip-systemctl-redirect {version} main"
    if "password authentication failed" in reason or "pg_hba.conf" in reason:
        return f"{trust} && {start} reload"
    if versions:
        return f"{start} start"
    return f"apt-get install -y postgresql && {trust} && {start} start && {createdb}"


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclass
class Database:
    """One test database: its engine, session factory and a clean-up between tests."""

    kind: str
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()

    def reset(self) -> None:
        """Empty every table (PostgreSQL; each SQLite test gets a fresh file instead)."""
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with self.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is faster)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once."""
    name = f"milestone_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any failure means "unreachable"
        postgres_unavailable(str(error).splitlines()[0])
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        database = Database("sqlite", url, engine, make_session_factory(engine))
        yield database
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url, pool_size=5, max_overflow=10)
    database = Database("postgresql", url, engine, make_session_factory(engine))
    database.reset()
    yield database
    engine.dispose()


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[Database]:
    """PostgreSQL only: for tests that need real row locks and several connections."""
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url, pool_size=10, max_overflow=10)
    database = Database("postgresql", url, engine, make_session_factory(engine))
    database.reset()
    yield database
    engine.dispose()


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s
