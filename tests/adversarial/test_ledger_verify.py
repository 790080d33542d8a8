"""`milestone-bot ledger verify`: a clean history in every state verifies; a ledger
corrupted behind the services' back (rows inserted, changed or deleted directly) is
reported per contract, and the command exits non-zero. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from domain import services
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from domain.verify import Discrepancy, check, verify
from tests import factories as f
from tests.adversarial.support import ledger_verify
from tests.conftest import Database


def fund(session: Session, contract_id: int) -> None:
    services.fund_milestone(session, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW)


def submit(session: Session, contract_id: int, *, agency: bool = False) -> None:
    services.submit_work(
        session, contract_id=contract_id, actor_id=f.provider_of(agency), note="done", now=f.NOW
    )


def approve(session: Session, contract_id: int) -> None:
    services.approve_work(session, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW)


def every_state(session: Session) -> dict[str, int]:
    """Contracts whose milestones are in every state the ledger knows about."""
    ids: dict[str, int] = {}
    # 1: negotiating, one milestone deleted, one pending.
    ids["negotiating"] = f.new_contract(session, channel="C1")
    f.add(session, ids["negotiating"], "Kept")
    f.add(session, ids["negotiating"], "Dropped")
    services.change_milestones(
        session,
        contract_id=ids["negotiating"],
        actor_id=f.CLIENT,
        changes=[MilestoneDeletion(2)],
        now=f.NOW,
    )
    # 2: released by approval, then funded again and topped up by an accepted increase.
    ids["topped_up"] = f.active_contract(session)
    fund(session, ids["topped_up"])
    submit(session, ids["topped_up"])
    approve(session, ids["topped_up"])
    fund(session, ids["topped_up"])
    proposed = services.propose_changes(
        session,
        contract_id=ids["topped_up"],
        actor_id=f.FREELANCER,
        changes=[MilestoneEdit(2, amount="3000")],
        now=f.NOW,
    )
    services.accept_request(session, actor_id=f.CLIENT, now=f.NOW, request_id=proposed.request_id)
    submit(session, ids["topped_up"])
    # 3: released automatically (agency), the next one submitted.
    ids["auto"] = f.submitted_contract(session, agency=True)
    services.auto_release(
        session,
        milestone_id=_milestone_id(session, ids["auto"], 1),
        now=f.NOW + timedelta(days=15),
    )
    fund(session, ids["auto"])
    submit(session, ids["auto"], agency=True)
    # 4: ended with escrow held by the provider side: refunded at once.
    ids["refunded"] = f.funded_contract(session)
    services.end_contract(session, contract_id=ids["refunded"], actor_id=f.FREELANCER, now=f.NOW)
    # 5: active, a future milestone added by the client, nothing funded.
    ids["active"] = f.active_contract(session)
    services.change_milestones(
        session,
        contract_id=ids["active"],
        actor_id=f.CLIENT,
        changes=[NewMilestone("Extra", "99.99", f.DUE)],
        now=f.NOW,
    )
    return ids


def _milestone_id(session: Session, contract_id: int, number: int) -> int:
    with session.begin():
        found = session.scalar(
            text("SELECT id FROM milestone WHERE contract_id = :c AND number = :n"),
            {"c": contract_id, "n": number},
        )
    session.close()
    assert isinstance(found, int)
    return found


def run_sql(db: Database, sql: str, **params: object) -> None:
    """Write behind the services' back, as a buggy job or a hand-edit would."""
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def problems_of(db: Database) -> list[Discrepancy]:
    with db.session() as session, session.begin():
        return verify(session)


def test_every_legitimate_history_verifies(db: Database) -> None:
    with db.session() as session:
        every_state(session)
    with db.session() as session, session.begin():
        result = check(session)
    assert result.ok, "\n".join(map(str, result.discrepancies))
    assert result.contracts == 5
    # fund, release, fund, top-up; fund, release, fund; fund, refund
    assert result.entries == 9


def test_the_command_prints_ok_with_the_counts(db: Database) -> None:
    with db.session() as session:
        every_state(session)
    code, out, err = ledger_verify(db.url)
    assert (code, out) == (0, "ledger OK: 5 contracts, 9 entries\n")
    assert err == f"milestone-bot: reading {db.url}\n"  # which database, and nothing else


def test_an_empty_database_verifies(db: Database) -> None:
    code, out, _ = ledger_verify(db.url)
    assert (code, out) == (0, "ledger OK: 0 contracts, 0 entries\n")


Corruption = Callable[[Database, dict[str, int]], None]


def _second_release(db: Database, ids: dict[str, int]) -> None:
    # A second release of an already released milestone, under a key the unique
    # constraint does not catch.
    run_sql(
        db,
        "INSERT INTO ledger_entry (contract_id, milestone_id, kind, amount_minor, actor, at, key)"
        " SELECT contract_id, milestone_id, 'release', amount_minor, 'U0BAD', at, 'release:again'"
        " FROM ledger_entry WHERE contract_id = :c AND kind = 'release'",
        c=ids["topped_up"],
    )


def _refund_of_a_never_funded_milestone(db: Database, ids: dict[str, int]) -> None:
    run_sql(
        db,
        "INSERT INTO ledger_entry (contract_id, milestone_id, kind, amount_minor, actor, at, key)"
        " SELECT contract_id, id, 'refund', 100, 'U0BAD', created_at, 'refund:' || id"
        " FROM milestone WHERE contract_id = :c AND number = 1",
        c=ids["active"],
    )


def _released_without_a_release_entry(db: Database, ids: dict[str, int]) -> None:
    run_sql(
        db,
        "UPDATE milestone SET status = 'released' WHERE contract_id = :c AND number = 2",
        c=ids["auto"],
    )


def _fund_entry_shortened(db: Database, ids: dict[str, int]) -> None:
    run_sql(
        db,
        "UPDATE ledger_entry SET amount_minor = amount_minor - 1"
        " WHERE contract_id = :c AND kind = 'fund' AND key = ("
        "  SELECT 'fund:' || id FROM milestone WHERE contract_id = :c AND number = 2)",
        c=ids["auto"],
    )


def _release_entry_deleted(db: Database, ids: dict[str, int]) -> None:
    run_sql(
        db,
        "DELETE FROM ledger_entry WHERE contract_id = :c AND kind = 'release'",
        c=ids["auto"],
    )


def _closed_with_escrow_held(db: Database, ids: dict[str, int]) -> None:
    run_sql(db, "UPDATE contract SET status = 'closed' WHERE id = :c", c=ids["auto"])


def _funded_twice(db: Database, ids: dict[str, int]) -> None:
    run_sql(
        db,
        "INSERT INTO ledger_entry (contract_id, milestone_id, kind, amount_minor, actor, at, key)"
        " SELECT contract_id, milestone_id, 'fund', amount_minor, actor, at, key || ' '"
        " FROM ledger_entry WHERE contract_id = :c AND kind = 'fund'",
        c=ids["refunded"],
    )


def _entry_booked_on_another_contract(db: Database, ids: dict[str, int]) -> None:
    run_sql(
        db,
        "UPDATE ledger_entry SET contract_id = :other WHERE contract_id = :c AND kind = 'fund'",
        c=ids["refunded"],
        other=ids["active"],
    )


def _history_amount_rewritten(db: Database, ids: dict[str, int]) -> None:
    run_sql(
        db,
        "UPDATE event SET data = :data WHERE contract_id = :c AND kind = 'milestone_released'",
        c=ids["auto"],
        data='{"amount_minor": 1, "automatic": true}',
    )


@pytest.mark.parametrize(
    ("corrupt", "victim", "expected"),
    [
        (_second_release, "topped_up", "released 2 times"),
        (_refund_of_a_never_funded_milestone, "active", "never funded"),
        (_released_without_a_release_entry, "auto", "is released but its ledger shows"),
        (_fund_entry_shortened, "auto", "is submitted for 250000 but 249999 is held"),
        (_release_entry_deleted, "auto", "is released but its ledger shows 1 fund"),
        (_closed_with_escrow_held, "auto", "is closed but escrow still holds 250000"),
        (_funded_twice, "refunded", "is funded 2 times"),
        (_entry_booked_on_another_contract, "active", "not part of this contract"),
        (_history_amount_rewritten, "auto", "the history's milestone_released amounts [1]"),
    ],
)
def test_a_corrupted_ledger_is_reported_with_the_contract_named_and_exits_non_zero(
    db: Database, corrupt: Corruption, victim: str, expected: str
) -> None:
    with db.session() as session:
        ids = every_state(session)
    assert problems_of(db) == []
    corrupt(db, ids)
    problems = problems_of(db)
    assert any(p.contract_id == ids[victim] and expected in str(p) for p in problems), problems
    code, out, err = ledger_verify(db.url)
    assert code == 1
    lines = out.splitlines()
    assert lines and all(line.startswith("contract ") for line in lines), out
    assert any(line.startswith(f"contract {ids[victim]} (") and expected in line for line in lines)
    assert "ledger differs" in err


def test_escrow_going_negative_in_entry_order_is_reported(db: Database) -> None:
    with db.session() as session:
        contract_id = f.funded_contract(session)
    # A release booked before the funding it takes from: the totals balance, the
    # order does not.
    run_sql(
        db,
        "INSERT INTO ledger_entry (contract_id, milestone_id, kind, amount_minor, actor, at, key)"
        " SELECT contract_id, milestone_id, 'top_up', 1, actor, at, 'top_up:None:' || milestone_id"
        " FROM ledger_entry WHERE contract_id = :c",
        c=contract_id,
    )
    run_sql(db, "DELETE FROM ledger_entry WHERE contract_id = :c AND kind = 'fund'", c=contract_id)
    run_sql(
        db,
        "INSERT INTO ledger_entry (contract_id, milestone_id, kind, amount_minor, actor, at, key)"
        " SELECT contract_id, milestone_id, 'release', 2, actor, at, 'release:' || milestone_id"
        " FROM ledger_entry WHERE contract_id = :c",
        c=contract_id,
    )
    found = [str(p) for p in problems_of(db)]
    assert any("escrow goes negative (-1)" in p for p in found), found
    assert any("top-up entry" in p and "before the milestone was funded" in p for p in found)
    assert ledger_verify(db.url)[0] == 1
