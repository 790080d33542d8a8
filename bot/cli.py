"""`milestone-bot`: serve, worker, sandbox, db upgrade, export, ledger verify, outbox,
webhooks, manifest.

Every command prints its answer on stdout and its diagnostics on stderr. The one-shot
commands log warnings only unless `LOG_LEVEL` is set (their answer is what the operator
asked for, not the libraries' INFO lines); `serve`, `worker` and `sandbox` log at
`LOG_LEVEL` (INFO by default). The commands that read the bot's data never create an
empty database in place of a missing one.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from bot.app import Runtime


class Refusal(Exception):
    """A command that cannot do what was asked: `message` is printed, nothing changed."""

    def __init__(self, message: str, *, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
        _configure_logging(settings, long_running=getattr(args, "long_running", False))
        return int(args.run(settings, args) or 0)
    except SettingsError as error:
        print(f"milestone-bot: {error.message}", file=sys.stderr)
        return 2
    except Refusal as refusal:
        print(f"milestone-bot: {refusal.message}", file=sys.stderr)
        return refusal.code


def _configure_logging(settings: Settings, *, long_running: bool) -> None:
    """Log records go to stderr: at `LOG_LEVEL` for the long-running commands, and for a
    one-shot command only when `LOG_LEVEL` is set; otherwise warnings only (alembic says
    ten INFO lines on every command that opens the database)."""
    asked = "LOG_LEVEL" in settings.model_fields_set
    logging.basicConfig(
        level=settings.log_level if long_running or asked else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milestone-bot",
        description="Milestone contracts with escrow, negotiated and run in Slack.",
    )
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the bot (HTTP mode, or --socket-mode)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument(
        "--workers",
        type=int,
        default=2,
        help="HTTP worker processes (each also runs the scheduler); default 2",
    )
    serve.add_argument("--socket-mode", action="store_true", help="connect over Socket Mode")
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="web only: no automatic release, reminders or outbox retries",
    )
    serve.set_defaults(run=_serve, long_running=True)

    worker = commands.add_parser("worker", help="run the scheduler only (no HTTP)")
    worker.set_defaults(run=_worker, long_running=True)

    db = commands.add_parser("db", help="database maintenance")
    db.set_defaults(run=lambda settings, args: _usage(db))
    db_commands = db.add_subparsers(title="db commands")
    upgrade = db_commands.add_parser("upgrade", help="bring the schema up to date")
    upgrade.set_defaults(run=_db_upgrade)

    export = commands.add_parser("export", help="print contracts as JSON (or CSV)")
    export.add_argument("--contract", type=int, help="only this contract id")
    export.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="json (default): every contract as interface.md says; "
        "csv: the ledger and the milestones, for a spreadsheet (README)",
    )
    export.set_defaults(run=_export)

    ledger = commands.add_parser("ledger", help="escrow ledger checks")
    ledger.set_defaults(run=lambda settings, args: _usage(ledger))
    verify = ledger.add_subparsers(title="ledger commands").add_parser(
        "verify", help="recompute every contract's escrow from the ledger; exit 1 on a difference"
    )
    verify.set_defaults(run=_ledger_verify)

    outbox = commands.add_parser("outbox", help="messages waiting for Slack (pending, dead)")
    outbox.set_defaults(run=_outbox_list)
    outbox_commands = outbox.add_subparsers(title="outbox commands")
    outbox_commands.add_parser("list", help="list them (the default)").set_defaults(
        run=_outbox_list
    )
    outbox_commands.add_parser(
        "retry", help="re-queue dead letters and make everything waiting due now"
    ).set_defaults(run=_outbox_retry)

    dispute = commands.add_parser("dispute", help="disputes: list the open ones, decide one")
    dispute.set_defaults(run=lambda settings, args: _usage(dispute))
    dispute_commands = dispute.add_subparsers(title="dispute commands")
    dispute_commands.add_parser("list", help="the open disputes").set_defaults(run=_dispute_list)
    resolve = dispute_commands.add_parser(
        "resolve",
        help="an operator's decision: release an amount to the provider, refund the rest",
    )
    resolve.add_argument("contract_id", type=int, metavar="contract-id")
    resolve.add_argument("milestone_number", type=int, metavar="milestone-number")
    resolve.add_argument(
        "--to-provider",
        required=True,
        metavar="AMOUNT",
        help="what goes to the provider, in the contract's currency (0: all back to the client)",
    )
    resolve.add_argument("--reason", required=True, help="why: recorded in the history")
    resolve.set_defaults(run=_dispute_resolve)

    from bot import payment_commands, webhook_commands

    webhook_commands.register(
        commands, webhook_commands.Cli(database=_existing_database, refusal=Refusal)
    )
    payment_commands.register(
        commands, payment_commands.Cli(database=_existing_database, refusal=Refusal)
    )

    manifest = commands.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--request-url", help="HTTP mode: https://HOST/slack/events")
    manifest.add_argument(
        "--distribution",
        action="store_true",
        help="installable in any workspace: OAuth redirect URL and token rotation on",
    )
    manifest.set_defaults(run=_manifest)

    sandbox = commands.add_parser("sandbox", help="try the bot in a browser: no Slack, no tokens")
    sandbox.add_argument("--port", type=int, default=3001, help="the page's port (0: any)")
    sandbox.add_argument("--db", metavar="PATH", help="keep data in this SQLite file")
    sandbox.add_argument("--demo", action="store_true", help="start with a contract in progress")
    sandbox.add_argument("--no-browser", action="store_true", help="only print the address")
    sandbox.set_defaults(run=_sandbox, long_running=True)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    from bot.app import Runtime

    return Runtime.from_settings(settings, migrate=migrate)


def _migrate(settings: Settings) -> None:
    """Upgrade the schema without loading the app: the gunicorn master stays small."""
    from domain.db import make_engine, upgrade_schema

    engine = make_engine(settings.DATABASE_URL)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_payments()
    if args.socket_mode and settings.distribution:
        raise SettingsError(
            "distribution mode (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, TOKEN_ENCRYPTION_KEY) "
            "runs over HTTP: drop --socket-mode, or unset them for single-workspace Socket Mode"
        )
    if args.socket_mode and settings.PAYMENTS == "stripe":
        raise SettingsError(
            "PAYMENTS=stripe runs over HTTP (Stripe's webhooks and the pay links come to "
            "serve's port): drop --socket-mode, or set PAYMENTS=ledger"
        )
    if args.socket_mode:
        return _serve_socket_mode(settings, args)
    distribution = settings.require_distribution() if settings.distribution else None
    credentials = None if distribution else settings.require_http()
    print(_serving_mode(distribution is not None), file=sys.stderr)
    _migrate(settings)  # once, before the workers fork

    # Imported here, in gunicorn's master, so the workers share these modules' memory.
    from bot.app import Bot, start_bot
    from bot.server import AsgiFront, limit_malloc_arenas, seconds_left, serve

    def start() -> Bot:  # in each worker, after the fork
        return start_bot(
            settings,
            bot_token=credentials.bot_token if credentials else "",
            signing_secret=credentials.signing_secret if credentials else "",
            scheduler=not args.no_scheduler,
            distribution=distribution,
        )

    def stop(bot: Bot) -> None:
        bot.close(timeout=seconds_left(settings.SHUTDOWN_SECONDS))

    limit_malloc_arenas()
    print(
        f"milestone-bot listening on http://{args.host}:{args.port}/slack/events", file=sys.stderr
    )
    serve(
        AsgiFront(start, stop),
        host=args.host,
        port=args.port,
        workers=args.workers,
        shutdown_seconds=settings.SHUTDOWN_SECONDS,
        log_level=settings.LOG_LEVEL.lower(),
    )
    return 0


def _serving_mode(distribution: bool) -> str:
    if distribution:
        return (
            "milestone-bot: distribution mode: any workspace installs it at /slack/install, "
            "each served with its own token"
        )
    return "milestone-bot: single-workspace mode: one workspace, SLACK_BOT_TOKEN"


def _serve_socket_mode(settings: Settings, args: argparse.Namespace) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import start_bot

    credentials = settings.require_socket_mode()
    bot = start_bot(
        settings,
        bot_token=credentials.bot_token,
        signing_secret="",  # Socket Mode requests are not signed
        scheduler=not args.no_scheduler,
        migrate=True,
    )
    handler = SocketModeHandler(bot.app, credentials.app_token)
    handler.connect()  # type: ignore[no-untyped-call]
    print("milestone-bot connected over Socket Mode (Ctrl-C to stop)", file=sys.stderr)
    _wait_for_stop()
    handler.close()  # type: ignore[no-untyped-call]
    bot.close(timeout=max(0.5, settings.SHUTDOWN_SECONDS - 1))
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_payments()
    from bot.app import start_bot

    distribution = settings.require_distribution() if settings.distribution else None
    bot = start_bot(
        settings,
        bot_token="" if distribution else _bot_token(settings),
        signing_secret="",
        migrate=True,
        distribution=distribution,
    )
    print("milestone-bot worker running (Ctrl-C to stop)", file=sys.stderr)
    _wait_for_stop()
    bot.close(timeout=max(0.5, settings.SHUTDOWN_SECONDS - 1))
    return 0


def _wait_for_stop() -> None:
    """Until SIGTERM or SIGINT (a process manager's stop, Ctrl-C)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


def _bot_token(settings: Settings) -> str:
    if settings.SLACK_BOT_TOKEN is None:
        raise SettingsError(
            "Set SLACK_BOT_TOKEN (the Bot User OAuth Token, xoxb-…, from your app's "
            "OAuth & Permissions page at api.slack.com/apps) to run the worker"
        )
    return settings.SLACK_BOT_TOKEN.get_secret_value()


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from domain.db import current_revision, make_engine, upgrade_schema

    shown = _shown(settings.DATABASE_URL)
    print(f"milestone-bot: upgrading {shown}", file=sys.stderr)
    engine = make_engine(settings.DATABASE_URL)
    try:
        upgrade_schema(engine)
        revision = current_revision(engine)
    except DBAPIError as error:
        raise Refusal(f"cannot open {shown}: {_first_line(error.orig or error)}") from None
    except CommandError as error:
        raise Refusal(f"cannot upgrade {shown}: {_first_line(error)}") from None
    finally:
        engine.dispose()
    print(f"database schema is at revision {revision}")
    return 0


def _shown(database_url: str) -> str:
    """The URL as it may be printed: any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


@contextmanager
def _existing_database(settings: Settings, *, command: str, verb: str) -> Iterator[Runtime]:
    """The runtime on the database `DATABASE_URL` names, which must already hold the bot's
    schema (brought up to date if older): a missing SQLite file, an empty database or one
    that can't be opened is a `Refusal`, and nothing is created or changed. Says (on
    stderr) which database it uses."""
    from alembic.util import CommandError
    from sqlalchemy.engine import make_url

    from domain.db import upgrade_schema

    url = make_url(settings.DATABASE_URL)
    shown = _shown(settings.DATABASE_URL)
    path = None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database or "").absolute()
        if url.query.get("uri"):
            path = None  # a `file:` URI: let SQLite read it
        elif not path.is_file():
            raise Refusal(_no_database(settings, path=path, command=command))
    print(f"milestone-bot: {verb} {shown}", file=sys.stderr)
    runtime = _runtime(settings, migrate=False)
    try:
        revision = _schema_revision(runtime, sqlite_file=path, shown=shown)
        if revision is None:
            raise Refusal(
                f"{shown} holds no milestone-bot data (it has no schema), so {command} has "
                "nothing to read; check DATABASE_URL (`milestone-bot db upgrade` would create "
                "an empty schema there)"
            )
        try:
            upgrade_schema(runtime.engine)  # an older schema, as `serve` would at start-up
        except CommandError as error:
            raise Refusal(f"cannot use {shown}: {_first_line(error)}") from None
        yield runtime
    finally:
        runtime.engine.dispose()


def _schema_revision(runtime: Runtime, *, sqlite_file: Path | None, shown: str) -> str | None:
    """The schema's Alembic revision (None: no schema). A SQLite file is only read: the
    bot's own engine would switch any file it opens to WAL."""
    import sqlite3
    from urllib.parse import quote

    from sqlalchemy.exc import DBAPIError

    from domain.db import current_revision

    if sqlite_file is None:
        try:
            return current_revision(runtime.engine)
        except DBAPIError as error:
            raise Refusal(f"cannot open {shown}: {_first_line(error.orig or error)}") from None
    try:
        connection = sqlite3.connect(f"file:{quote(sqlite_file.as_posix())}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:  # unreadable, or not a SQLite file at all
        if "no such table" in str(error):
            return None
        raise Refusal(f"cannot open {shown}: {_first_line(error)}") from None
    return str(rows[0][0]) if rows else None


def _no_database(settings: Settings, *, path: Path, command: str) -> str:
    default = "" if "DATABASE_URL" in settings.model_fields_set else ", the default"
    return "\n".join(
        [
            f"no database at {path} (DATABASE_URL is {_shown(settings.DATABASE_URL)}{default});"
            f" {command} needs an existing one and never creates it.",
            "  Point DATABASE_URL at the bot's database, e.g. "
            f"DATABASE_URL=sqlite:///path/to/milestone-bot.sqlite3 milestone-bot {command}",
            "  The sandbox keeps its data in a throw-away file, deleted when it stops; to keep "
            "it, start it with `milestone-bot sandbox --db sandbox.sqlite3`, then run "
            f"`DATABASE_URL=sqlite:///sandbox.sqlite3 milestone-bot {command}`",
        ]
    )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from domain.errors import DomainError
    from domain.export import export_contracts

    with (
        _existing_database(settings, command="export", verb="reading") as runtime,
        runtime.sessions() as session,
        session.begin(),
    ):
        try:
            data = export_contracts(session, args.contract)
        except DomainError as error:
            raise Refusal(error.message, code=1) from None
    if args.format == "csv":
        from domain.export_csv import write_csv

        write_csv(data, sys.stdout)
        return 0
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _ledger_verify(settings: Settings, args: argparse.Namespace) -> int:
    from domain.verify import check
    from handlers.blocks.format import plural

    with (
        _existing_database(settings, command="ledger verify", verb="reading") as runtime,
        runtime.sessions() as session,
        session.begin(),
    ):
        result = check(session)
    for discrepancy in result.discrepancies:
        print(discrepancy)
    if not result.ok:
        print(f"ledger differs: {plural(len(result.discrepancies), 'problem')}", file=sys.stderr)
        return 1
    contracts = plural(result.contracts, "contract")
    print(f"ledger OK: {contracts}, {plural(result.entries, 'entry', 'entries')}")
    return 0


def _outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    from domain import outbox

    with (
        _existing_database(settings, command="outbox", verb="reading") as runtime,
        runtime.sessions() as session,
    ):
        items = outbox.waiting(session)
        holds = outbox.holds(session)
    for hold in holds:
        print(
            f"hold\t{hold.scope}\t{hold.reason}\tsince {hold.since.isoformat()}\t"
            f"checks {hold.checks}\tnext check {hold.next_check_at.isoformat()}"
        )
    for item in items:
        subject = item.user_id or item.subject_id
        print(
            f"{item.id}\t{item.state}\t{item.kind}\tcontract {item.contract_id}\t{subject}\t"
            f"attempts {item.attempts}\tnext {item.next_attempt_at.isoformat()}\t"
            f"{item.last_error or ''}"
        )
    counts = Counter(item.state for item in items)
    print(f"{counts['pending']} pending, {counts['held']} held, {counts['dead']} dead-lettered")
    return 0


def _outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    from domain import outbox
    from handlers.blocks.format import plural

    with (
        _existing_database(settings, command="outbox retry", verb="updating") as runtime,
        runtime.sessions() as session,
    ):
        count = outbox.retry_now(session, now=runtime.clock())
    print(f"{plural(count, 'message')} queued for delivery; a running serve or worker sends them")
    return 0


def _dispute_list(settings: Settings, args: argparse.Namespace) -> int:
    from domain.disputes import open_disputes
    from domain.money import format_amount

    with (
        _existing_database(settings, command="dispute list", verb="reading") as runtime,
        runtime.sessions() as session,
        session.begin(),
    ):
        found = open_disputes(session)
    for item in found:
        proposal = "no split proposed"
        if item.proposed_by is not None and item.proposed_to_provider_minor is not None:
            to_provider = format_amount(item.proposed_to_provider_minor, item.currency)
            proposal = f"{item.proposed_by} proposes {to_provider} to the provider"
        reason = " ".join(item.reason.split())
        print(
            f"contract {item.contract_id}\tmilestone {item.milestone_number}\t"
            f"{format_amount(item.held_minor, item.currency)} held\t{item.contract_status}\t"
            f"opened by {item.opened_by} {item.opened_at.isoformat()}\t{proposal}\t"
            f"{reason[:200]}"
        )
    print(f"{len(found)} open dispute{'' if len(found) == 1 else 's'}")
    return 0


def _dispute_resolve(settings: Settings, args: argparse.Namespace) -> int:
    """Decide a dispute: the same settlement an agreement makes, recorded with the reason
    (actor: the system); a running `serve` or `worker` posts the cards and the news."""
    from domain import services
    from domain.errors import DomainError
    from handlers.blocks.format import said_plain

    with (
        _existing_database(settings, command="dispute resolve", verb="updating") as runtime,
        runtime.sessions() as session,
    ):
        try:
            outcome = services.resolve_dispute(
                session,
                contract_id=args.contract_id,
                milestone_number=args.milestone_number,
                to_provider=args.to_provider,
                reason=args.reason,
                now=runtime.clock(),
                policy=runtime.policy,
            )
        except DomainError as error:
            raise Refusal(said_plain(error.said), code=1) from None
    print(said_plain(outcome.said))
    return 0


def _manifest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.manifest import ManifestError, build_manifest, render_manifest_yaml

    try:
        manifest = build_manifest(request_url=args.request_url, distribution=args.distribution)
    except ManifestError as error:
        print(f"milestone-bot: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(render_manifest_yaml(manifest))
    return 0


def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from sandbox import run_sandbox

    return run_sandbox(
        settings, port=args.port, database=args.db, demo=args.demo, browser=not args.no_browser
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
