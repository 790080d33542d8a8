"""`milestone-bot webhooks add URL --secret S | list | remove ID | log | retry`.

The operator's side of signed outgoing webhooks (docs/webhooks.md). Answers go to
stdout, diagnostics to stderr, like every other subcommand; a secret is never printed
back in full (only its last four characters).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.app import Runtime


@dataclass(frozen=True)
class Cli:
    """What the commands use of bot.cli (handed in: bot.cli imports this module)."""

    database: Callable[..., AbstractContextManager[Runtime]]  # bot.cli._existing_database
    refusal: Callable[..., Exception]  # bot.cli.Refusal(message, code=…)


def register(commands: Any, cli: Cli) -> None:
    """Add `webhooks` and its commands to the CLI's subparsers."""
    hooks = commands.add_parser(
        "webhooks", help="signed outgoing webhooks: add, list, remove endpoints; the log"
    )
    hooks.set_defaults(run=partial(_list, cli))
    sub = hooks.add_subparsers(title="webhooks commands")
    add = sub.add_parser("add", help="deliver every event from now on to URL")
    add.add_argument("url", metavar="URL")
    add.add_argument(
        "--secret",
        required=True,
        metavar="S",
        help="the HMAC-SHA256 key of the Milestone-Signature header ('-': read it from stdin)",
    )
    add.set_defaults(run=partial(_add, cli))
    sub.add_parser("list", help="the endpoints (the default)").set_defaults(run=partial(_list, cli))
    remove = sub.add_parser("remove", help="stop delivering to an endpoint")
    remove.add_argument("endpoint_id", type=int, metavar="ID")
    remove.set_defaults(run=partial(_remove, cli))
    log = sub.add_parser("log", help="the latest deliveries: state, attempts, last error")
    log.add_argument("--endpoint", type=int, metavar="ID", help="only this endpoint's")
    log.add_argument("--limit", type=int, default=100, help="how many (default 100)")
    log.set_defaults(run=partial(_log, cli))
    sub.add_parser(
        "retry", help="send dead-lettered deliveries again (a running serve or worker sends)"
    ).set_defaults(run=partial(_retry, cli))


def _add(cli: Cli, settings: Settings, args: argparse.Namespace) -> int:
    from domain import webhooks
    from domain.errors import DomainError

    secret = sys.stdin.readline().strip() if args.secret == "-" else args.secret
    try:
        webhooks.check_url(args.url)
    except DomainError as error:
        raise cli.refusal(error.message) from None
    if 0 < len(secret) < 16:
        print(
            "milestone-bot: a secret this short is easy to guess; 32 random characters "
            "or more are better (e.g. `openssl rand -hex 32`)",
            file=sys.stderr,
        )
    with (
        cli.database(settings, command="webhooks add", verb="updating") as runtime,
        runtime.sessions() as session,
    ):
        try:
            endpoint = webhooks.add_endpoint(
                session, url=args.url, secret=secret, now=runtime.clock()
            )
        except DomainError as error:
            raise cli.refusal(error.message) from None
    print(
        f"webhook endpoint {endpoint.id} added: {endpoint.url} (secret {endpoint.secret_hint}); "
        "it receives every event from now on"
    )
    return 0


def _list(cli: Cli, settings: Settings, args: argparse.Namespace) -> int:
    from domain import webhooks

    with (
        cli.database(settings, command="webhooks list", verb="reading") as runtime,
        runtime.sessions() as session,
    ):
        found = webhooks.endpoints(session)
    for endpoint in found:
        print(
            f"{endpoint.id}\t{endpoint.url}\tsecret {endpoint.secret_hint}\t"
            f"added {webhooks.instant(endpoint.created_at)}\t"
            f"{endpoint.pending} pending, {endpoint.sent} sent, {endpoint.dead} dead"
        )
    print(f"{len(found)} webhook endpoint{'' if len(found) == 1 else 's'}")
    return 0


def _remove(cli: Cli, settings: Settings, args: argparse.Namespace) -> int:
    from domain import webhooks
    from domain.errors import NotFound

    with (
        cli.database(settings, command="webhooks remove", verb="updating") as runtime,
        runtime.sessions() as session,
    ):
        try:
            cancelled = webhooks.remove_endpoint(session, args.endpoint_id, now=runtime.clock())
        except NotFound as error:
            raise cli.refusal(error.message, code=1) from None
    waiting = f"; {cancelled} waiting deliveries cancelled" if cancelled else ""
    print(f"webhook endpoint {args.endpoint_id} removed{waiting}")
    return 0


def _log(cli: Cli, settings: Settings, args: argparse.Namespace) -> int:
    from collections import Counter

    from domain import webhooks

    with (
        cli.database(settings, command="webhooks log", verb="reading") as runtime,
        runtime.sessions() as session,
    ):
        lines = webhooks.log(session, limit=max(1, args.limit), endpoint_id=args.endpoint)
    for line in lines:
        when = (
            f"sent {webhooks.instant(line.sent_at)}"
            if line.sent_at is not None
            else f"next {webhooks.instant(line.next_attempt_at)}"
            if line.state == "pending"
            else ""
        )
        status = f"HTTP {line.last_status}" if line.last_status is not None else ""
        print(
            f"{line.id}\tendpoint {line.endpoint_id}\tevt_{line.event_id}\t{line.type}\t"
            f"contract {line.contract_id}\t{line.state}\tattempts {line.attempts}\t"
            f"{status}\t{when}\t{line.last_error or ''}"
        )
    counts = Counter(line.state for line in lines)
    print(
        f"{counts['sent']} sent, {counts['pending']} pending, {counts['dead']} dead, "
        f"{counts['cancelled']} cancelled (latest {len(lines)})"
    )
    return 0


def _retry(cli: Cli, settings: Settings, args: argparse.Namespace) -> int:
    from domain import webhooks

    with (
        cli.database(settings, command="webhooks retry", verb="updating") as runtime,
        runtime.sessions() as session,
    ):
        count = webhooks.retry_dead(session, now=runtime.clock())
    print(f"{count} dead-lettered deliveries queued again; a running serve or worker sends them")
    return 0
