"""`milestone-bot dispute list` and `dispute resolve`: an operator decides a dispute after
mediation outside the bot, with a reason; the same settlement an agreement makes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from domain import services
from domain.db import make_engine, make_session_factory, read_transaction, upgrade_schema
from domain.export import export_contracts
from domain.model import Event
from domain.verify import verify
from tests import factories as f
from tests.test_cli import SETTINGS_VARS, reading, run


@pytest.fixture(autouse=True)
def operator_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory and none of the bot's settings (as in test_cli.py)."""
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    guard = logging.NullHandler()
    logging.getLogger().addHandler(guard)
    yield tmp_path
    logging.getLogger().removeHandler(guard)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'disputes.sqlite3'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def seed_dispute(url: str) -> int:
    """Milestone 1's submitted work disputed by the client, a split proposed."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            contract_id = f.submitted_contract(session)
            services.dispute_milestone(
                session,
                contract_id=contract_id,
                actor_id=f.CLIENT,
                reason="Half the pages are missing",
                now=f.later(days=1),
            )
            services.propose_split(
                session,
                contract_id=contract_id,
                actor_id=f.FREELANCER,
                milestone_number=1,
                to_provider="1200",
                now=f.later(days=2),
            )
        return contract_id
    finally:
        engine.dispose()


def read_back(url: str, contract_id: int) -> tuple[dict[str, Any], list[Event], list[str]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session, read_transaction(session):
            data = export_contracts(session, contract_id)["contracts"][0]
            history = list(
                session.scalars(
                    select(Event).where(Event.contract_id == contract_id).order_by(Event.id)
                )
            )
            problems = [str(p) for p in verify(session)]
            return data, history, problems
    finally:
        engine.dispose()


def test_dispute_list_shows_the_open_disputes(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    contract_id = seed_dispute(database_url)

    code, out, err = run(capsys, "dispute", "list")

    assert code == 0 and err == reading(database_url)
    [line, total] = out.strip().splitlines()
    assert line.startswith(f"contract {contract_id}\tmilestone 1\t$1,500.00 held\tactive")
    assert f"{f.FREELANCER} proposes $1,200.00 to the provider" in line
    assert line.endswith("Half the pages are missing")
    assert total == "1 open dispute"


def test_dispute_resolve_settles_with_the_operators_reason(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    contract_id = seed_dispute(database_url)

    code, out, err = run(
        capsys,
        "dispute",
        "resolve",
        str(contract_id),
        "1",
        "--to-provider",
        "900",
        "--reason",
        "Mediation found 60% delivered",
    )

    assert code == 0, err
    assert err == f"milestone-bot: updating {database_url}\n"
    assert out == (
        f"Decided the dispute over milestone 1 of contract {contract_id}: $900.00 to the "
        "provider, $600.00 back to the client.\n"
    )
    data, history, problems = read_back(database_url, contract_id)
    assert problems == []
    assert [(e["kind"], e["amount_minor"], e["actor"]) for e in data["ledger"]][1:] == [
        ("release", 90000, "system"),
        ("refund", 60000, "system"),
    ]
    assert data["milestones"][0]["status"] == "released"
    decided = history[-1]
    assert (decided.kind, decided.actor) == ("dispute_settled", "system")
    assert decided.data["how"] == "operator"
    assert decided.data["reason"] == "Mediation found 60% delivered"
    code, out, _ = run(capsys, "dispute", "list")
    assert out == "0 open disputes\n"


def test_dispute_resolve_refuses_what_it_cannot_do_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    contract_id = seed_dispute(database_url)

    code, out, err = run(
        capsys,
        "dispute",
        "resolve",
        str(contract_id),
        "1",
        "--to-provider",
        "2000",
        "--reason",
        "x",
    )

    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "milestone-bot: Only $1,500.00 is held for that milestone: the provider's part "
        "can't be more."
    )
    data, _, _ = read_back(database_url, contract_id)
    assert data["milestones"][0]["status"] == "disputed"
    assert len(data["ledger"]) == 1


def test_dispute_resolve_needs_the_amount_and_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(capsys, "dispute", "resolve", "1", "1", "--to-provider", "5")

    assert stopped.value.code == 2
    assert "--reason" in capsys.readouterr().err
