"""The baseline: a slack-bolt app that only acks, behind the same gunicorn server.

Same bolt version, same `App` settings (a WebClient on the same Slack, request
verification, a 32-thread listener pool), same `bot.server.serve` (gthread workers,
same options) and the same WSGI adapter as `milestone-bot serve` — but the listeners
do nothing except `ack()`. What the real app's ack costs on top of this is its own
work: the replay check (one insert) and parsing the command.

    python -m tests.benchmarks.bare_app --port 3100
    (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL from the environment)
"""

from __future__ import annotations

import argparse
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App

from bot.app import LISTENER_THREADS, make_web_client
from bot.server import WsgiApp, serve, wsgi_app


def build() -> App:
    app = App(
        client=make_web_client(os.environ["SLACK_BOT_TOKEN"], os.environ.get("SLACK_API_URL")),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="listener"
        ),
    )

    @app.command(re.compile(".*"))
    def command(ack: Any) -> None:
        ack()

    @app.action(re.compile(".*"))
    def action(ack: Any) -> None:
        ack()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    def load_app() -> WsgiApp:
        return wsgi_app(build(), lambda: True)

    serve(
        load_app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
