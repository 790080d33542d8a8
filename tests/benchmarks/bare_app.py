"""The baseline: a slack-bolt app that only acks, served exactly as `milestone-bot serve`.

Same bolt version, same `App` settings (a WebClient on the same Slack, request
verification, bolt's listeners on the bot's `ListenerPool` of the same size), the same
front end (`bot.server.AsgiFront` and the `SlackFront` inside it, which parses Slack's
form bodies with `SlackRequest`), the same `bot.server.serve` (gunicorn with its ASGI
workers, the same options, the app built in each worker at lifespan startup) and the
same worker count as serve's default — but the listeners do nothing except `ack()`.
What the real app's ack costs on top of this is its own work: for a click, the
service and its commit (an ack now means the change is in the database); for a
command, parsing it and finding the contract.

    python -m tests.benchmarks.bare_app --port 3100 --workers 2
    (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL from the environment)
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import App

from bot.app import ListenerPool, make_web_client
from bot.server import AsgiFront, limit_malloc_arenas, serve

SHUTDOWN_SECONDS = 5.0


class _AlwaysHealthy:
    """What `AsgiFront` asks `/healthz` (the bot asks its database; there is none here)."""

    def database_ok(self) -> bool:
        return True


@dataclass
class BareBot:
    """The parts of `bot.app.Bot` that `AsgiFront` uses: the bolt app and a runtime that
    answers the health check."""

    app: App
    listeners: ListenerPool
    runtime: _AlwaysHealthy
    payments_front: None = None  # no payments routes


def build() -> BareBot:
    """In each worker, after the fork (as `bot.app.start_bot` is)."""
    listeners = ListenerPool()
    app = App(
        client=make_web_client(os.environ["SLACK_BOT_TOKEN"], os.environ.get("SLACK_API_URL")),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        listener_executor=listeners,
    )

    @app.command(re.compile(".*"))
    def command(ack: Any) -> None:
        ack()

    @app.action(re.compile(".*"))
    def action(ack: Any) -> None:
        ack()

    return BareBot(app, listeners, _AlwaysHealthy())


def stop(bot: BareBot) -> None:
    bot.listeners.wait_idle(SHUTDOWN_SECONDS / 2)
    bot.listeners.shutdown(wait=False, cancel_futures=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2, help="serve's default is 2")
    args = parser.parse_args()
    limit_malloc_arenas()  # as `milestone-bot serve` does, before any thread and the fork
    serve(
        AsgiFront(build, stop),
        host=args.host,
        port=args.port,
        workers=args.workers,
        shutdown_seconds=SHUTDOWN_SECONDS,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
