"""Ack and completion latency, at 100 and at 100,000 contracts, against a bare bolt app.

Four servers run at once, each a real process on a loopback port, all talking to one
Slack emulator (in its own process):

- `bare`: a slack-bolt app that only acks (tests/benchmarks/bare_app.py), served the
  same way as the bot (`bot.server.serve`: gunicorn, `AsgiFront` + `SlackFront`, as
  many ASGI workers as serve's default);
- `sqlite-100`, `postgresql-100`: `milestone-bot serve` with its defaults on a
  100-contract database: gunicorn's master and its ASGI workers, each running the whole
  bot (bolt's listeners, the outbox delivery, the scheduler). A listener that changes
  something commits before it acks, and delivers the outbox after the ack in the same
  thread (handlers/flow.py);
- `postgresql-100k`: `milestone-bot serve` on the 100,000-contract database.

For each scenario (`/milestone status`, an Accept click on a change request card) and
concurrency (1, 20), the servers are measured in alternating rounds — round r runs
every server once, in an order rotated by r — so a burst of noise from the rest of
the machine lands on all of them alike. Before each Accept round every contract in
the server's click set gets a pending change request (the freelancer proposes an
edit through the service; its card is posted through the bot's own outbox delivery),
untimed.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil
from slack_sdk import WebClient
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import Delivery
from domain import intake, outbox, queries, reminders, services, snapshot
from domain.db import make_engine, make_session_factory, write_transaction
from domain.model import Contract, ContractStatus, Milestone, OutboxMessage
from domain.policy import DEFAULT_POLICY, system_clock
from domain.services import MilestoneEdit
from handlers import replies
from handlers.ids import Action
from scheduler.jobs import sweep_auto_releases
from tests.benchmarks import load
from tests.benchmarks.seed import MILESTONES, channel_of, client_of, freelancer_of
from tests.benchmarks.servers import BOT_TOKEN, SIGNING_SECRET, RssSampler, Server
from tests.benchmarks.slack_process import SlackProcess, update_key
from tests.test_query_plans import (
    captured,
    explain_plans,
    partial_indexes,
    plan_problems,
    scans,
)

SCENARIOS = ("status", "accept")
SMALL_TABLE = 10_000  # rows; below this a sequential scan can be the right plan


@dataclass
class Sizes:
    """How much to measure (the defaults fit a 2-core machine in a few minutes)."""

    clicks_per_round: int = 80  # contracts clicked per Accept round
    status_per_round: int = 100
    rounds: dict[int, int] = field(default_factory=lambda: {1: 2, 20: 4})  # per concurrency


@dataclass
class Target:
    name: str
    server: Server
    contracts: int
    engine: Engine | None = None
    click_set: list[int] = field(default_factory=list)
    open_contracts: list[int] = field(default_factory=list)
    sessions: sessionmaker[Session] | None = None
    database: str | None = None  # PostgreSQL's name for it (its backends show it)

    @property
    def bare(self) -> bool:
        return self.engine is None


class CpuMeter:
    """CPU seconds used by a server's processes, its PostgreSQL backends and the Slack
    emulator (user + system, from psutil), so a batch can be charged per interaction.

    `app` is the whole gunicorn tree; `master` (the arbiter: it forks, watches and
    signals, and serves no request) and `workers` (every ASGI worker: the front end,
    bolt, the services, the delivery and the scheduler) are its two parts."""

    def __init__(self, target: Target, slack_pid: int | None) -> None:
        self.target = target
        self.slack_pid = slack_pid

    def _processes(self) -> dict[str, list[psutil.Process]]:
        server = self.target.server
        groups: dict[str, list[psutil.Process]] = {"app": server.tree()}
        groups["master"] = server.master()  # part of "app"
        groups["workers"] = server.workers()  # part of "app"
        groups["slack"] = [psutil.Process(self.slack_pid)] if self.slack_pid else []
        groups["postgres"] = []
        if self.target.database:
            marker = f" {self.target.database} "
            for process in psutil.process_iter(["cmdline"]):
                line = " ".join(process.info["cmdline"] or [])
                if line.startswith("postgres:") and marker in f"{line} ":
                    groups["postgres"].append(process)
        return groups

    def read(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for group, processes in self._processes().items():
            out[group] = {}
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                out[group][process.pid] = times.user + times.system
        return out

    @staticmethod
    def used(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        return {
            group: sum(
                max(0.0, seconds - before.get(group, {}).get(pid, 0.0))
                for pid, seconds in pids.items()
            )
            for group, pids in after.items()
        }


def open_target(
    name: str, server: Server, database_url: str | None, contracts: int, candidates: list[int]
) -> Target:
    target = Target(name, server, contracts)
    if database_url is None:
        return target
    if database_url.startswith("postgresql"):
        target.database = make_url(database_url).database
    target.engine = make_engine(database_url, pool_size=4, max_overflow=4)
    target.sessions = make_session_factory(target.engine)
    with target.sessions() as session, session.begin():
        closed = set(
            session.scalars(select(Contract.id).where(Contract.status == ContractStatus.CLOSED))
        )
    target.open_contracts = [c for c in range(1, contracts + 1) if c not in closed]
    return target


def choose_click_set(target: Target, candidates: list[int], size: int) -> None:
    """`size` contracts whose milestone 5 can take a request, from the middle of the
    database (the same mix of states as the 100-contract one)."""
    middle = [c for c in candidates if c > target.contracts // 2]
    target.click_set = (middle if len(middle) >= size else candidates)[:size]


# --- preparing interactions (untimed) -----------------------------------------------------


def status_interactions(
    target: Target, slack: SlackProcess, count: int, rng: random.Random
) -> list[load.Interaction]:
    chosen = [rng.choice(target.open_contracts) for _ in range(count)]
    people = [(channel_of(c), client_of(c - 1), None) for c in chosen]
    urls = slack.ask("response_urls", people)
    return [
        load.Interaction(
            "status",
            load.command(user=user, channel=channel, text="status", response_url=url),
            url,
            expect=f"Contract {contract} ",
        )
        for contract, (channel, user, _), url in zip(chosen, people, urls, strict=True)
    ]


def accept_interactions(
    target: Target, slack: SlackProcess, delivery: Delivery
) -> list[load.Interaction]:
    """Each contract of the click set with a pending request and its card in the channel."""
    assert target.sessions is not None
    cards = [_pending_request_card(target, delivery, slack, c) for c in target.click_set]
    urls = slack.ask("response_urls", [(ch, user, ts) for ch, ts, user, *_ in cards])
    interactions = []
    for (channel, ts, user, message, value, block_id), url in zip(cards, urls, strict=True):
        slack.forget_update(update_key(channel, ts))
        fields = load.button_click(
            user=user,
            channel=channel,
            message=message,
            action_id=Action.ACCEPT.value,
            value=value,
            block_id=block_id,
            response_url=url,
        )
        # The card is the clicker's answer (one click, one confirmation): no reply is
        # posted, so the click is complete when its card is updated.
        interactions.append(load.Interaction("accept", fields, None, update_key(channel, ts)))
    return interactions


def _pending_request_card(
    target: Target, delivery: Delivery, slack: SlackProcess, contract_id: int
) -> tuple[str, str, str, dict[str, Any], str, str]:
    assert target.sessions is not None
    sessions = target.sessions
    with sessions() as session, session.begin():
        pending = queries.pending_requests(session, contract_id)
        amount = session.scalar(
            select(Milestone.amount_minor).where(
                Milestone.contract_id == contract_id, Milestone.number == MILESTONES
            )
        )
    if pending:
        request_id = pending[0].id
    else:
        assert amount is not None
        with sessions() as session:
            outcome = services.propose_changes(
                session,
                contract_id=contract_id,
                actor_id=freelancer_of(contract_id - 1, target.contracts),
                changes=[MilestoneEdit(number=MILESTONES, amount=f"{(amount + 100) / 100:.2f}")],
                message="One more round of revisions",
                now=system_clock(),
            )
        assert outcome.request_id is not None
        request_id = outcome.request_id
        delivery.deliver(outcome.outbox_ids)  # posts the request card, as the bot does
    for _ in range(2):
        with sessions() as session:
            placed = outbox.placement(session, f"request:{request_id}")
        card = (
            slack.ask("card", (placed.channel_id, placed.ts, Action.ACCEPT.value))
            if placed
            else None
        )
        if card is not None:
            assert placed is not None
            message, value, block_id = card
            client = client_of(contract_id - 1)
            return placed.channel_id, placed.ts, client, message, value, block_id
        # A seeded card this emulator never saw: let the bot post it again.
        _deliver_now(sessions, delivery, "request_card", contract_id, request_id)
    raise RuntimeError(f"no card for request {request_id}")


def _deliver_now(
    sessions: sessionmaker[Session], delivery: Delivery, kind: str, contract_id: int, subject: int
) -> None:
    now = system_clock()
    with sessions() as session, write_transaction(session):
        message = OutboxMessage(
            kind=kind,
            contract_id=contract_id,
            subject_id=subject,
            created_at=now,
            next_attempt_at=now,
            attempts=0,
            state="pending",
        )
        session.add(message)
        session.flush()
        outbox_id = message.id
    delivery.deliver([outbox_id])


# --- the run ------------------------------------------------------------------------------


def rotated(targets: list[Target], by: int) -> list[Target]:
    by %= len(targets)
    return targets[by:] + targets[:by]


def measure(
    targets: list[Target],
    slack: SlackProcess,
    sampler: RssSampler,
    sizes: Sizes,
    log: Callable[[str], None],
    *,
    donor_name: str = "postgresql-100",
) -> dict[str, Any]:
    """Every scenario at every concurrency on every target; samples summarized.

    The bare app runs right after `donor_name` in every round, with the same requests,
    each held in flight after its ack for as long as the donor's took from ack to its
    last effect: both servers see the same offered load.
    """
    client = WebClient(token=BOT_TOKEN, base_url=slack.api_url, timeout=30)
    deliveries = {t.name: Delivery(t.sessions, client, system_clock) for t in targets if t.sessions}
    bare = next(t for t in targets if t.bare)
    measured = [t for t in targets if not t.bare]
    donor = next(t for t in measured if t.name == donor_name)
    rng = random.Random(5)
    samples: dict[tuple[str, int, str], list[load.Sample]] = {}
    cpu: dict[tuple[str, int, str], dict[str, float]] = {}
    walls: dict[tuple[str, int, str], float] = {}  # seconds the counted rounds took
    meters = {t.name: CpuMeter(t, slack.pid if not t.bare else None) for t in targets}

    def prepare(target: Target, scenario: str, count: int | None) -> list[load.Interaction]:
        if scenario == "status":
            return status_interactions(target, slack, count or sizes.status_per_round, rng)
        return accept_interactions(target, slack, deliveries[target.name])

    def send(
        target: Target, interactions: list[load.Interaction], concurrency: int, scenario: str = ""
    ) -> list[load.Sample]:
        before = meters[target.name].read()
        began = time.monotonic()
        got = load.run(
            target.server.events_url,
            interactions,
            concurrency=concurrency,
            slack=None if target.bare else slack,
            secret=SIGNING_SECRET,
        )
        if scenario:
            used = CpuMeter.used(before, meters[target.name].read())
            key = (scenario, concurrency, target.name)
            walls[key] = walls.get(key, 0.0) + time.monotonic() - began
            total = cpu.setdefault(key, {"interactions": 0.0})
            total["interactions"] += len(got)
            for group, seconds in used.items():
                total[group] = total.get(group, 0.0) + seconds
        return got

    log("warming up every server")
    sampler.phase = "warm-up"
    for scenario in SCENARIOS:
        for target in measured:
            warm = prepare(target, scenario, 20)[:20]
            send(target, warm, 4)
            if target is donor:
                send(bare, warm, 4)
    for scenario in SCENARIOS:
        for concurrency, rounds in sorted(sizes.rounds.items()):
            sampler.phase = f"{scenario} c={concurrency}"
            for round_number in range(rounds):
                for target in rotated(measured, round_number):
                    interactions = prepare(target, scenario, None)
                    began = time.monotonic()
                    got = send(target, interactions, concurrency, scenario)
                    _keep(
                        samples,
                        scenario,
                        concurrency,
                        target,
                        got,
                        began,
                        round_number,
                        rounds,
                        log,
                    )
                    if target is donor:
                        holds = [in_flight_after_ack(s) for s in got if s.ok] or [0.0]
                        paced = [
                            dataclasses.replace(i, hold=holds[n % len(holds)])
                            for n, i in enumerate(interactions)
                        ]
                        began = time.monotonic()
                        got = send(bare, paced, concurrency, scenario)
                        _keep(
                            samples,
                            scenario,
                            concurrency,
                            bare,
                            got,
                            began,
                            round_number,
                            rounds,
                            log,
                        )
    return summarize_all(samples, cpu, walls)


def in_flight_after_ack(sample: load.Sample) -> float:
    """How long the load generator waited after the ack: until the last of the effects
    it waits for (an Accept's reply now comes before its card)."""
    last = max((t for t in (sample.reply, sample.completion) if t is not None), default=None)
    return max(0.0, last - sample.ack) if last is not None else 0.0


def _keep(
    samples: dict[tuple[str, int, str], list[load.Sample]],
    scenario: str,
    concurrency: int,
    target: Target,
    got: list[load.Sample],
    began: float,
    round_number: int,
    rounds: int,
    log: Callable[[str], None],
) -> None:
    samples.setdefault((scenario, concurrency, target.name), []).extend(got)
    failed = [s for s in got if not s.ok]
    log(
        f"  {scenario} c={concurrency} round {round_number + 1}/{rounds} {target.name}: "
        f"{len(got)} in {time.monotonic() - began:.1f}s"
        + (f", {len(failed)} failed ({failed[0].problem})" if failed else "")
    )


def summarize_all(
    samples: dict[tuple[str, int, str], list[load.Sample]],
    cpu: dict[tuple[str, int, str], dict[str, float]],
    walls: dict[tuple[str, int, str], float],
) -> dict[str, Any]:
    """Percentiles per cell; CPU per interaction by group; interactions per second over
    the counted rounds (with the concurrency, Little's law gives the mean time each
    spends in flight)."""
    out: dict[str, Any] = {}
    for (scenario, concurrency, target), got in sorted(samples.items()):
        used = dict(cpu.get((scenario, concurrency, target), {}))
        count = used.pop("interactions", 0.0) or 1.0
        wall = walls.get((scenario, concurrency, target))
        entry = {
            "cpu_ms_per_interaction": {k: round(v * 1000 / count, 1) for k, v in used.items()},
            "per_second": round(count / wall, 1) if wall else None,
            "ack": load.summarize(got, "ack").as_dict(),
            "completion": load.summarize(got, "completion").as_dict(),
            "reply": load.summarize(got, "reply").as_dict(),
            "ack_ms": [round(s.ack * 1000, 2) for s in got if s.ok],
            "completion_ms": [
                round(s.completion * 1000, 2) for s in got if s.ok and s.completion is not None
            ],
        }
        out.setdefault(scenario, {}).setdefault(str(concurrency), {})[target] = entry
    return out


# --- the planner's choice on the large database -------------------------------------------


def explain_hot_paths(target: Target, slack: SlackProcess) -> list[dict[str, Any]]:
    """Run status, an Accept (with its receipt, its delivery and the clicker's answer)
    and one sweep on the seeded database, capture every statement, and EXPLAIN each
    with the planner free to choose."""
    assert target.engine is not None and target.sessions is not None
    engine, sessions = target.engine, target.sessions
    client = WebClient(token=BOT_TOKEN, base_url=slack.api_url, timeout=30)
    delivery = Delivery(sessions, client, system_clock)
    contract_id = target.click_set[-1]
    now = datetime.now(UTC)

    def status() -> None:
        with sessions() as session, session.begin():
            found = queries.resolve_contract(
                session, channel_id=channel_of(contract_id), contract_id=None
            )
        with sessions() as session, session.begin():
            snapshot.snapshot(session, found.id)

    with sessions() as session:
        outcome = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=freelancer_of(contract_id - 1, target.contracts),
            changes=[MilestoneEdit(number=MILESTONES, amount="4321.00")],
            now=now,
        )
    delivery.deliver(outcome.outbox_ids)
    client_id = client_of(contract_id - 1)
    [reply_url] = slack.ask("response_urls", [(channel_of(contract_id), client_id, None)])

    def accept() -> None:
        """As handlers.flow.perform runs it: the request's receipt and the clicker's
        answer in the service's transaction, then the delivery of what it queued."""
        origin = intake.Origin(
            key=f"action:{client_id}:{time.time():.6f}",
            at=system_clock(),
            reply_to=replies.Address(response_url=reply_url).encode(),
        )
        with sessions() as session:
            intake.attach(session, origin)
            done = services.accept_request(
                session,
                actor_id=client_id,
                now=system_clock(),
                request_id=outcome.request_id,
                contract_id=contract_id,
            )
        delivery.deliver(done.outbox_ids)

    def sweep() -> None:
        sweep_auto_releases(sessions, now, delivery.deliver, policy=DEFAULT_POLICY)
        reminders.send_due(sessions, now=now, time_zone_of=lambda _: "UTC", policy=DEFAULT_POLICY)
        delivery.sweep()
        intake.forget_receipts(sessions, now=system_clock())

    report: list[dict[str, Any]] = []
    partial = partial_indexes(engine)
    for path, work in (("status", status), ("accept", accept), ("sweep", sweep)):
        with captured(engine) as statements:
            work()
        for statement, plan in explain_plans(engine, statements, enable_seqscan=True):
            problems, notes = [], []
            for problem in plan_problems(plan, partial):
                table = problem.rsplit(" ", 1)[-1] if problem.startswith("Seq Scan") else None
                rows = _estimated_rows(engine, table) if table else None
                if rows is not None and rows < SMALL_TABLE:
                    notes.append(f"{rows:,} rows: a sequential scan is the cheaper plan")
                else:
                    problems.append(problem)
            report.append(
                {
                    "path": path,
                    "statement": " ".join(statement.split())[:160],
                    "scans": [
                        f"{s['Node Type']} on {s['Relation Name']}"
                        + (f" using {s['Index Name']}" if "Index Name" in s else "")
                        for s in scans(plan)
                    ],
                    "problems": problems,
                    "notes": notes,
                }
            )
    return report


def _estimated_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        rows = conn.scalar(text(f'SELECT count(*) FROM "{table}"'))
    return int(rows or 0)
