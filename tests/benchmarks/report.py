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

ACK_P99_TARGET = 150.0
COMPLETION_P99_TARGET = 500.0
BARE_RATIO_TARGET = 2.0
SCALE_RATIO_TARGET = 1.3
MEMORY_TARGET_MB = 200.0
SCENARIO_TITLES = {"status": "`/milestone status`", "accept": "Accept click"}
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


def checks(results: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    part = results.get("latency")
    if part:
        latency, large = part["latency"], part["large_name"]
        for target in ("postgresql-100", large):
            for scenario in ("status", "accept"):
                cell = _cell(latency, scenario, 20, target)
                ack, done = cell["ack"]["p99_ms"], cell["completion"]["p99_ms"]
                name = SCENARIO_TITLES[scenario]
                out.append(
                    Check(
                        f"{name} ack p99, concurrency 20, {target}",
                        _fmt(ack),
                        f"< {ACK_P99_TARGET:.0f} ms",
                        ack is not None and ack < ACK_P99_TARGET and not cell["ack"]["errors"],
                    )
                )
                out.append(
                    Check(
                        f"{name} completion p99, concurrency 20, {target}",
                        _fmt(done),
                        f"< {COMPLETION_P99_TARGET:.0f} ms",
                        done is not None
                        and done < COMPLETION_P99_TARGET
                        and not cell["completion"]["errors"],
                    )
                )
        for target in ("postgresql-100", "sqlite-100"):
            for concurrency in (1, 20):
                for scenario in ("status", "accept"):
                    mine = _cell(latency, scenario, concurrency, target)["ack"]["p50_ms"]
                    bare = _cell(latency, scenario, concurrency, "bare")["ack"]["p50_ms"]
                    ratio = mine / bare if mine and bare else None
                    out.append(
                        Check(
                            f"{SCENARIO_TITLES[scenario]} ack p50 vs the bare bolt app, "
                            f"concurrency {concurrency}, {target}",
                            f"{_fmt(mine)} vs {_fmt(bare)} = {ratio:.2f}×" if ratio else "–",
                            f"≤ {BARE_RATIO_TARGET:.0f}×",
                            ratio is not None and ratio <= BARE_RATIO_TARGET,
                        )
                    )
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
            if name == "bare":
                continue
            pss = memory.get("peak_pss_mb")
            if pss:
                out.append(
                    Check(
                        f"peak memory of `serve` ({name}), whole process tree, PSS "
                        "(each shared page counted once)",
                        f"{pss:.0f} MB",
                        f"< {MEMORY_TARGET_MB:.0f} MB",
                        pss < MEMORY_TARGET_MB,
                    )
                )
            out.append(
                Check(
                    f"peak RSS of `serve` ({name}), summed over the process tree "
                    "(shared pages counted in every process)",
                    f"{memory['peak_tree_mb']:.0f} MB",
                    f"< {MEMORY_TARGET_MB:.0f} MB" if not pss else "reported",
                    memory["peak_tree_mb"] < MEMORY_TARGET_MB if not pss else None,
                )
            )
            out.append(
                Check(
                    f"peak RSS of `serve` ({name}), its largest process",
                    f"{memory['peak_largest_mb']:.0f} MB",
                    "reported",
                    None,
                )
            )
    part = results.get("throughput")
    if part:
        for row in part["results"]:
            out.append(
                Check(
                    f"automatic releases per second, {row['processes']} process(es), "
                    f"vs pgbench simple-update with {row['processes']} client(s)",
                    f"{row['sweep']['per_second']:.0f}/s vs {row['pgbench_tps']:.0f} tps = "
                    f"{row['ratio']:.2f}",
                    "ratio reported"
                    + ("" if row["sweep"]["written"]["complete"] else " (INCOMPLETE)"),
                    None if row["sweep"]["written"]["complete"] else False,
                )
            )
    return out


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
            if concurrency == 20:
                ax.axhline(ACK_P99_TARGET, color="#3182bd", linestyle="--", linewidth=1)
                ax.axhline(COMPLETION_P99_TARGET, color="#e6550d", linestyle="--", linewidth=1)
            ax.set_xticks(range(len(targets)))
            ax.set_xticklabels(targets, fontsize=8)
            ax.set_title(f"{scenario} — concurrency {concurrency}")
            ax.set_ylabel("ms")
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Ack and completion latency (dashed: p99 targets at concurrency 20)")
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
        ax.axvline(COMPLETION_P99_TARGET, color="black", linestyle=":", linewidth=0.8)
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
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{r['processes']} process(es) / client(s)" for r in rows])
    ax.set_ylabel("per second")
    ax.set_title(f"{part['count']:,} automatic releases vs pgbench simple-update")
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
    ax.set_title("Peak resident memory during the latency and scale runs")
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
    for check in checks(results):
        lines.append(
            f"  [{_verdict(check.ok)}] {check.what}: {check.figure} (target {check.target})"
        )
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path) -> Path:
    charts = out / "benchmarks"
    charts.mkdir(parents=True, exist_ok=True)
    (charts / "results.json").write_text(json.dumps(results, indent=1) + "\n")
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
        "## Machine",
        "",
        f"- {m['cores']} cores ({m['physical_cores']} physical), {m['cpu']}, {m['memory_gib']} GiB",
        f"- {m['os']}; Python {m['python']}; SQLite {m['sqlite']}",
        f"- PostgreSQL {m['postgresql']} on the same machine (127.0.0.1): "
        + ", ".join(f"{k} = {v}" for k, v in m["postgresql_settings"].items()),
        "- " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- load average (1, 5, 15 min) at the start {m['load_average_at_start']}, at the end "
        f"{m.get('load_average_at_end')}: other work shared the machine, which is why every "
        "comparison below is measured side by side in one run",
        "",
        "## Figures against targets",
        "",
        "| what | figure | target | |",
        "|---|---|---|---|",
    ]
    for check in checks(results):
        lines.append(f"| {check.what} | {check.figure} | {check.target} | {_verdict(check.ok)} |")
    lines.append("")
    if results.get("latency"):
        lines += _latency_section(results, images)
    if results.get("throughput"):
        lines += _throughput_section(results["throughput"], images)
    if results.get("latency"):
        lines += _memory_section(results["latency"], images)
    lines += [
        "## Changes these benchmarks led to",
        "",
        "- Migration `0002`: indexes `ix_ledger_entry_milestone_id` and `ix_request_receipt_at`",
        "  (found by `tests/test_query_plans.py`).",
        "- App Home renders the snapshots of all its contracts in two queries",
        "  (`domain.snapshot.snapshots`) instead of four per contract; an Accept publishes two",
        "  Homes, so this removed about 55 of its database round trips.",
        "- The outbox claim is one `UPDATE … RETURNING` instead of an update and a select; a",
        "  card's placement is read in the transaction that renders it.",
        "- Outbox bookkeeping (claim, sent, retry) commits on PostgreSQL without waiting for",
        "  the WAL flush (`synchronous_commit = off` for those transactions only): delivery is",
        "  at-least-once, so a claim lost in a server crash means a message sent again. The",
        "  state changes themselves (services, ledger, receipts, card placements) still wait",
        "  for the flush.",
        "- The ack and the work after it run in separate processes (`bot/work.py`): the web",
        "  worker verifies, acks and hands the lazy part to a work process, so an ack never",
        "  waits for the interpreter behind other clicks' work (ack p99 at concurrency 20 fell",
        "  from ~290 ms to under 75 ms).",
        "- Services lock the contract with its parties and write events, reminders and",
        "  intents at the end, a statement per table (an Accept went from 15 statements to 9,",
        "  pinned by `tests/services/test_statements.py`); delivery claims, renders and marks",
        "  a batch of intents with one statement each; App Homes are published half a second",
        "  later from a background thread, one `views.publish` per person for a burst.",
        "- Jobs in the work process take turns (`bot/turns.py`): two at a time, waiting for",
        "  Slack without a turn, a job's first answer to Slack ahead of the later parts of",
        "  the others. Twenty clicks in flight no longer all finish late together (Accept",
        "  completion p99 at concurrency 20 fell from ~970 ms to the figure above).",
        "",
        "## Running it",
        "",
        "```sh",
        "scripts/bench            # everything, this report (about 20 minutes on 2 cores)",
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


def _latency_section(results: dict[str, Any], images: dict[str, str]) -> list[str]:
    part = results["latency"]
    latency, large = part["latency"], part["large_name"]
    sizes = part["sizes"]
    seeding = part["seeding"]
    big = seeding["postgresql-large"]
    lines = [
        "## 1. Ack and completion latency",
        "",
        "Four servers run side by side, each a real process on a loopback port, all",
        "calling one Slack emulator (`bot.emulator`, in a process of its own):",
        "`bare`, a slack-bolt app whose listeners only `ack()`, served by the same",
        "`bot.server.serve` (gunicorn gthread, 1 worker × 16 threads); and",
        f"`{results['serve_command']}` with its defaults (1 gunicorn worker × 16 threads",
        "that verifies, acks and hands the work after the ack to a work process of its own,",
        "which also runs the scheduler; there jobs take turns at the interpreter, each",
        "job's first answer to Slack ahead of the rest — `bot/turns.py`) on a 100-contract",
        "SQLite database, a 100-contract PostgreSQL database and the",
        f"{big['contracts']:,}-contract PostgreSQL database (`{large}`).",
        "",
        "A closed-loop load generator plays Slack: it signs each request (v0 HMAC), POSTs",
        "it on a new connection and stops the **ack** clock when the HTTP response is read;",
        "then it waits until the emulator reports the effect, and only then sends the next",
        "one, so *concurrency* is the number of interactions in flight, work after the ack",
        "included. **Completion** is the time until the emulator received the reply on the",
        "request's `response_url` (status) or the `chat.update` of the change request card",
        "that was clicked (Accept). For Accept, *reply* is when the clicker's confirmation",
        "arrived: after the bot has also updated the contract card and announced the change",
        "in the channel (the parties' App Homes follow half a second later).",
        "The emulator stamps arrivals with the machine's monotonic clock, the load",
        "generator its sends with the same clock.",
        "",
        f"Status asks for a random open contract's status in its channel, as its client "
        f"({sizes['status_per_round']} per round). Accept clicks **Accept** on a pending",
        f"change request card ({sizes['clicks_per_round']} contracts per round, each with",
        "an edit of milestone 5 pending). Before every Accept round the freelancer proposes",
        "a new edit where none is pending (`services.propose_changes`) and the bot's own",
        "outbox delivery posts its card — untimed. Rounds per concurrency: "
        + ", ".join(f"{r} at concurrency {c}" for c, r in sizes["rounds"].items())
        + "; every round runs every server once, in a rotating order. A warm-up round per",
        "server is not counted.",
        "",
    ]
    for scenario in ("status", "accept"):
        for concurrency in (1, 20):
            lines += [
                f"**{SCENARIO_TITLES[scenario]}, concurrency {concurrency}** (ms)",
                "",
                "| server | n | errors | ack p50 | ack p95 | ack p99 | completion p50 | "
                "completion p95 | completion p99 |"
                + (" reply p50 | reply p99 |" if scenario == "accept" else "")
                + " CPU ms each: app · PostgreSQL · Slack |",
                "|---|---|---|---|---|---|---|---|---|---|"
                + ("---|---|" if scenario == "accept" else ""),
            ]
            for target, cell in _ordered(latency[scenario][str(concurrency)]):
                ack, done, reply = cell["ack"], cell["completion"], cell["reply"]
                row = (
                    f"| {target} | {ack['count']} | {ack['errors']} | {_fmt(ack['p50_ms'], '')} | "
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
                        for k in ("app", "postgres", "slack")
                    )
                    + " |"
                )
                lines.append(row)
            lines.append("")
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


def _capacity(part: dict[str, Any]) -> list[str]:
    """Why concurrency 20 costs what it costs: the worker's CPU per interaction."""
    lines = ["**Where the time goes at concurrency 20.**", ""]
    for scenario in ("status", "accept"):
        cell = _cell(part["latency"], scenario, 20, "postgresql-100")
        used = cell.get("cpu_ms_per_interaction", {})
        app = used.get("app")
        if not app:
            continue
        end = cell["reply"]["p50_ms"] or cell["completion"]["p50_ms"]
        work = used.get("work", 0.0)
        lines.append(
            f"{SCENARIO_TITLES[scenario]} costs `serve` {app:.0f} ms of CPU per interaction, "
            f"{work:.0f} ms of it in the work process and {app - work:.0f} ms in the web "
            f"worker and the rest of its tree (PostgreSQL {used.get('postgres', 0):.0f} ms, "
            f"the Slack emulator {used.get('slack', 0):.0f} ms). The work process runs Python "
            f"on one core at a time, so it finishes at most ~{1000 / max(work, 0.1):.0f} per "
            f"second; with 20 in flight each takes at least about 20 × {work:.0f} = "
            f"{20 * work:.0f} ms from request to last effect (Little's law) — measured: "
            f"{_fmt(end)} (median, to the reply). The ack is given by the web worker, which "
            "does not wait behind that work for the interpreter; it shares the machine's two "
            "cores with the work process, PostgreSQL, the emulator and the load generator."
        )
        lines.append("")
    lines += [
        "A closed loop of 20 with no pause between interactions keeps the work process",
        "saturated by construction: the time to an interaction's last effect at concurrency",
        "20 is 20 divided by the interactions per second the machine can finish. Within",
        "that, the work process decides the order (`bot/turns.py`): at most two jobs run",
        "Python at a time, a job waits for Slack without its turn, and a job's first answer",
        "to Slack — the card that was clicked, the reply to a command — goes ahead of the",
        "later parts of the jobs in flight. So an Accept's completion (its card) comes well",
        "inside that bound, and its reply, which follows the contract card and the channel",
        "announcement, carries it. The work done per second is the same either way.",
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
        "**Query plans.** Every statement status, Accept (with the delivery of its cards and",
        "Home) and one scheduler sweep (automatic releases, reminders, outbox retries,",
        f"receipt housekeeping) sent to `{large}` was captured and planned again with",
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
        "Memory of each server's process tree — for `serve`: the gunicorn master, its",
        "web worker and the work process the worker hands its work to — read with psutil",
        "through the warm-up, every latency round (the",
        "large database's server's rounds are the scale run) and the EXPLAIN step: RSS every",
        "100 ms, PSS (from smaps) every second. PSS splits each shared page among the",
        "processes that map it, so the tree's PSS is what the tree occupies; summed RSS",
        "counts a shared page (the interpreter, libraries, pages shared after a fork) once",
        "in every process that maps it.",
        "",
        "| server | peak PSS, tree | peak RSS, summed over the tree | peak RSS, largest process |",
        "|---|---|---|---|",
    ]
    for name, memory in part["memory"].items():
        pss = memory.get("peak_pss_mb")
        lines.append(
            f"| {name} | {f'{pss:.0f} MB' if pss else '–'} | {memory['peak_tree_mb']:.0f} MB "
            f"| {memory['peak_largest_mb']:.0f} MB |"
        )
    lines.append("")
    if "memory.png" in images:
        lines += [f"![Peak RSS]({images['memory.png']})", ""]
    return lines


def _throughput_section(part: dict[str, Any], images: dict[str, str]) -> list[str]:
    lines = [
        "## 3. Automatic-release throughput",
        "",
        f"{part['count']:,} contracts whose submitted work is past its review period are",
        "seeded (COPY, as above) into a fresh database per process count and swept to",
        "completion by separate processes, each looping `scheduler.jobs.sweep_auto_releases`",
        "— the bot's own sweep — until nothing is due. Each release is one transaction",
        "through `services.auto_release`: the contract's row lock, the release ledger",
        "entry, the milestone, a history event, reminders cancelled and scheduled, and",
        "outbox intents (announcement, work card, contract card, both parties' Home)",
        "written — not sent: Slack is not part of this figure. The yardstick is",
        f"`pgbench --builtin=simple-update` (scale {part['pgbench_scale']}, a scratch",
        "database on the same server) with as many clients as sweeping processes, run before",
        "and after the sweeps; the ratio is against their mean.",
        "",
        "| processes | released | seconds | releases/s | pgbench tps (before, after) | ratio | "
        "written |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in part["results"]:
        sweep, w = row["sweep"], row["sweep"]["written"]
        written = (
            f"{w['release_entries']:,} release entries ({w['released_twice']} twice), "
            f"{w['release_events']:,} events, {w['announced']:,} announced, "
            f"{w['outbox_intents']:,} intents, {w['still_submitted']} still submitted, "
            f"ledger verify {'OK' if w['ledger_verify_ok'] else 'FAILED'}"
        )
        lines.append(
            f"| {row['processes']} | {sweep['released']:,} | {sweep['seconds']:.1f} | "
            f"{sweep['per_second']:.0f} | {row['pgbench_tps']:.0f} "
            f"({row['pgbench_before']['tps']:.0f}, {row['pgbench_after']['tps']:.0f}) | "
            f"{row['ratio']:.2f} | {written} |"
        )
    lines.append("")
    if "throughput.png" in images:
        lines += [f"![Throughput]({images['throughput.png']})", ""]
    return lines
