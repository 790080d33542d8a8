"""The ending window's sweep, and a dispute settled, are answered through indexes
(PostgreSQL, EXPLAIN with sequential scans off), as test_query_plans.py checks the
first wave's hot paths."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.delivery import Delivery
from domain import services
from domain.model import Contract, ContractStatus
from scheduler.jobs import sweep_ending_windows
from tests.conftest import Database
from tests.factories import CLIENT, FREELANCER, NOW, funded_contract, submitted_contract
from tests.test_query_plans import _FakeSlack, run_path, seeded

pytestmark = pytest.mark.postgres


def test_the_ending_window_sweep_uses_indexes(pg: Database) -> None:
    seeded(pg)
    with pg.session() as session:
        ending = funded_contract(session)
        services.end_contract(session, contract_id=ending, actor_id=CLIENT, now=NOW)
    later = NOW + timedelta(days=8)
    delivery = Delivery(pg.sessions, _FakeSlack(), lambda: later)  # type: ignore[arg-type]

    def sweep() -> None:
        assert sweep_ending_windows(pg.sessions, later, delivery.deliver) == 1

    assert run_path(pg, sweep) == []
    with pg.session() as session, session.begin():
        status = session.scalar(select(Contract.status).where(Contract.id == ending))
    assert status == ContractStatus.CLOSED


def test_a_dispute_and_its_settlement_use_indexes(pg: Database) -> None:
    seeded(pg)
    with pg.session() as session:
        contract_id = submitted_contract(session)
    delivery = Delivery(pg.sessions, _FakeSlack(), lambda: NOW)  # type: ignore[arg-type]

    def dispute_and_settle() -> None:
        for step in (
            lambda s: services.dispute_milestone(
                s, contract_id=contract_id, actor_id=CLIENT, reason="x", now=NOW
            ),
            lambda s: services.propose_split(
                s,
                contract_id=contract_id,
                actor_id=CLIENT,
                milestone_number=1,
                to_provider="500",
                now=NOW,
            ),
            lambda s: services.propose_split(
                s,
                contract_id=contract_id,
                actor_id=FREELANCER,
                milestone_number=1,
                to_provider="500",
                now=NOW,
            ),
        ):
            with pg.session() as session:
                outcome = step(session)
            assert not outcome.already_done
            delivery.deliver(outcome.outbox_ids)

    assert run_path(pg, dispute_and_settle) == []
