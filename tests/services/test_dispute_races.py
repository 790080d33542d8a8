"""Races of the second wave's endings and disputes, on PostgreSQL with real row locks.

As in test_concurrency.py, each race starts its calls together on a barrier, each in its
own thread, session and connection, and is run `ROUNDS` times: whatever the order,
exactly one of the racing actions takes effect, the history says which, and money moves
once (a release or refund never twice: the ledger's unique keys).
"""

from __future__ import annotations

from functools import partial

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import ledger, services
from domain.errors import InvalidTransition
from domain.model import (
    SYSTEM_ACTOR,
    Contract,
    ContractStatus,
    Dispute,
    LedgerKind,
    MilestoneStatus,
)
from domain.services import Outcome
from tests.conftest import Database
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER,
    funded_contract,
    later,
    submitted_contract,
)
from tests.services.test_concurrency import (
    entries,
    events,
    milestone,
    race,
    the_rest,
    took_effect,
)

ROUNDS = 10


def dispute_of(session: Session, contract_id: int) -> Dispute | None:
    return session.scalar(
        select(Dispute)
        .where(Dispute.contract_id == contract_id)
        .execution_options(populate_existing=True)
    )


@pytest.mark.postgres
def test_a_dispute_racing_the_automatic_release_has_exactly_one_winner(pg: Database) -> None:
    winners: set[str] = set()
    at = later(days=15)  # the review period (14 days from NOW) has run out
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = submitted_contract(session, agency=round_no % 2 == 1)
            milestone_id = milestone(session, contract_id, 1).id

        answers = race(
            pg,
            partial(
                services.dispute_milestone,
                contract_id=contract_id,
                actor_id=CLIENT,
                reason="Not what we agreed",
                milestone_id=milestone_id,
                now=at,
            ),
            partial(services.auto_release, milestone_id=milestone_id, now=at),
        )

        done = took_effect(answers)
        assert len(done) == 1, answers
        [loser] = the_rest(answers)
        with pg.session() as session:
            status = milestone(session, contract_id, 1).status
            releases = entries(session, contract_id, LedgerKind.RELEASE)
            found = dispute_of(session, contract_id)
            held = ledger.escrow_of(session, contract_id).balance_minor
        if done[0] is answers[0]:
            winners.add("dispute")
            assert isinstance(loser, Outcome) and loser.already_done, loser
            assert status == MilestoneStatus.DISPUTED
            assert releases == [] and held == 150_000
            assert found is not None and found.opened_by == CLIENT
        else:
            winners.add("release")
            assert isinstance(loser, InvalidTransition), loser
            assert status == MilestoneStatus.RELEASED
            assert [(e.amount_minor, e.actor) for e in releases] == [(150_000, SYSTEM_ACTOR)]
            assert found is None and held == 0
    assert winners  # which side wins varies from run to run; both outcomes are checked


@pytest.mark.postgres
def test_two_agreements_to_one_split_settle_it_once(pg: Database) -> None:
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = submitted_contract(session)
            services.dispute_milestone(
                session, contract_id=contract_id, actor_id=CLIENT, reason="x", now=later(1)
            )
            services.propose_split(
                session,
                contract_id=contract_id,
                actor_id=CLIENT,
                milestone_number=1,
                to_provider="600",
                now=later(2),
            )
            found = dispute_of(session, contract_id)
            assert found is not None

        click = partial(
            services.agree_to_split,
            contract_id=contract_id,
            dispute_id=found.id,
            proposal_number=found.proposal_number,
            actor_id=FREELANCER,
            now=later(3),
        )
        typed = partial(  # the same split typed: an agreement too
            services.propose_split,
            contract_id=contract_id,
            actor_id=FREELANCER,
            milestone_number=1,
            to_provider="600",
            now=later(3),
        )

        answers = race(pg, click, click if round_no % 2 else typed)

        assert len(took_effect(answers)) == 1, answers
        for other in the_rest(answers):
            assert isinstance(other, InvalidTransition) or (
                isinstance(other, Outcome) and other.already_done
            ), other
        with pg.session() as session:
            releases = entries(session, contract_id, LedgerKind.RELEASE)
            refunds = entries(session, contract_id, LedgerKind.REFUND)
            assert [e.amount_minor for e in releases] == [60_000]
            assert [e.amount_minor for e in refunds] == [90_000]
            assert len(events(session, contract_id, "dispute_settled")) == 1
            assert milestone(session, contract_id, 1).status == MilestoneStatus.RELEASED
            assert ledger.escrow_of(session, contract_id).balance_minor == 0


@pytest.mark.postgres
def test_the_window_sweep_racing_accept_refund_refunds_once(pg: Database) -> None:
    winners: set[str] = set()
    at = later(days=9)  # ended at NOW + 1 day, the 7-day window has run out
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = funded_contract(session, agency=round_no % 2 == 1)
            services.end_contract(
                session, contract_id=contract_id, actor_id=CLIENT, now=later(days=1)
            )
        provider = MANAGER if round_no % 2 == 1 else FREELANCER

        answers = race(
            pg,
            partial(services.refund_at_window_end, contract_id=contract_id, now=at),
            partial(services.accept_refund, contract_id=contract_id, actor_id=provider, now=at),
        )

        done = took_effect(answers)
        assert len(done) == 1, answers
        [loser] = the_rest(answers)
        assert isinstance(loser, Outcome) and loser.already_done, loser
        automatic = done[0] is answers[0]
        winners.add("sweep" if automatic else "provider")
        with pg.session() as session:
            refunds = entries(session, contract_id, LedgerKind.REFUND)
            assert [(e.amount_minor, e.actor) for e in refunds] == [
                (150_000, SYSTEM_ACTOR if automatic else provider)
            ]
            [ended] = events(session, contract_id, "contract_ended")
            assert ended.data["how"] == ("window_ran_out" if automatic else "refund_accepted")
            assert ledger.escrow_of(session, contract_id).balance_minor == 0
            assert _status(session, contract_id) == ContractStatus.CLOSED
    assert winners


@pytest.mark.postgres
def test_the_provider_disputing_as_the_window_runs_out_stops_the_refund(pg: Database) -> None:
    at = later(days=8)  # the very instant the window ends
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = funded_contract(session, agency=round_no % 2 == 1)
            services.end_contract(
                session, contract_id=contract_id, actor_id=CLIENT, now=later(days=1)
            )
            milestone_id = milestone(session, contract_id, 1).id
        provider = MANAGER if round_no % 2 == 1 else FREELANCER

        answers = race(
            pg,
            partial(services.refund_at_window_end, contract_id=contract_id, now=at),
            partial(
                services.dispute_milestone,
                contract_id=contract_id,
                actor_id=provider,
                reason="The work was done",
                milestone_id=milestone_id,
                now=at,
            ),
        )

        done = took_effect(answers)
        assert len(done) == 1, answers
        with pg.session() as session:
            refunds = entries(session, contract_id, LedgerKind.REFUND)
            found = dispute_of(session, contract_id)
        if done[0] is answers[0]:  # refunded first: nothing left to dispute
            assert [e.amount_minor for e in refunds] == [150_000] and found is None
        else:  # disputed first: frozen, no refund
            assert refunds == [] and found is not None


def _status(session: Session, contract_id: int) -> ContractStatus:
    status = session.scalar(select(Contract.status).where(Contract.id == contract_id))
    assert status is not None
    return status
