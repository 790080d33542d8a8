"""Automatic-release throughput against PostgreSQL's own commit rate, and what the
releases then cost to deliver.

`count` contracts whose submitted work is past its review period are seeded (COPY,
tests/benchmarks/seed.py), then swept to completion by 1 and by 4 processes, each
looping `scheduler.jobs.sweep_auto_releases` — the sweep each of the bot's processes
runs — until nothing is due. A sweep releases a batch at a time, each batch one
transaction through `services.release_due`: up to 50 contracts claimed `FOR UPDATE OF
contract SKIP LOCKED` (so processes sweeping at once take different ones), each
re-checked under its lock and released — ledger entry, milestone, history event,
reminders, outbox intents (announcement, work card, contract card, both parties'
Home) — with the batch's rows written together. Delivery to Slack is not part of that
figure: the sweepers are given a `deliver` that does nothing, so the intents are
committed, not sent.

The delivery is measured on its own, afterwards (`deliver_queued`): one process runs
the outbox sweep the bot's scheduler runs (`bot.delivery.Delivery.sweep`, the bot's
own Web API client) against the Slack emulator in its own process, on what the
one-process sweep queued, for a fixed time; intents delivered per second, and how long
all of them would take at that rate.

The yardstick is `pgbench --builtin=simple-update` (one UPDATE, one SELECT, one
INSERT per transaction) on a scratch database on the same server, with as many
clients as sweeping processes, run before and after the sweeps; their mean is the
machine's commit rate the ratio is taken against.
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import psutil
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.app import make_web_client
from bot.delivery import Delivery
from domain.db import make_engine, make_session_factory, read_transaction, upgrade_schema
from domain.model import Event, LedgerEntry, LedgerKind, Milestone, MilestoneStatus, OutboxMessage
from domain.policy import DEFAULT_POLICY, system_clock
from domain.verify import check
from tests.benchmarks.seed import Shape, seed
from tests.benchmarks.servers import BOT_TOKEN
from tests.benchmarks.slack_process import SlackProcess

IDLE_SECONDS = 0.02  # a sweeper's pause when the rest of the due work is others'
DUE = Shape("submitted, review period over", 100, current="submitted")


def seed_due_releases(url: str, count: int) -> dict[str, Any]:
    """`count` contracts, each with milestone 1 submitted 17 days ago (due 3 days ago)."""
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
        result = seed(engine, count, base=datetime.now(UTC) - timedelta(days=15), shapes=[DUE])
    finally:
        engine.dispose()
    return {"seconds": result.seconds, "rows": result.total_rows}


def sweeper(url: str, now: datetime, start: Barrier, results: Queue[Any]) -> None:
    """A sweeping process: its own engine, the bot's sweep, until nothing is due."""
    from domain import queries
    from scheduler.jobs import sweep_auto_releases

    engine = make_engine(url, pool_size=2, max_overflow=2)
    try:
        sessions = make_session_factory(engine)
        with engine.connect():
            pass  # connected before the start line
        start.wait(timeout=120)
        began = time.monotonic()
        released = 0
        for _ in range(10_000):
            swept = sweep_auto_releases(sessions, now, lambda ids: None, policy=DEFAULT_POLICY)
            released += swept
            with sessions() as session:
                if not queries.due_auto_releases(session, now=now, limit=1):
                    break
            if not swept:
                # All that is left is claimed by the other sweepers (SKIP LOCKED): a bot
                # would wait for its next sweep; spinning here would take their CPU.
                time.sleep(IDLE_SECONDS)
        results.put((released, began, time.monotonic(), None))
    except BaseException as error:  # the parent reports it
        results.put((0, 0.0, 0.0, repr(error)))
        raise
    finally:
        engine.dispose()


def sweep(url: str, processes: int, count: int) -> dict[str, Any]:
    """Sweep with `processes` processes; releases per second and what was written."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    results: Queue[Any] = context.Queue()
    now = datetime.now(UTC)
    children = [
        context.Process(target=sweeper, args=(url, now, start, results), daemon=True)
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    start.wait(timeout=120)
    outcomes = [results.get(timeout=1800) for _ in children]
    for child in children:
        child.join(timeout=60)
    errors = [error for *_, error in outcomes if error]
    if errors:
        raise RuntimeError(f"a sweeper failed: {errors[0]}")
    seconds = max(end for _, _, end, _ in outcomes) - min(began for _, began, _, _ in outcomes)
    released = sum(n for n, *_ in outcomes)
    return {
        "processes": processes,
        "released": released,
        "per_process": [n for n, *_ in outcomes],
        "seconds": round(seconds, 2),
        "per_second": round(released / seconds, 1),
        "written": written(url, count),
    }


def written(url: str, count: int) -> dict[str, Any]:
    """What the sweep left: one release entry, one event, one announcement per milestone,
    nothing still submitted, and a ledger `verify` finds nothing wrong with."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session, read_transaction(session):
            releases = session.execute(
                select(LedgerEntry.milestone_id, func.count())
                .where(LedgerEntry.kind == LedgerKind.RELEASE)
                .group_by(LedgerEntry.milestone_id)
            ).all()
            events = session.scalar(select(func.count()).where(Event.kind == "milestone_released"))
            announced = session.scalar(
                select(func.count(func.distinct(OutboxMessage.subject_id))).where(
                    OutboxMessage.kind == "announce",
                    OutboxMessage.subject_id.in_(
                        select(Event.id).where(Event.kind == "milestone_released")
                    ),
                )
            )
            intents = session.scalar(
                select(func.count()).where(
                    OutboxMessage.state == "pending",
                    OutboxMessage.kind.in_(("announce", "work_card", "contract_card", "home")),
                )
            )
            still_submitted = session.scalar(
                select(func.count()).where(Milestone.status == MilestoneStatus.SUBMITTED)
            )
            verification = check(session)
    finally:
        engine.dispose()
    return {
        "release_entries": len(releases),
        "released_twice": sum(1 for _, n in releases if n > 1),
        "release_events": events,
        "announced": announced,
        "outbox_intents": intents,
        "still_submitted": still_submitted,
        "ledger_verify_ok": verification.ok,
        "ledger_problems": [str(d) for d in verification.discrepancies[:5]],
        "complete": len(releases) == count and events == count and still_submitted == 0,
    }


def _pending_by_kind(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session, read_transaction(session):
            rows = session.execute(
                select(OutboxMessage.kind, OutboxMessage.state, func.count()).group_by(
                    OutboxMessage.kind, OutboxMessage.state
                )
            ).all()
    finally:
        engine.dispose()
    return {f"{kind}:{state}": int(n) for kind, state, n in rows if str(state) != "sent"}


def deliver_queued(url: str, seconds: float) -> dict[str, Any]:
    """One process delivers what the sweep queued, for at most `seconds`.

    It runs the outbox pass each of the bot's processes runs on its schedule
    (`Delivery.sweep`: claim the oldest due intents 50 at a time, render them from the
    database, send them, mark them sent), with the bot's own Web API client, against the
    Slack emulator in a process of its own. App Homes are published in the pass, as the
    sweep does. Stopped after `seconds` (`Delivery.close`: the batch under way ends,
    none is claimed after it), so a large queue costs a bounded time: the rate is
    measured, the time for the whole queue is that rate's projection unless the queue
    emptied first.

    The seeded cards were never posted to this emulator, so each card's `chat.update`
    is refused (`message_not_found`) and the card is posted again: one call more per
    card than on a real workspace (counted in `slack`)."""
    before = _pending_by_kind(url)
    queued = sum(before.values())
    slack = SlackProcess().start()
    engine = make_engine(url, pool_size=2, max_overflow=2)
    try:
        sessions = make_session_factory(engine)
        delivery = Delivery(sessions, make_web_client(BOT_TOKEN, slack.api_url), system_clock)
        me = psutil.Process()
        emulator = psutil.Process(slack.pid) if slack.pid else None
        cpu_before = sum(me.cpu_times()[:2])
        emulator_before = sum(emulator.cpu_times()[:2]) if emulator else 0.0
        sweeping = threading.Thread(target=delivery.sweep, name="outbox-sweep", daemon=True)
        began = time.monotonic()
        sweeping.start()
        sweeping.join(seconds)
        emptied = not sweeping.is_alive()
        delivery.close()  # the batch under way ends; nothing more is claimed
        sweeping.join(120)
        elapsed = time.monotonic() - began
        cpu = sum(me.cpu_times()[:2]) - cpu_before
        emulator_cpu = (sum(emulator.cpu_times()[:2]) - emulator_before) if emulator else 0.0
        stats = slack.ask("stats")
    finally:
        slack.stop()
        engine.dispose()
    after = _pending_by_kind(url)
    delivered = {
        key.split(":")[0]: before.get(key, 0) - after.get(key, 0)
        for key in before
        if key.endswith(":pending")
    }
    total = sum(delivered.values())
    rate = total / elapsed if elapsed else 0.0
    return {
        "budget_seconds": seconds,
        "seconds": round(elapsed, 1),
        "emptied": emptied and not any(k.endswith(":pending") for k in after),
        "queued": queued,
        "delivered": total,
        "delivered_by_kind": delivered,
        "left": after,
        "per_second": round(rate, 1),
        "releases_per_second": round(delivered.get("announce", 0) / elapsed, 1)
        if elapsed
        else None,
        "projected_seconds": round(queued / rate, 0) if rate else None,
        "cpu_ms_per_intent": round(cpu * 1000 / total, 2) if total else None,
        "emulator_cpu_ms_per_intent": round(emulator_cpu * 1000 / total, 2) if total else None,
        "slack": stats,
    }


def pgbench(admin_url: str, name: str, clients: int, seconds: int) -> dict[str, Any]:
    """`pgbench --builtin=simple-update` transactions per second on database `name`."""
    url = make_url(admin_url)
    command = [
        _pgbench(),
        "--builtin=simple-update",
        f"--client={clients}",
        f"--jobs={min(clients, 2)}",
        f"--time={seconds}",
        "--no-vacuum",
        *_connection(url),
        name,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-500:]}")
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if found is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{done.stdout}")
    latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    return {
        "clients": clients,
        "seconds": seconds,
        "tps": float(found.group(1)),
        "latency_ms": float(latency.group(1)) if latency else None,
    }


def pgbench_init(admin_url: str, name: str, scale: int) -> None:
    command = [_pgbench(), "--initialize", f"--scale={scale}", "--quiet"]
    command += [*_connection(make_url(admin_url)), name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench -i failed: {done.stderr.strip()[-500:]}")


def _pgbench() -> str:
    found = shutil.which("pgbench")
    if found is None:
        raise RuntimeError(
            "pgbench is not installed: `apt-get install postgresql-contrib` (Debian) "
            "or `postgresql-client`"
        )
    return found


def _connection(url: Any) -> list[str]:
    return [
        f"--host={url.host or '127.0.0.1'}",
        f"--port={url.port or 5432}",
        f"--username={url.username or 'postgres'}",
    ]


def run(
    admin_url: str,
    count: int,
    *,
    process_counts: tuple[int, ...],
    pgbench_seconds: int,
    pgbench_scale: int,
    database: Callable[[str], str],
    drop: Callable[[str], None],
    log: Callable[[str], None],
    delivery_seconds: float,
) -> dict[str, Any]:
    """Seed, pgbench, sweep with each process count, pgbench again; then deliver what the
    first sweep queued for `delivery_seconds` (after pgbench, so nothing overlaps)."""
    urls = {n: database(f"release{n}") for n in process_counts}
    bench_url = database("pgbench")
    bench_name = make_url(bench_url).database or ""
    try:
        seeding = {}
        for n, url in urls.items():
            log(f"seeding {count:,} due automatic releases (for {n} process(es))")
            seeding[n] = seed_due_releases(url, count)
        log(f"pgbench: initializing (scale {pgbench_scale})")
        pgbench_init(admin_url, bench_name, pgbench_scale)
        before = {}
        for n in process_counts:
            log(f"pgbench simple-update, {n} client(s), {pgbench_seconds}s")
            before[n] = pgbench(admin_url, bench_name, n, pgbench_seconds)
        sweeps = {}
        for n, url in urls.items():
            log(f"sweeping {count:,} releases with {n} process(es)")
            sweeps[n] = sweep(url, n, count)
            log(f"  {sweeps[n]['per_second']} releases/s in {sweeps[n]['seconds']}s")
        after = {}
        for n in process_counts:
            log(f"pgbench simple-update again, {n} client(s)")
            after[n] = pgbench(admin_url, bench_name, n, pgbench_seconds)
        first = process_counts[0]
        log(
            f"delivering what the {first}-process sweep queued, one process, "
            f"at most {delivery_seconds:.0f}s"
        )
        delivery = deliver_queued(urls[first], delivery_seconds)
        log(
            f"  {delivery['delivered']:,} of {delivery['queued']:,} intents in "
            f"{delivery['seconds']}s: {delivery['per_second']}/s"
        )
    finally:
        for url in [*urls.values(), bench_url]:
            drop(url)
    results = []
    one = sweeps[process_counts[0]]["per_second"]
    for n in process_counts:
        tps = (before[n]["tps"] + after[n]["tps"]) / 2
        results.append(
            {
                "processes": n,
                "seed": seeding[n],
                "sweep": sweeps[n],
                "pgbench_before": before[n],
                "pgbench_after": after[n],
                "pgbench_tps": round(tps, 1),
                "ratio": round(sweeps[n]["per_second"] / tps, 3),
                # Against the first process count's releases/s, in the same run.
                "scaling": round(sweeps[n]["per_second"] / one, 3) if one else None,
            }
        )
    return {
        "count": count,
        "results": results,
        "pgbench_scale": pgbench_scale,
        "delivery": delivery,
    }
