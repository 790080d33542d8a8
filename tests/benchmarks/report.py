"""The Markdown report and its PNG charts (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

# The targets, judged at TARGET_CONCURRENCY on the large PostgreSQL database.
TARGET_CONCURRENCY = 20
ACK_P99_TARGET = 300.0  # the ack now includes the commit (handlers/flow.py)
COMPLETION_P99_TARGETS = {"status": 300.0, "accept": 400.0}
MEMORY_TARGET_MB = 200.0  # PSS of serve's whole tree: master and workers
RELEASES_VS_PGBENCH_TARGET = 0.3  # 1 sweeping process against pgbench with 1 client
RELEASES_SCALING_TARGET = 1.7  # 4 sweeping processes against 1, same run
# Kept from earlier reports as checks of their own (not among the targets).
SCALE_RATIO_TARGET = 1.3
SCENARIO_TITLES = {"status": "`/milestone status`", "accept": "Accept click"}
COMPLETIONS = {
    "status": "completion (the reply on its response_url)",
    "accept": "completion (the clicked change-request card updated, chat.update)",
}
COLORS = ["#7f7f7f", "#1f77b4", "#2ca02c", "#d62728", "#9467bd"]


@dataclass(frozen=True)
class Check:
    what: str
    figure: str
    target: str
    ok: bool | None  # None: reported, no target


def _cell(latency: dict[str, Any], scenario: str, concurrency: int, target: str) -> dict[str, Any]:
    return latency[scenario][str(concurrency)][target]


def _fmt(value: float | None, unit: str = " ms") -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.1f}{unit}"


def _verdict(ok: bool | None) -> str:
    return {True: "✅ met", False: "❌ missed", None: "reported"}[ok]


def _within(value: float | None, limit: float, errors: int) -> bool:
    return value is not None and value <= limit and not errors


def targets(results: dict[str, Any]) -> list[Check]:
    """The targets this report is judged on, each with its figure from this run."""
    out: list[Check] = []
    part = results.get("latency")
    if part:
        latency, large = part["latency"], part["large_name"]
        c = TARGET_CONCURRENCY
        for scenario in ("status", "accept"):
            cell = _cell(latency, scenario, c, large)
            bare = _cell(latency, scenario, c, "bare")["ack"]
            ack = cell["ack"]
            out.append(
                Check(
                    f"{SCENARIO_TITLES[scenario]} ack p99, concurrency {c}, {large} "
                    f"(p50 / p95 beside it; the bare bolt app's p99 in brackets)",
                    f"{_fmt(ack['p99_ms'])} (p50 {_fmt(ack['p50_ms'])}, p95 "
                    f"{_fmt(ack['p95_ms'])}; bare {_fmt(bare['p99_ms'])})",
                    f"≤ {ACK_P99_TARGET:.0f} ms",
                    _within(ack["p99_ms"], ACK_P99_TARGET, ack["errors"]),
                )
            )
        for scenario in ("accept", "status"):
            done = _cell(latency, scenario, c, large)["completion"]
            limit = COMPLETION_P99_TARGETS[scenario]
            out.append(
                Check(
                    f"{SCENARIO_TITLES[scenario]} {COMPLETIONS[scenario]} p99, "
                    f"concurrency {c}, {large}",
                    _fmt(done["p99_ms"]) + (f", {done['errors']} errors" if done["errors"] else ""),
                    f"≤ {limit:.0f} ms",
                    _within(done["p99_ms"], limit, done["errors"]),
                )
            )
        reply = _cell(latency, "accept", c, large)["reply"]
        out.append(
            Check(
                f"Accept click reply (the clicker's answer on its response_url) p99, "
                f"concurrency {c}, {large}",
                f"{_fmt(reply['p99_ms'])} (p50 {_fmt(reply['p50_ms'])})",
                "reported",
                None,
            )
        )
        for name, memory in part["memory"].items():
            if name == "bare":
                continue
            pss = memory.get("peak_pss_mb")
            out.append(
                Check(
                    f"peak PSS of `serve`'s whole tree (master + {memory.get('workers', '?')} "
                    f"workers), {name}",
                    f"{pss:.1f} MB" if pss else "–",
                    f"≤ {MEMORY_TARGET_MB:.0f} MB",
                    pss is not None and pss <= MEMORY_TARGET_MB,
                )
            )
    part = results.get("throughput")
    if part:
        rows = {row["processes"]: row for row in part["results"]}
        one, four = rows.get(1), rows.get(4)
        if one:
            complete = one["sweep"]["written"]["complete"]
            out.append(
                Check(
                    f"committed automatic releases/s, 1 process, vs pgbench simple-update with "
                    f"1 client ({part['count']:,} due, PostgreSQL)",
                    f"{one['sweep']['per_second']:,.0f}/s vs {one['pgbench_tps']:,.0f} tps = "
                    f"{one['ratio']:.2f}×" + ("" if complete else " (INCOMPLETE)"),
                    f"≥ {RELEASES_VS_PGBENCH_TARGET}×",
                    complete and one["ratio"] >= RELEASES_VS_PGBENCH_TARGET,
                )
            )
        if one and four:
            complete = four["sweep"]["written"]["complete"]
            out.append(
                Check(
                    "committed automatic releases/s, 4 processes vs 1 process (same run)",
                    f"{four['sweep']['per_second']:,.0f}/s vs {one['sweep']['per_second']:,.0f}/s"
                    f" = {four['scaling']:.2f}×" + ("" if complete else " (INCOMPLETE)"),
                    f"≥ {RELEASES_SCALING_TARGET}×",
                    complete
                    and four["scaling"] is not None
                    and four["scaling"] >= RELEASES_SCALING_TARGET,
                )
            )
        delivery = part.get("delivery")
        if delivery:
            out.append(
                Check(
                    "delivery to Slack of what the 1-process sweep queued, one process "
                    "(outbox sweep against the emulator)",
                    _delivery_figure(delivery),
                    "reported separately",
                    None,
                )
            )
    return out


def _delivery_figure(delivery: dict[str, Any]) -> str:
    done = (
        f"all {delivery['queued']:,} intents in {delivery['seconds']:.0f} s"
        if delivery["emptied"]
        else f"{delivery['delivered']:,} of {delivery['queued']:,} intents in "
        f"{delivery['seconds']:.0f} s; all of them ≈ {_duration(delivery['projected_seconds'])} "
        "at that rate (projected)"
    )
    return (
        f"{delivery['per_second']:,.0f} intents/s ≈ {delivery['releases_per_second']:,.0f} "
        f"releases/s; {done}"
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def other_checks(results: dict[str, Any]) -> list[Check]:
    """What earlier reports judged, kept as checks of their own: the cost of scale, the
    query plans, the other memory measures and the 4-client ratio."""
    out: list[Check] = []
    part = results.get("latency")
    if part:
        large = part["large_name"]
        for scenario, concurrency, measure, ratio in scale_ratios(part):
            if measure != "completion p50":
                continue
            out.append(
                Check(
                    f"{SCENARIO_TITLES[scenario]} {measure}, concurrency {concurrency}: "
                    f"{large} / postgresql-100",
                    f"{ratio:.2f}×",
                    f"≤ {SCALE_RATIO_TARGET}×",
                    ratio <= SCALE_RATIO_TARGET,
                )
            )
        plans = part["plans"]
        indexed = sum(1 for plan in plans if not plan["problems"])
        out.append(
            Check(
                f"hot-path statements answered through indexes on {large} "
                "(EXPLAIN, sequential scans allowed)",
                f"{indexed} of {len(plans)}",
                "all",
                indexed == len(plans),
            )
        )
        for name, memory in part["memory"].items():
            out.append(
                Check(
                    f"peak RSS of {name}, summed over its tree (shared pages counted in every "
                    "process) / its largest process",
                    f"{memory['peak_tree_mb']:.0f} MB / {memory['peak_largest_mb']:.0f} MB",
                    "reported",
                    None,
                )
            )
    part = results.get("throughput")
    if part:
        for row in part["results"]:
            if row["processes"] == 1:
                continue
            out.append(
                Check(
                    f"committed automatic releases/s, {row['processes']} processes, vs pgbench "
                    f"simple-update with {row['processes']} clients",
                    f"{row['sweep']['per_second']:,.0f}/s vs {row['pgbench_tps']:,.0f} tps = "
                    f"{row['ratio']:.2f}×",
                    "reported",
                    None,
                )
            )
    return out


def checks(results: dict[str, Any]) -> list[Check]:
    return targets(results) + other_checks(results)


def scale_ratios(part: dict[str, Any]) -> Iterator[tuple[str, int, str, float]]:
    latency, large = part["latency"], part["large_name"]
    for scenario in ("status", "accept"):
        for concurrency in (1, 20):
            small = _cell(latency, scenario, concurrency, "postgresql-100")
            big = _cell(latency, scenario, concurrency, large)
            for measure in ("completion", "ack"):
                for p in ("p50", "p95", "p99"):
                    a, b = small[measure][f"{p}_ms"], big[measure][f"{p}_ms"]
                    if a and b:
                        yield scenario, concurrency, f"{measure} {p}", b / a


# --- charts -----------------------------------------------------------------------------


def chart_latency(part: dict[str, Any], path: Path) -> None:
    latency = part["latency"]
    targets = [name for name, _ in _ordered(latency["status"]["1"])]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    bars = [
        ("ack", "p50_ms"),
        ("ack", "p99_ms"),
        ("completion", "p50_ms"),
        ("completion", "p99_ms"),
    ]
    width = 0.2
    for row, scenario in enumerate(("status", "accept")):
        for col, concurrency in enumerate((1, 20)):
            ax = axes[row][col]
            for i, (measure, key) in enumerate(bars):
                values = [
                    _cell(latency, scenario, concurrency, t)[measure][key] or 0 for t in targets
                ]
                positions = [x + (i - 1.5) * width for x in range(len(targets))]
                ax.bar(
                    positions,
                    values,
                    width,
                    label=f"{measure} {key[:3]}",
                    color=["#9ecae1", "#3182bd", "#fdae6b", "#e6550d"][i],
                )
            if concurrency == TARGET_CONCURRENCY:
                ax.axhline(ACK_P99_TARGET, color="#3182bd", linestyle="--", linewidth=1)
                ax.axhline(
                    COMPLETION_P99_TARGETS[scenario], color="#e6550d", linestyle="--", linewidth=1
                )
            ax.set_xticks(range(len(targets)))
            ax.set_xticklabels(targets, fontsize=8)
            ax.set_title(f"{scenario} — concurrency {concurrency}")
            ax.set_ylabel("ms")
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(
        f"Ack and completion latency (dashed: p99 targets at concurrency {TARGET_CONCURRENCY})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_cdf(part: dict[str, Any], path: Path) -> None:
    latency = part["latency"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, scenario in zip(axes, ("status", "accept"), strict=True):
        cells = latency[scenario]["20"]
        for color, (target, cell) in zip(COLORS, sorted(cells.items()), strict=False):
            for key, style in (("ack_ms", "--"), ("completion_ms", "-")):
                values = sorted(cell[key])
                if not values:
                    continue
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                label = f"{target} {key[:-3]}"
                ax.plot(values, fractions, style, color=color, label=label, linewidth=1.3)
        ax.axvline(ACK_P99_TARGET, color="black", linestyle=":", linewidth=0.8)
        ax.axvline(COMPLETION_P99_TARGETS[scenario], color="black", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("ms (log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{scenario}, concurrency 20: dashed ack, solid completion")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_scale(part: dict[str, Any], path: Path) -> None:
    rows = list(scale_ratios(part))
    labels = [f"{s} c={c}\n{m}" for s, c, m, _ in rows if m.endswith(("p50", "p99"))]
    values = [r for _, _, m, r in rows if m.endswith(("p50", "p99"))]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    colors = ["#2ca02c" if v <= SCALE_RATIO_TARGET else "#d62728" for v in values]
    ax.bar(range(len(values)), values, color=colors)
    ax.axhline(SCALE_RATIO_TARGET, color="black", linestyle="--", linewidth=1, label="1.3×")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, fontsize=6.5)
    ax.set_ylabel(f"{part['large_name']} / postgresql-100")
    ax.set_title("Latency at scale relative to a 100-contract database")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_throughput(part: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = part["results"]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["sweep"]["per_second"] for r in rows], 0.4, label="releases/s")
    ax.bar([i + 0.2 for i in x], [r["pgbench_tps"] for r in rows], 0.4, label="pgbench tps")
    for i, row in enumerate(rows):
        ax.annotate(f"ratio {row['ratio']:.2f}", (i, row["pgbench_tps"]), ha="center", va="bottom")
        if row.get("scaling") and row["processes"] != rows[0]["processes"]:
            ax.annotate(
                f"{row['scaling']:.2f}× {rows[0]['processes']} process",
                (i - 0.2, row["sweep"]["per_second"]),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    delivery = part.get("delivery")
    if delivery:
        ax.axhline(
            delivery["releases_per_second"],
            color="#d62728",
            linestyle=":",
            label="releases delivered to Slack/s, 1 process",
        )
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{r['processes']} process(es) / client(s)" for r in rows])
    ax.set_ylabel("per second")
    ax.set_title(f"{part['count']:,} automatic releases committed vs pgbench simple-update")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_memory(part: dict[str, Any], path: Path) -> None:
    memory = part["memory"]
    names = list(memory)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(
        names,
        [memory[n]["peak_tree_mb"] for n in names],
        label="RSS summed over the tree",
        color="#c6dbef",
    )
    ax.barh(
        names,
        [memory[n].get("peak_pss_mb", 0) for n in names],
        label="PSS of the tree",
        color="#3182bd",
    )
    ax.barh(
        names,
        [memory[n]["peak_largest_mb"] for n in names],
        label="RSS, largest process",
        color="#9ecae1",
        height=0.4,
    )
    ax.axvline(MEMORY_TARGET_MB, color="#d62728", linestyle="--", label="target")
    ax.set_xlabel("peak memory, MB")
    ax.legend(fontsize=8)
    ax.set_title("Peak memory of each server's tree (master + workers)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- Markdown ---------------------------------------------------------------------------


def summary_text(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}, SQLite {m['sqlite']}",
        "figure vs target:",
    ]
    for check in targets(results):
        lines.append(
            f"  [{_verdict(check.ok)}] {check.what}: {check.figure} (target {check.target})"
        )
    lines.append("other checks:")
    for check in other_checks(results):
        lines.append(
            f"  [{_verdict(check.ok)}] {check.what}: {check.figure} (target {check.target})"
        )
    return "\n".join(lines)


def key_figures(results: dict[str, Any]) -> dict[str, str]:
    """The figures a reader compares from one report to the next, as text. Read from a
    results.json of this harness or of an earlier one (whatever is missing is left out),
    so the report can say what moved since the last one."""
    figures: dict[str, str] = {}
    part = results.get("latency") or {}
    large = part.get("large_name")
    c = str(TARGET_CONCURRENCY)
    try:
        for scenario in ("status", "accept"):
            cell = part["latency"][scenario][c][large]
            title = SCENARIO_TITLES[scenario]
            figures[f"{title} ack p50 / p99, c={c}, {large}"] = (
                f"{_fmt(cell['ack']['p50_ms'])} / {_fmt(cell['ack']['p99_ms'])}"
            )
            figures[f"{title} completion p99, c={c}, {large}"] = _fmt(cell["completion"]["p99_ms"])
            if scenario == "accept":
                figures[f"{title} reply p99, c={c}, {large}"] = _fmt(cell["reply"]["p99_ms"])
        figures[f"`serve` tree PSS, {large}"] = f"{part['memory'][large]['peak_pss_mb']:.0f} MB"
    except (KeyError, TypeError):
        pass
    throughput = results.get("throughput") or {}
    for row in throughput.get("results", []):
        try:
            figures[f"automatic releases/s committed, {row['processes']} process(es)"] = (
                f"{row['sweep']['per_second']:,.0f}/s ({throughput['count']:,} due; "
                f"{row['ratio']:.2f}× pgbench)"
            )
        except (KeyError, TypeError):
            continue
    return figures


def write(results: dict[str, Any], out: Path) -> Path:
    charts = out / "benchmarks"
    charts.mkdir(parents=True, exist_ok=True)
    previous_path = charts / "results.json"
    if previous_path.exists() and "previous" not in results:
        try:
            previous = json.loads(previous_path.read_text())
        except (OSError, ValueError):
            previous = None
        if isinstance(previous, dict) and previous.get("started") != results.get("started"):
            results["previous"] = {
                "started": previous.get("started"),
                "quick": previous.get("quick"),
                "figures": key_figures(previous),
            }
    previous_path.write_text(json.dumps(results, indent=1) + "\n")
    images: dict[str, str] = {}
    if results.get("latency"):
        part = results["latency"]
        for name, draw in (
            ("latency.png", chart_latency),
            ("latency-cdf.png", chart_cdf),
            ("scale.png", chart_scale),
            ("memory.png", chart_memory),
        ):
            draw(part, charts / name)
            images[name] = f"benchmarks/{name}"
    if results.get("throughput"):
        chart_throughput(results["throughput"], charts / "throughput.png")
        images["throughput.png"] = "benchmarks/throughput.png"
    path = out / "benchmarks.md"
    path.write_text(markdown(results, images))
    return path


def _code(results: dict[str, Any]) -> list[str]:
    """Which code was measured: the commit and the files that differed from it when the
    run started, and whether that had changed by the end (others may share the tree)."""
    code = results.get("code") or {}
    if not code.get("commit"):
        return []
    changed = code.get("changed") or []
    if not changed:
        lines = [f"Code measured: commit `{code['commit']}`, no uncommitted changes."]
    else:
        shown = ", ".join(f"`{name}`" for name in changed[:12])
        more = f" and {len(changed) - 12} more" if len(changed) > 12 else ""
        lines = [
            f"Code measured: commit `{code['commit']}` with uncommitted changes (work in",
            f"progress in the same work tree when the run started) in {len(changed)} files:",
            f"{shown}{more}.",
        ]
    end = results.get("code_at_end")
    if end and end != code:
        lines.append(
            f"The work tree changed during the run (at the end: commit `{end.get('commit')}`, "
            f"{len(end.get('changed') or [])} files with uncommitted changes); each server "
            "ran the code it found when it started."
        )
    return [*lines, ""]


def _check_table(found: list[Check]) -> list[str]:
    lines = ["| what | figure | target | |", "|---|---|---|---|"]
    for check in found:
        lines.append(f"| {check.what} | {check.figure} | {check.target} | {_verdict(check.ok)} |")
    return [*lines, ""]


def markdown(results: dict[str, Any], images: dict[str, str]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench`"
        + (" **--quick** (small sizes: not the reference run)" if results["quick"] else "")
        + f" on {results['started'][:10]}; the whole run took "
        f"{results['seconds'] / 60:.1f} minutes. Raw figures: "
        "[benchmarks/results.json](benchmarks/results.json).",
        "",
        *_code(results),
        "## Machine",
        "",
        f"- {m['cores']} cores ({m['physical_cores']} physical), {m['cpu']}, {m['memory_gib']} GiB",
        f"- {m['os']}; Python {m['python']}; SQLite {m['sqlite']}",
        f"- PostgreSQL {m['postgresql']} on the same machine (127.0.0.1): "
        + ", ".join(f"{k} = {v}" for k, v in m["postgresql_settings"].items()),
        "- " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- load average (1, 5, 15 min) at the start {m['load_average_at_start']}, at the end "
        f"{m.get('load_average_at_end')}: other work may share the machine, which is why every "
        "comparison below is measured side by side in one run",
        "",
        "## Figures against targets",
        "",
        f"Latency at concurrency {TARGET_CONCURRENCY} on the large PostgreSQL database, memory "
        "of every `serve`, automatic releases on PostgreSQL; all measured in this one run.",
        "",
        *_check_table(targets(results)),
        "**Other checks** (kept from earlier reports; not among the targets):",
        "",
        *_check_table(other_checks(results)),
    ]
    lines += _design(results)
    lines += _changes(results)
    if results.get("latency"):
        lines += _latency_section(results, images)
    if results.get("throughput"):
        lines += _throughput_section(results["throughput"], images)
    if results.get("latency"):
        lines += _memory_section(results["latency"], images)
    lines += [
        "## Changes these benchmarks led to",
        "",
        "Earlier reports' findings that are still in the code:",
        "",
        "- Migration `0002`: indexes `ix_ledger_entry_milestone_id` and `ix_request_receipt_at`",
        "  (found by `tests/test_query_plans.py`).",
        "- App Home renders the snapshots of all its contracts in two queries",
        "  (`domain.snapshot.snapshots`) instead of four per contract.",
        "- The outbox claim takes the due rows `FOR UPDATE SKIP LOCKED` and claims them with",
        "  one `UPDATE … RETURNING`; a card's placement is read in the transaction that",
        "  renders it.",
        "- Outbox bookkeeping (claim, sent, retry) commits on PostgreSQL without waiting for",
        "  the WAL flush (`synchronous_commit = off` for those transactions only): delivery is",
        "  at-least-once, so a claim lost in a server crash means a message sent again. The",
        "  state changes themselves (services, ledger, receipts, card placements) still wait",
        "  for the flush.",
        "- Services lock the contract with its parties and write events, reminders and",
        "  intents at the end, a statement per table (an Accept's service sends 9 statements,",
        "  pinned by `tests/services/test_statements.py`); delivery claims, renders and marks",
        "  a batch of intents with one statement each; App Homes are published half a second",
        "  later from a background thread, one `views.publish` per person for a burst.",
        "- Automatic releases go in batches (`services.release_due`, 13 statements per batch",
        "  of up to 50, as for one release).",
        "",
        "## Running it",
        "",
        "```sh",
        "scripts/bench            # everything, this report (10-25 minutes on 2 cores)",
        "scripts/bench --quick    # small sizes, into test-artifacts/benchmarks/",
        "scripts/bench --contracts 20000 --releases 2000 --only latency   # and so on",
        "```",
        "",
        "The benchmarks live in `tests/benchmarks/` (not collected by pytest). The one",
        "benchmark-related check that is a test — every hot-path query uses an index — is",
        "`tests/test_query_plans.py`, part of `./scripts/test`.",
        "",
    ]
    return "\n".join(lines)


def _design(results: dict[str, Any]) -> list[str]:
    """What is being measured: serve as it runs now."""
    workers = (results.get("latency") or {}).get("workers", 2)
    return [
        "## How `serve` runs",
        "",
        "- `milestone-bot serve` is gunicorn with the bot's own ASGI worker class",
        f'  (`worker_class="asgi"`), {workers} workers by default. The master only forks,',
        "  watches and signals them. Each worker builds the whole bot when it starts",
        "  (`bot.server.AsgiFront` → `bot.app.start_bot`): the bolt app and its listener",
        "  threads, the outbox delivery and the scheduler (automatic releases, reminders,",
        "  outbox retries). Its asyncio loop reads the connections — a slow client holds a",
        "  socket, not a thread — and hands each request to bolt in a thread pool.",
        "- **Commit before ack.** A listener that changes something (here: Accept) runs its",
        "  service and commits — the change, the request's receipt (its idempotency key) and",
        "  the outbox intents, the clicker's answer among them, in one transaction — and only",
        "  then acks (`handlers/flow.py`). The ack, the HTTP response Slack waits for, so",
        "  includes the service and its commit: an ack means the change is in the database.",
        "- **Delivery after the ack, in the listener thread.** The same thread then delivers",
        "  what the transaction queued: the clicker's answer on its `response_url` first, then",
        "  the cards (the clicked request card, the contract card), then the channel",
        "  announcement; the parties' App Homes follow half a second later from a background",
        "  thread. Whatever is not delivered stays in the outbox for the next sweep of any",
        "  worker.",
        "- `/milestone status` changes nothing: it acks first, then reads the contract and",
        "  answers on the `response_url`.",
        "- **Automatic releases** go in batches: each worker's sweep claims up to 50 due",
        "  contracts `FOR UPDATE OF contract SKIP LOCKED` and releases them in one transaction",
        "  (`services.release_due`), then delivers what the batch queued",
        "  (`scheduler.jobs.sweep_auto_releases`).",
        "",
    ]


def _changes(results: dict[str, Any]) -> list[str]:
    """What changed since the last report: in the code, in the harness, in the figures."""
    lines = [
        "## What changed since the last report",
        "",
        "- The runtime: gunicorn's gthread worker (1 × 16 threads) that acked at once and",
        "  handed the work to a separate work process (`bot/work.py`, jobs taking turns at",
        "  the interpreter, `bot/turns.py`) is replaced by the ASGI workers above; both modules",
        "  are gone.",
        "- Commit before ack: an Accept's ack now waits for its service and commit (it used to",
        "  come before any work), so the ack target is now p99 ≤ 300 ms instead of < 150 ms;",
        "  completion is judged separately (Accept ≤ 400 ms, status ≤ 300 ms, was < 500 ms",
        "  for both).",
        "- Request receipts: every change stores its request's idempotency key in its own",
        "  transaction (`domain/intake.py`); the sweep forgets them after the replay window",
        "  (`domain.intake.forget_receipts`, was `bot.app.forget_old_receipts`).",
        "- Delivery claims skip locked rows, a 429 wakes the scheduler at Retry-After, every",
        "  post carries metadata naming it (a post tried again is first looked for in the",
        "  channel's history).",
        "- Automatic releases in batches claimed `SKIP LOCKED` (they were one transaction per",
        "  release, every process walking the same due list). Their targets are now ratios",
        "  (1 process against pgbench with 1 client, 4 processes against 1) on 100,000 due",
        "  contracts (was 10,000), and the delivery of what they queue is measured",
        "  separately.",
        "- The harness: the bare bolt app is served like `serve` (same ASGI front end and",
        "  worker count); CPU is charged to serve's master and workers (there is no work",
        "  process); the EXPLAIN of the Accept path includes its receipt and the clicker's",
        "  answer.",
        "",
    ]
    previous = results.get("previous")
    if previous and previous.get("figures"):
        now = key_figures(results)
        names = [name for name in previous["figures"] if name in now]
        names += [name for name in now if name not in previous["figures"]]
        note = " (a --quick run)" if previous.get("quick") else ""
        lines += [
            f"Key figures, the last report ({str(previous.get('started'))[:10]}{note}) → this run:",
            "",
            "| figure | last report | this run |",
            "|---|---|---|",
        ]
        for name in names:
            lines.append(f"| {name} | {previous['figures'].get(name, '–')} | {now[name]} |")
        lines += [
            "",
            "The Accept reply is not the same moment in both: the work process sent it after",
            "the cards and the announcement; the delivery now sends it first. The 4-process",
            "sweep is now judged against the 1-process one (its ratio to pgbench with 4",
            "clients is still reported).",
            "",
        ]
    return lines


def _latency_section(results: dict[str, Any], images: dict[str, str]) -> list[str]:
    part = results["latency"]
    latency, large = part["latency"], part["large_name"]
    sizes = part["sizes"]
    seeding = part["seeding"]
    big = seeding["postgresql-large"]
    workers = part.get("workers", 2)
    lines = [
        "## 1. Ack and completion latency",
        "",
        "Four servers run side by side, each a real process tree on a loopback port, all",
        "calling one Slack emulator (`sandbox.emulator`, in a process of its own): `bare`, a",
        "slack-bolt app whose listeners only `ack()`, served the same way as the bot —",
        f"`bot.server.serve` (gunicorn, {workers} ASGI workers, the same options),",
        "`AsgiFront` and `SlackFront`, bolt on the bot's listener pool",
        "(`tests/benchmarks/bare_app.py`); and",
        f"`{results['serve_command']}` with its defaults ({workers} workers) on a",
        "100-contract SQLite database, a 100-contract PostgreSQL database and the",
        f"{big['contracts']:,}-contract PostgreSQL database (`{large}`).",
        "",
        "A closed-loop load generator plays Slack: it signs each request (v0 HMAC), POSTs",
        "it on a new connection and stops the **ack** clock when the HTTP response is read;",
        "then it waits until the emulator reports the effects, and only then sends the next",
        "one, so *concurrency* is the number of interactions in flight, delivery after the",
        "ack included. **Completion** is the time until the emulator received the reply on",
        "the request's `response_url` (status) or the `chat.update` of the change request",
        "card that was clicked (Accept). For Accept, **reply** is when the clicker's own",
        "answer arrived on its `response_url` (the delivery sends it first, then the cards",
        "and the announcement). The emulator stamps arrivals with the machine's monotonic",
        "clock, the load generator its sends with the same clock.",
        "",
        f"Status asks for a random open contract's status in its channel, as its client "
        f"({sizes['status_per_round']} per round). Accept clicks **Accept** on a pending",
        f"change request card ({sizes['clicks_per_round']} contracts per round, each with",
        "an edit of milestone 5 pending). Before every Accept round the freelancer proposes",
        "a new edit where none is pending (`services.propose_changes`) and the bot's own",
        "outbox delivery posts its card — untimed. Rounds per concurrency: "
        + ", ".join(f"{r} at concurrency {c}" for c, r in sizes["rounds"].items())
        + "; every round runs every server once, in a rotating order. A warm-up round per",
        "server is not counted. The bare app gets the same requests as `postgresql-100`,",
        "right after it in each round, each held in flight after its ack for as long as",
        "`postgresql-100` took from that ack to its last effect, so both see the same",
        "offered load.",
        "",
        "*per s* is interactions finished per second over the counted rounds. CPU is",
        "charged per interaction to serve's workers, its master, the database's PostgreSQL",
        "backends and the Slack emulator (user + system time, psutil).",
        "",
    ]
    for scenario in ("status", "accept"):
        for concurrency in (1, 20):
            lines += [
                f"**{SCENARIO_TITLES[scenario]}, concurrency {concurrency}** (ms)",
                "",
                "| server | n | errors | per s | ack p50 | ack p95 | ack p99 | completion p50 | "
                "completion p95 | completion p99 |"
                + (" reply p50 | reply p99 |" if scenario == "accept" else "")
                + " CPU ms each: workers · master · PostgreSQL · Slack |",
                "|---|---|---|---|---|---|---|---|---|---|---|"
                + ("---|---|" if scenario == "accept" else ""),
            ]
            for target, cell in _ordered(latency[scenario][str(concurrency)]):
                ack, done, reply = cell["ack"], cell["completion"], cell["reply"]
                rate = cell.get("per_second")
                row = (
                    f"| {target} | {ack['count']} | {ack['errors']} | "
                    f"{_fmt(rate, '') if rate else '–'} | {_fmt(ack['p50_ms'], '')} | "
                    f"{_fmt(ack['p95_ms'], '')} | {_fmt(ack['p99_ms'], '')} | "
                    f"{_fmt(done['p50_ms'], '')} | {_fmt(done['p95_ms'], '')} | "
                    f"{_fmt(done['p99_ms'], '')} |"
                )
                if scenario == "accept":
                    row += f" {_fmt(reply['p50_ms'], '')} | {_fmt(reply['p99_ms'], '')} |"
                used = cell.get("cpu_ms_per_interaction", {})
                row += (
                    " "
                    + " · ".join(
                        _fmt(used.get(k), "") if k in used else "–"
                        for k in ("workers", "master", "postgres", "slack")
                    )
                    + " |"
                )
                lines.append(row)
            lines.append("")
    lines += _ack_beside_bare(part)
    errors = {
        f"{s} c={c} {t}": cell["ack"]["problems"]
        for s, by_c in latency.items()
        for c, by_t in by_c.items()
        for t, cell in by_t.items()
        if cell["ack"]["problems"]
    }
    if errors:
        lines += ["Errors seen:", ""] + [f"- {k}: {v}" for k, v in errors.items()] + [""]
    failed_calls = part["slack"]["failed"]
    lines += [
        f"The emulator answered {part['slack']['calls']:,} Web API calls; refused: "
        + (", ".join(f"{k} ×{v}" for k, v in failed_calls.items()) or "none")
        + " (a `message_not_found` is a seeded card the emulator never saw, re-posted by the "
        "bot before a round).",
        "",
    ]
    if "latency.png" in images:
        lines += [
            f"![Latency percentiles]({images['latency.png']})",
            "",
            f"![Latency distributions at concurrency 20]({images['latency-cdf.png']})",
            "",
        ]
    lines += _capacity(part)
    lines += _scale_section(part, images)
    return lines


def _ack_beside_bare(part: dict[str, Any]) -> list[str]:
    """The ack of every server next to the bare app's, p50 / p95 / p99."""
    latency = part["latency"]
    names = [name for name, _ in _ordered(latency["status"]["1"])]
    lines = [
        "**The ack next to the bare app** (ms, p50 / p95 / p99). The bare app's ack is",
        "bolt, the front end and gunicorn alone. An Accept's ack adds its service and",
        "commit; status acks before its work. At concurrency 20 an ack also shares its",
        "worker's interpreter with the other requests in flight there, their delivery",
        "after the ack included.",
        "",
        "| scenario | concurrency | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for scenario in ("status", "accept"):
        for concurrency in (1, 20):
            cells = latency[scenario][str(concurrency)]
            row = [
                " / ".join(_fmt(cells[n]["ack"][f"{p}_ms"], "") for p in ("p50", "p95", "p99"))
                if n in cells
                else "–"
                for n in names
            ]
            lines.append(f"| {scenario} | {concurrency} | " + " | ".join(row) + " |")
    lines.append("")
    return lines


def _capacity(part: dict[str, Any]) -> list[str]:
    """Why concurrency 20 costs what it costs: Little's law and the CPU per interaction."""
    large = part["large_name"]
    lines = [f"**Where the time goes at concurrency 20** (`{large}`).", ""]
    for scenario in ("status", "accept"):
        cell = _cell(part["latency"], scenario, 20, large)
        used = cell.get("cpu_ms_per_interaction", {})
        rate = cell.get("per_second")
        if not used.get("app") or not rate:
            continue
        mean = cell["completion"]["mean_ms"]
        workers, master = used.get("workers", 0.0), used.get("master", 0.0)
        postgres, slack = used.get("postgres", 0.0), used.get("slack", 0.0)
        busy = (workers + master + postgres + slack) * rate / 1000
        lines.append(
            f"{SCENARIO_TITLES[scenario]}: {rate:.0f} finished per second with 20 in flight, "
            f"so each spent 20 / {rate:.0f} = {20_000 / rate:.0f} ms in flight on average "
            f"(Little's law; the mean completion measured: {_fmt(mean)}). Each cost "
            f"{workers:.1f} ms of CPU in serve's workers, {master:.1f} ms in its master, "
            f"{postgres:.1f} ms in PostgreSQL and {slack:.1f} ms in the emulator: at that "
            f"rate {busy:.2f} of the machine's 2 cores, before the load generator's own share."
        )
        lines.append("")
    lines += [
        "A closed loop of 20 with no pause between interactions keeps the machine busy by",
        "construction: the time an interaction spends in flight is 20 divided by the",
        "interactions per second the machine can finish. Each worker runs Python on one",
        "core at a time (the interpreter lock), so a request's ack, its commit and the",
        "delivery of the other requests in flight in that worker take turns; the two",
        "workers share the two cores with PostgreSQL, the emulator and the load generator.",
        "",
    ]
    return lines


def _ordered(cells: dict[str, Any]) -> list[tuple[str, Any]]:
    """bare, sqlite-100, postgresql-100, then the large database."""
    rank = {"bare": 0, "sqlite-100": 1, "postgresql-100": 2}
    return sorted(cells.items(), key=lambda kv: rank.get(kv[0], 3))


def _scale_section(part: dict[str, Any], images: dict[str, str]) -> list[str]:
    seeding, large = part["seeding"], part["large_name"]
    big = seeding["postgresql-large"]
    rows = big["rows"]
    lines = [
        "## 2. Scale",
        "",
        f"**Seeding.** {big['contracts']:,} contracts — {rows['milestone']:,} milestones, "
        f"{rows['change_request']:,} change requests (all pending), "
        f"{rows['ledger_entry']:,} ledger entries, {rows['event']:,} history events, "
        f"{rows['reminder']:,} reminders, {rows['outbox_message']:,} outbox intents "
        f"(sent), {rows['message_ref']:,} card placements; {big['total_rows']:,} rows in "
        f"{big['seconds']:.0f} s through {big['method']}, then `VACUUM ANALYZE`.",
        "",
        "The fast path (`tests/benchmarks/seed.py`): one template contract per state is made",
        "through the real services in a scratch SQLite file with a clock that walks it",
        "through its history (created, milestones added, agreed, funded, submitted, approved",
        "or released automatically, a change request proposed, ended). Every seeded contract",
        "is a copy of one template — every row the services wrote, with fresh ids, its own",
        "channel, its own client and freelancer (five contracts each) and its timestamps",
        "shifted by up to six hours — streamed with `COPY … FROM STDIN` (psycopg",
        "`cursor.copy`, one transaction). The mix per 100 contracts: 10 negotiating, 5 ended",
        "(one milestone released, one refunded), 85 active, of which 20 have a pending change",
        "request and 10 submitted work under review; 5 milestones each, as a chain of funded",
        "→ submitted → released. Outbox intents are marked sent; nothing is due for the",
        "scheduler within the run.",
        "",
    ]
    verify = big.get("verify")
    if verify:
        found = "no difference" if verify["ok"] else "DIFFERENCES: " + "; ".join(verify["problems"])
        lines += [
            f"`domain.verify.check` (what `milestone-bot ledger verify` runs) on the seeded "
            f"database: {found}"
            f" across {verify['contracts']:,} contracts and {verify['entries']:,} ledger entries "
            f"({verify['seconds']:.0f} s).",
            "",
        ]
    lines += [
        f"**Latency at {big['contracts']:,} contracts against 100** (same run, same",
        f"interleaved rounds, same mix of contract states in the click sets): `{large}` /",
        "`postgresql-100`.",
        "",
        "| scenario | concurrency | completion p50 | completion p95 | completion p99 | "
        "ack p50 | ack p95 | ack p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios: dict[tuple[str, int], dict[str, float]] = {}
    for scenario, concurrency, measure, ratio in scale_ratios(part):
        ratios.setdefault((scenario, concurrency), {})[measure] = ratio
    for (scenario, concurrency), got in ratios.items():
        cells = [
            f"{got.get(f'{m} {p}', float('nan')):.2f}×"
            for m in ("completion", "ack")
            for p in ("p50", "p95", "p99")
        ]
        lines.append(f"| {scenario} | {concurrency} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The target (≤ 1.3×) is judged on the median completion time; the tails are shown",
        "beside it and move with the machine's noise.",
        "",
    ]
    if "scale.png" in images:
        lines += [f"![Scale ratios]({images['scale.png']})", ""]
    lines += [
        "**Query plans.** Every statement status, Accept (its request receipt and the",
        "clicker's answer in the service's transaction, then the delivery of its answer,",
        "cards and Home) and one scheduler sweep (automatic releases, reminders, outbox",
        f"retries, receipt housekeeping) sent to `{large}` was captured and planned again with",
        "`EXPLAIN` — sequential scans allowed, so this is the planner's own choice on",
        f"{big['contracts']:,} contracts. A sequential scan counts as a miss unless its table",
        "is small (under 10,000 rows), where it is the cheaper plan. The same check runs in",
        "the test suite with sequential scans disabled (`tests/test_query_plans.py`).",
        "",
        "<details><summary>Every statement and its scans</summary>",
        "",
        "| path | statement | scans |",
        "|---|---|---|",
    ]
    for plan in part["plans"]:
        scans = "; ".join(plan["scans"]) or "(no table scan)"
        flag = " ❌ " + "; ".join(plan["problems"]) if plan["problems"] else ""
        if plan.get("notes"):
            flag += " (" + "; ".join(plan["notes"]) + ")"
        statement = plan["statement"].replace("|", "\\|")
        lines.append(f"| {plan['path']} | `{statement}` | {scans}{flag} |")
    lines += [
        "",
        "</details>",
        "",
        "Two indexes were missing and are added by migration `0002` (and `domain/model.py`):",
        "`ix_ledger_entry_milestone_id` — what is held for a milestone, asked by every",
        "release, refund and top-up (so for every automatic release the sweep makes), was a",
        "sequential scan of the whole ledger — and `ix_request_receipt_at`, for the sweep's",
        "housekeeping that forgets request receipts older than the replay window.",
        "",
    ]
    return lines


def _memory_section(part: dict[str, Any], images: dict[str, str]) -> list[str]:
    lines = [
        "## 4. Memory",
        "",
        "Memory of each server's whole process tree — gunicorn's master and its ASGI",
        "workers, for `serve` and the bare app alike — read with psutil through the",
        "warm-up, every latency round (the large database's server's rounds are the scale",
        "run) and the EXPLAIN step: RSS every 100 ms, PSS (from smaps) every second. PSS",
        "splits each shared page among the processes that map it (the modules the master",
        "imported before the fork are shared by the workers), so the tree's PSS is what the",
        "tree occupies; summed RSS counts a shared page once in every process that maps it.",
        "",
        "| server | workers | peak PSS, tree | peak RSS, summed over the tree | "
        "peak RSS, largest process |",
        "|---|---|---|---|---|",
    ]
    for name, memory in part["memory"].items():
        pss = memory.get("peak_pss_mb")
        lines.append(
            f"| {name} | {memory.get('workers', '–')} | {f'{pss:.0f} MB' if pss else '–'} | "
            f"{memory['peak_tree_mb']:.0f} MB | {memory['peak_largest_mb']:.0f} MB |"
        )
    lines.append("")
    if "memory.png" in images:
        lines += [f"![Peak memory]({images['memory.png']})", ""]
    return lines


def _throughput_section(part: dict[str, Any], images: dict[str, str]) -> list[str]:
    first = part["results"][0]["processes"]
    lines = [
        "## 3. Automatic-release throughput",
        "",
        f"{part['count']:,} contracts whose submitted work is past its review period are",
        "seeded (COPY, as above) into a fresh PostgreSQL database per process count and",
        "swept to completion by separate processes, each looping",
        "`scheduler.jobs.sweep_auto_releases` — the sweep each of serve's workers runs —",
        "until nothing is due. A batch is one transaction through `services.release_due`:",
        "up to 50 contracts claimed `FOR UPDATE OF contract SKIP LOCKED` (processes sweeping",
        "at once take different ones), each re-checked under its lock and released — the",
        "release ledger entry, the milestone, a history event, reminders cancelled and",
        "scheduled, outbox intents (announcement, work card, contract card, both parties'",
        "Home) — and the batch's rows written together. These are **committed** releases:",
        "the sweepers deliver nothing (Slack is measured below). The yardstick is",
        f"`pgbench --builtin=simple-update` (scale {part['pgbench_scale']}, a scratch",
        "database on the same server) with as many clients as sweeping processes, run before",
        "and after the sweeps; the ratio is against their mean.",
        "",
        f"| processes | released | seconds | releases/s | × {first} process | "
        "pgbench tps (before, after) | ratio | written |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in part["results"]:
        sweep, w = row["sweep"], row["sweep"]["written"]
        written = (
            f"{w['release_entries']:,} release entries ({w['released_twice']} twice), "
            f"{w['release_events']:,} events, {w['announced']:,} announced, "
            f"{w['outbox_intents']:,} intents, {w['still_submitted']} still submitted, "
            f"ledger verify {'OK' if w['ledger_verify_ok'] else 'FAILED'}"
        )
        scaling = row.get("scaling")
        lines.append(
            f"| {row['processes']} | {sweep['released']:,} | {sweep['seconds']:.1f} | "
            f"{sweep['per_second']:,.0f} | {f'{scaling:.2f}×' if scaling else '–'} | "
            f"{row['pgbench_tps']:,.0f} "
            f"({row['pgbench_before']['tps']:,.0f}, {row['pgbench_after']['tps']:,.0f}) | "
            f"{row['ratio']:.2f} | {written} |"
        )
    lines.append("")
    delivery = part.get("delivery")
    if delivery:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(delivery["delivered_by_kind"].items()))
        failed = delivery["slack"]["failed"]
        lines += [
            "**Delivery to Slack**, measured separately: after the sweeps, one process ran",
            "the outbox pass each worker's scheduler runs (`Delivery.sweep`: claim the oldest",
            "due intents 50 at a time, render them from the database, send them with the",
            "bot's Web API client, mark them sent; App Homes published in the pass) on what",
            f"the {first}-process sweep had queued, against the Slack emulator in its own",
            f"process, for at most {delivery['budget_seconds']:.0f} s. It delivered "
            f"{delivery['delivered']:,} of {delivery['queued']:,} intents in "
            f"{delivery['seconds']:.1f} s ({kinds}): **{delivery['per_second']:,.0f} intents/s,"
            f" about {delivery['releases_per_second']:,.0f} releases/s**, "
            + (
                "and the queue was empty."
                if delivery["emptied"]
                else f"so the whole queue would take about "
                f"{_duration(delivery['projected_seconds'])} at that rate (projected, not run "
                "to the end)."
            )
            + f" CPU: {delivery['cpu_ms_per_intent']} ms per intent in the delivering process,"
            f" {delivery['emulator_cpu_ms_per_intent']} ms in the emulator. The emulator"
            f" answered {delivery['slack']['calls']:,} calls; refused: "
            + (", ".join(f"{k} ×{v}" for k, v in failed.items()) or "none")
            + " (the seeded cards were never posted to this emulator, so each card's update is"
            " refused and the card posted again: one call more per card than on a workspace).",
            "",
            "In `serve`, a worker's sweep delivers each batch right after committing it, in the",
            "same thread, so that worker's releases follow at the delivery's pace; the",
            "committed figure above is what the database side can do.",
            "",
        ]
    else:
        lines += ["Delivery to Slack of what the releases queued is not measured here.", ""]
    if "throughput.png" in images:
        lines += [f"![Throughput]({images['throughput.png']})", ""]
    return lines
