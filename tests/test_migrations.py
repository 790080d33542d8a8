"""Migrations produce exactly the models' schema, on SQLite and PostgreSQL, and run safely
from several processes at once."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text

from domain.db import alembic_config, current_revision, make_engine, upgrade_schema
from domain.model import Base
from tests.conftest import PG_ADMIN_URL, postgres_unavailable


def head_revision() -> str:
    config = alembic_config(create_engine("sqlite://"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def model_tables() -> set[str]:
    return set(Base.metadata.tables)


def create_pg_database() -> str:
    name = f"milestone_migrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any failure means "unreachable"
        postgres_unavailable(str(error).splitlines()[0])
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a new, empty database of each kind."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("fresh_pg")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_migrations_produce_exactly_the_models_schema(empty_engine: Engine) -> None:
    upgrade_schema(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert set(inspect(empty_engine).get_table_names()) == model_tables() | {"alembic_version"}
    assert schema_differences(empty_engine) == []


def test_upgrading_an_up_to_date_schema_changes_nothing(empty_engine: Engine) -> None:
    upgrade_schema(empty_engine)

    upgrade_schema(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []


def test_downgrade_to_base_and_upgrade_again(empty_engine: Engine) -> None:
    upgrade_schema(empty_engine)

    with empty_engine.begin() as conn:
        config = alembic_config(empty_engine)
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    assert current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    upgrade_schema(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []


def test_every_revision_steps_down_and_up_one_at_a_time(empty_engine: Engine) -> None:
    config = alembic_config(empty_engine)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions("base", "heads"))
    upgrade_schema(empty_engine)

    for _ in revisions:
        with empty_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "-1")
    assert current_revision(empty_engine) is None
    for _ in revisions:
        with empty_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "+1")

    assert current_revision(empty_engine) == head_revision()
    assert schema_differences(empty_engine) == []


def test_migrations_are_linear() -> None:
    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))

    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def _upgrade_in_another_process(url: str) -> None:
    """Run in a spawned process: what `serve` does at start-up."""
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()


def test_two_processes_upgrading_one_fresh_postgres_database_both_succeed(fresh_pg: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=_upgrade_in_another_process, args=(fresh_pg,)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [p.exitcode for p in processes] == [0, 0]
    engine = make_engine(fresh_pg)
    try:
        assert current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [head_revision()]
    finally:
        engine.dispose()


def test_three_processes_upgrading_one_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    # SQLite is the default database: `serve` and `worker` started together must not
    # fail with "database is locked" while both create the schema.
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_upgrade_in_another_process, args=(url,)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [p.exitcode for p in processes] == [0, 0, 0]
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
