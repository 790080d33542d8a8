"""Engines, sessions, write transactions and schema migrations.

SQLite: WAL, a busy timeout, foreign keys, and `BEGIN IMMEDIATE` for writing
transactions, so concurrent writers queue instead of failing with "database is
locked" half-way through a read-then-write. PostgreSQL: the services lock the rows
they change with `SELECT … FOR UPDATE`; schema upgrades are serialised by an
advisory lock so several processes starting at once don't collide.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from domain import intake

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every process of this app.
_MIGRATION_LOCK_ID = 0x6D696C65  # "mile"
_WRITE_OPTION = "milestone_bot_write"


def normalize_url(url: str) -> str:
    """`postgresql://…` means psycopg 3 here (SQLAlchemy would default to psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return _make_sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def _make_sqlite_engine(url: str, **kwargs: Any) -> Engine:
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", 30)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if make_url(url).database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)


@contextmanager
def write_transaction(session: Session, *, durable: bool = True) -> Iterator[Session]:
    """One transaction that will write: commits on success, rolls back on any error.

    On SQLite it starts with `BEGIN IMMEDIATE` (the write lock is taken up front, so
    a read-then-write never fails half-way); on PostgreSQL the service locks rows.

    With an `Origin` attached to the session (domain.intake), the transaction acts for
    that request: its receipt is written first (a repeat raises `AlreadyHandled` and
    changes nothing), locks and statements give up before the origin's deadline, and a
    connection lost while committing raises `OutcomeUnknown` instead of a plain
    database error, because the change may have been applied.

    `durable=False` (PostgreSQL): the commit returns before its WAL is flushed to disk
    (`synchronous_commit = off` for this transaction only). A crash of the *server*
    may lose the last fraction of a second of such commits — never half of one — so
    it is only for bookkeeping that is safe to redo, like the outbox's claims.
    """
    if session.in_transaction():
        raise RuntimeError("a service owns its transaction; call it outside one")
    origin = intake.attached(session)
    transaction = session.begin()
    try:
        connection = session.connection(execution_options={_WRITE_OPTION: True})
        if not durable and connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
        if origin is not None:
            _act_for(session, connection, origin)
        yield session
        session.flush()
    except BaseException:
        with suppress(DBAPIError):  # a lost connection has nothing left to roll back
            transaction.rollback()
        raise
    try:
        transaction.commit()
    except DBAPIError as error:
        if origin is not None and _connection_lost(error):
            raise intake.OutcomeUnknown(origin.key) from error
        raise


def _act_for(session: Session, connection: Connection, origin: intake.Origin) -> None:
    """The first statements of a transaction acting for a person's request."""
    left = origin.seconds_left()
    if left is not None and connection.dialect.name == "postgresql":
        # Give up (and roll back) rather than answer after the person was told it failed.
        millis = max(100, int(left * 1000))
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {millis}")
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
    session.add(intake.receipt(origin))
    try:
        session.flush()
    except IntegrityError:
        raise intake.AlreadyHandled(origin.key) from None


def _connection_lost(error: DBAPIError) -> bool:
    """The connection broke (server gone, network cut, killed backend), so nobody knows
    whether the COMMIT it carried was applied."""
    return bool(error.connection_invalidated) or isinstance(error, OperationalError)


@contextmanager
def read_transaction(session: Session) -> Iterator[Session]:
    if session.in_transaction():
        yield session
        return
    with session.begin():
        yield session


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else (session_or_engine)
    )
    return bind.dialect.name == "postgresql"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine) -> None:
    """Bring the schema up to date; safe to call from several processes at once."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            try:
                conn.commit()
                config = alembic_config(engine)
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                conn.commit()
    else:
        # BEGIN IMMEDIATE: processes starting at once queue for the write lock instead
        # of failing with "database is locked" half-way through a deferred transaction.
        with engine.connect().execution_options(**{_WRITE_OPTION: True}) as conn, conn.begin():
            config = alembic_config(engine)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
