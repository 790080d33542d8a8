"""`milestone-bot`: serve, worker, db upgrade, export, manifest."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from bot.app import Runtime


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return int(args.run(settings, args) or 0)
    except SettingsError as error:
        print(f"milestone-bot: {error.message}", file=sys.stderr)
        return 2


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
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run the scheduler only (no HTTP)")
    worker.set_defaults(run=_worker)

    db = commands.add_parser("db", help="database maintenance")
    db.set_defaults(run=lambda settings, args: _usage(db))
    db_commands = db.add_subparsers(title="db commands")
    upgrade = db_commands.add_parser("upgrade", help="bring the schema up to date")
    upgrade.set_defaults(run=_db_upgrade)

    export = commands.add_parser("export", help="print contracts as JSON")
    export.add_argument("--contract", type=int, help="only this contract id")
    export.set_defaults(run=_export)

    ledger = commands.add_parser("ledger", help="escrow ledger checks")
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

    manifest = commands.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--request-url", help="HTTP mode: https://HOST/slack/events")
    manifest.set_defaults(run=_manifest)

    sandbox = commands.add_parser("sandbox", help="try the bot in a browser: no Slack, no tokens")
    sandbox.add_argument("--port", type=int, default=3001, help="the page's port (0: any)")
    sandbox.add_argument("--db", metavar="PATH", help="keep data in this SQLite file")
    sandbox.add_argument("--demo", action="store_true", help="start with a contract in progress")
    sandbox.add_argument("--no-browser", action="store_true", help="only print the address")
    sandbox.set_defaults(run=_sandbox)
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
    if args.socket_mode:
        return _serve_socket_mode(settings, args)
    credentials = settings.require_http()
    _migrate(settings)  # once, before the workers fork

    # Imported here, in gunicorn's master, so the workers share these modules' memory.
    from bot.app import Bot, start_bot
    from bot.server import AsgiFront, limit_malloc_arenas, seconds_left, serve

    def start() -> Bot:  # in each worker, after the fork
        return start_bot(
            settings,
            bot_token=credentials.bot_token,
            signing_secret=credentials.signing_secret,
            scheduler=not args.no_scheduler,
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
    from bot.app import start_bot

    bot = start_bot(settings, bot_token=_bot_token(settings), signing_secret="", migrate=True)
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
    from domain.db import current_revision

    runtime = _runtime(settings)
    print(f"database schema is at revision {current_revision(runtime.engine)}", file=sys.stderr)
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from domain.errors import DomainError
    from domain.export import export_contracts

    runtime = _runtime(settings)
    with runtime.sessions() as session, session.begin():
        try:
            data = export_contracts(session, args.contract)
        except DomainError as error:
            print(f"milestone-bot: {error.message}", file=sys.stderr)
            return 1
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _ledger_verify(settings: Settings, args: argparse.Namespace) -> int:
    from domain.verify import check

    runtime = _runtime(settings)
    with runtime.sessions() as session, session.begin():
        result = check(session)
    for discrepancy in result.discrepancies:
        print(discrepancy)
    if not result.ok:
        print(f"ledger differs: {len(result.discrepancies)} problem(s)", file=sys.stderr)
        return 1
    print(f"ledger OK: {result.contracts} contracts, {result.entries} entries")
    return 0


def _outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    from domain import outbox

    runtime = _runtime(settings)
    with runtime.sessions() as session:
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

    runtime = _runtime(settings)
    with runtime.sessions() as session:
        count = outbox.retry_now(session, now=runtime.clock())
    print(f"{count} message(s) queued for delivery; a running serve or worker sends them")
    return 0


def _manifest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.manifest import ManifestError, build_manifest, render_manifest_yaml

    try:
        manifest = build_manifest(request_url=args.request_url)
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
