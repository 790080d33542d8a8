"""Run every benchmark and write the report: `scripts/bench` (`--quick` for a smoke run).

    python -m tests.benchmarks.run                 # the full run: docs/benchmarks.md
    python -m tests.benchmarks.run --quick         # small sizes, into test-artifacts/
    python -m tests.benchmarks.run --contracts 20000 --releases 2000 --out /some/dir

PostgreSQL: `MILESTONE_BENCH_PG_URL` (default: `MILESTONE_TEST_PG_URL`, or
postgresql+psycopg://postgres@127.0.0.1:5432/test) names a database to connect to
for creating scratch databases, which are dropped at the end. Everything else runs on
loopback ports of this machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from domain.db import make_engine, make_session_factory, upgrade_schema
from domain.verify import check
from tests.benchmarks import bench_latency, bench_throughput, machine, report
from tests.benchmarks.seed import seed
from tests.benchmarks.servers import (
    PROXY_VARS,
    ROOT,
    RssSampler,
    Server,
    serve_command,
    serve_workers,
    start_bare,
    start_serve,
)
from tests.benchmarks.slack_process import SlackProcess

DEFAULT_PG = os.environ.get(
    "MILESTONE_BENCH_PG_URL",
    os.environ.get("MILESTONE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)
SMALL = 100


OWN_PATHS = ("tests/benchmarks/", "scripts/bench", "docs/benchmarks")


def code_state() -> dict[str, Any]:
    """The commit measured, and the files that differed from it when the run started
    (read-only git commands; others may be editing the same work tree). The harness's
    own files and the report are left out of the list."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.splitlines()
    except OSError:
        return {"commit": None, "changed": []}
    changed = [line[3:] for line in status if not line[3:].startswith(OWN_PATHS)]
    return {"commit": commit or None, "changed": changed}


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


class Databases:
    """Scratch PostgreSQL databases, created on demand and dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.created: list[str] = []
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")

    def create(self, purpose: str) -> str:
        name = f"milestone_bench_{purpose}_{self.tag}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self.created.remove(name)
        self._admin.dispose()


def seed_database(url: str, contracts: int, *, verify: bool) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
        result = seed(engine, contracts)
        out: dict[str, Any] = {
            "contracts": contracts,
            "rows": result.rows,
            "total_rows": result.total_rows,
            "seconds": round(result.seconds, 1),
            "method": result.method,
            "candidates": result.click_candidates,
        }
        if verify:
            began = time.monotonic()
            with make_session_factory(engine)() as session, session.begin():
                verification = check(session)
            out["verify"] = {
                "ok": verification.ok,
                "contracts": verification.contracts,
                "entries": verification.entries,
                "problems": [str(d) for d in verification.discrepancies[:5]],
                "seconds": round(time.monotonic() - began, 1),
            }
        return out
    finally:
        engine.dispose()


@contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def latency_and_scale(
    args: argparse.Namespace, databases: Databases, workdir: Path
) -> dict[str, Any]:
    small_pg = databases.create("small")
    large_pg = databases.create("large")
    small_sqlite = f"sqlite:///{workdir / 'small.sqlite3'}"
    seeding = {}
    log(f"seeding {SMALL} contracts on SQLite and on PostgreSQL")
    seeding["sqlite-100"] = seed_database(small_sqlite, SMALL, verify=True)
    seeding["postgresql-100"] = seed_database(small_pg, SMALL, verify=True)
    log(f"seeding {args.contracts:,} contracts on PostgreSQL (COPY)")
    seeding["postgresql-large"] = seed_database(large_pg, args.contracts, verify=not args.no_verify)
    log(
        f"  {seeding['postgresql-large']['total_rows']:,} rows in "
        f"{seeding['postgresql-large']['seconds']}s"
        + (
            f"; ledger verify {seeding['postgresql-large']['verify']['ok']} "
            f"({seeding['postgresql-large']['verify']['seconds']}s)"
            if "verify" in seeding["postgresql-large"]
            else ""
        )
    )
    large_name = f"postgresql-{_short_count(args.contracts)}"
    slack = SlackProcess().start()
    sizes = bench_latency.Sizes(
        clicks_per_round=args.clicks,
        status_per_round=args.status,
        rounds={1: args.rounds_c1, 20: args.rounds_c20},
    )
    workers = serve_workers()
    try:
        log(f"starting the servers (bare bolt app, milestone-bot serve x3; {workers} workers each)")
        servers = [
            start_bare("bare", slack.api_url, workdir, workers=workers),
            start_serve("sqlite-100", small_sqlite, slack.api_url, workdir),
            start_serve("postgresql-100", small_pg, slack.api_url, workdir),
            start_serve(large_name, large_pg, slack.api_url, workdir),
        ]
        with running(servers), RssSampler(servers) as sampler:
            trees = {s.name: len(s.workers()) for s in servers}
            targets = [
                bench_latency.open_target("bare", servers[0], None, 0, []),
                bench_latency.open_target("sqlite-100", servers[1], small_sqlite, SMALL, []),
                bench_latency.open_target("postgresql-100", servers[2], small_pg, SMALL, []),
                bench_latency.open_target(large_name, servers[3], large_pg, args.contracts, []),
            ]
            for target, key in zip(
                targets[1:], ("sqlite-100", "postgresql-100", "postgresql-large"), strict=True
            ):
                bench_latency.choose_click_set(
                    target, seeding[key]["candidates"], sizes.clicks_per_round
                )
            latency = bench_latency.measure(targets, slack, sampler, sizes, log)
            log("EXPLAIN of every hot-path query on the large database (planner's choice)")
            sampler.phase = "explain"
            plans = bench_latency.explain_hot_paths(targets[3], slack)
            stats = slack.ask("stats")
            for target in targets:
                if target.engine is not None:
                    target.engine.dispose()
        memory = {
            s.name: {
                "peak_tree_mb": round(s.peak_tree / 2**20, 1),
                "peak_largest_mb": round(s.peak_largest / 2**20, 1),
                "peak_pss_mb": round(s.peak_pss / 2**20, 1),
                "phases_mb": {k: round(v / 2**20, 1) for k, v in s.phase_peaks.items()},
                "workers": trees[s.name],
            }
            for s in servers
        }
    finally:
        slack.stop()
        databases.drop(small_pg)
        databases.drop(large_pg)
    for entry in seeding.values():
        entry.pop("candidates", None)
    return {
        "seeding": seeding,
        "large_name": large_name,
        "latency": latency,
        "plans": plans,
        "memory": memory,
        "slack": stats,
        "workers": workers,
        "sizes": {
            "clicks_per_round": sizes.clicks_per_round,
            "status_per_round": sizes.status_per_round,
            "rounds": sizes.rounds,
        },
    }


def _short_count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--contracts", type=int, help="the large database (default 100000)")
    parser.add_argument("--releases", type=int, help="due automatic releases (default 100000)")
    parser.add_argument("--only", choices=("latency", "throughput"), help="run one part")
    parser.add_argument("--no-verify", action="store_true", help="skip ledger verify of the seed")
    parser.add_argument("--out", type=Path, help="where the report goes (default docs/)")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL URL for scratch databases")
    args = parser.parse_args(argv)
    quick = args.quick
    args.contracts = args.contracts or (10_000 if quick else 100_000)
    args.releases = args.releases or (1_000 if quick else 100_000)
    args.clicks = 40 if quick else 80
    args.status = 50 if quick else 100
    args.rounds_c1 = 1 if quick else 2
    args.rounds_c20 = 1 if quick else 4
    args.pgbench_seconds = 5 if quick else 15
    args.delivery_seconds = 15.0 if quick else 60.0
    args.out = args.out or (ROOT / ("test-artifacts/benchmarks" if quick else "docs"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for var in PROXY_VARS:
        os.environ.pop(var, None)
    os.environ["SKIP_SLACK_SDK_WARNING"] = "1"
    began = time.monotonic()
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine.describe(args.pg),
        "serve_command": serve_command()[1],
        "code": code_state(),
    }
    log(
        "machine: {cores} cores ({cpu}), {memory_gib} GiB, Python {python}, "
        "PostgreSQL {postgresql}".format(**results["machine"])
    )
    databases = Databases(args.pg)
    try:
        with tempfile.TemporaryDirectory(prefix="milestone-bench-") as scratch:
            if args.only in (None, "latency"):
                results["latency"] = latency_and_scale(args, databases, Path(scratch))
            if args.only in (None, "throughput"):
                results["throughput"] = bench_throughput.run(
                    args.pg,
                    args.releases,
                    process_counts=(1, 4),
                    pgbench_seconds=args.pgbench_seconds,
                    pgbench_scale=10,
                    database=databases.create,
                    drop=databases.drop,
                    log=log,
                    delivery_seconds=args.delivery_seconds,
                )
    finally:
        databases.drop_all()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["code_at_end"] = code_state()  # others may have changed the tree meanwhile
    results["seconds"] = round(time.monotonic() - began, 1)
    written = report.write(results, args.out)
    log(f"done in {results['seconds']:.0f}s; report: {written}")
    print(report.summary_text(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
