"""`milestone-bot`: serve, worker, db upgrade, export, manifest."""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.settings import Settings, SettingsError, load_settings
from bot.ticker import start_ticker

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
    serve.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    serve.add_argument("--threads", type=int, default=16, help="threads per worker")
    serve.add_argument(
        "--work-processes",
        type=int,
        choices=(0, 1),
        default=1,
        help="1 (default): each HTTP worker acks and hands the work to a work process of "
        "its own, which also runs the scheduler; 0: the work runs in the worker's threads",
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

    from bot.server import WsgiApp

    def load_app() -> WsgiApp:
        from bot.app import create_app
        from bot.server import wsgi_app

        worker_runtime = _runtime(settings, migrate=False)
        work = None
        if args.work_processes:
            from bot.work import WorkProcess, WorkSpec

            spec = WorkSpec(settings, credentials.bot_token, scheduler=not args.no_scheduler)
            work = WorkProcess(spec).start()
            atexit.register(work.stop)
        app, delivery = create_app(
            worker_runtime,
            bot_token=credentials.bot_token,
            signing_secret=credentials.signing_secret,
            work=work,
        )
        if work is None:
            atexit.register(delivery.close)
            if not args.no_scheduler:
                start_ticker(worker_runtime, delivery)
        return wsgi_app(app, worker_runtime.database_ok)

    from bot.server import limit_malloc_arenas, serve

    limit_malloc_arenas()
    print(
        f"milestone-bot listening on http://{args.host}:{args.port}/slack/events", file=sys.stderr
    )
    serve(
        load_app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        log_level=settings.LOG_LEVEL.lower(),
    )
    return 0


def _serve_socket_mode(settings: Settings, args: argparse.Namespace) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import create_app

    credentials = settings.require_socket_mode()
    runtime = _runtime(settings)
    app, delivery = create_app(
        runtime, bot_token=credentials.bot_token, signing_secret=None, socket_mode=True
    )
    if not args.no_scheduler:
        start_ticker(runtime, delivery)
    SocketModeHandler(app, credentials.app_token).start()  # type: ignore[no-untyped-call]
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import make_web_client
    from bot.delivery import Delivery

    credentials = settings.require_http() if settings.SLACK_SIGNING_SECRET else None
    token = credentials.bot_token if credentials else _bot_token(settings)
    runtime = _runtime(settings)
    delivery = Delivery(
        runtime.sessions, make_web_client(token, settings.SLACK_API_URL), runtime.clock
    )
    scheduler = start_ticker(runtime, delivery)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("milestone-bot worker running (Ctrl-C to stop)", file=sys.stderr)
    stop.wait()
    scheduler.shutdown(wait=True)
    return 0


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
    for item in items:
        subject = item.user_id or item.subject_id
        print(
            f"{item.id}\t{item.state}\t{item.kind}\tcontract {item.contract_id}\t{subject}\t"
            f"attempts {item.attempts}\tnext {item.next_attempt_at.isoformat()}\t"
            f"{item.last_error or ''}"
        )
    dead = sum(item.state == outbox.DEAD for item in items)
    print(f"{len(items) - dead} pending, {dead} dead-lettered", file=sys.stderr)
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
    from bot.sandbox import run_sandbox

    return run_sandbox(
        settings, port=args.port, database=args.db, demo=args.demo, browser=not args.no_browser
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
