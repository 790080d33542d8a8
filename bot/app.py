"""The single wiring point: settings → engine, sessions, Slack client, bolt `App`.

Nothing is built at import time. `create_app` returns a bolt App whose listeners get
their dependencies from `context["deps"]` (handlers.deps.Deps).
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from sqlalchemy import Engine, delete, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import Delivery, publish_home
from bot.settings import Settings
from bot.turns import Turns
from bot.work import ProcessLazyListenerRunner, WorkProcess
from domain.db import make_engine, make_session_factory, upgrade_schema, write_transaction
from domain.model import RequestReceipt
from domain.policy import Clock, Policy, system_clock
from handlers import actions, commands, home, views
from handlers.deps import Deps
from handlers.errors import report

log = logging.getLogger(__name__)

SLACK_API_DEFAULT = "https://slack.com/api/"
# Bolt runs listeners (and their ack) on this pool; 5 threads by default would let five
# slow Slack calls stall every ack.
LISTENER_THREADS = 32
REPLAY_WINDOW = timedelta(minutes=10)  # bolt rejects requests older than 5 minutes
# App Home publishes after a change wait this long, so a burst costs one per person.
HOME_DELAY = 0.5


def policy_from(settings: Settings) -> Policy:
    return Policy(
        auto_release_period=settings.auto_release_period,
        max_amount_major=settings.MAX_AMOUNT,
        request_reminder_first=settings.request_reminder_first_delay,
        request_reminder_every=settings.request_reminder_interval,
        review_reminders_before=settings.review_reminder_offsets,
        fund_reminder_after=settings.fund_reminder_delay,
        working_hours=(settings.WORKING_HOURS.start, settings.WORKING_HOURS.end),
    )


def make_web_client(token: str, api_url: str | None) -> WebClient:
    return WebClient(
        token=token,
        base_url=api_url or SLACK_API_DEFAULT,
        timeout=10,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2)],
    )


@dataclass
class Runtime:
    """Everything a process needs, built once from settings."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    policy: Policy

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Clock = system_clock, migrate: bool = True
    ) -> Runtime:
        engine = make_engine(settings.DATABASE_URL)
        if migrate:
            upgrade_schema(engine)
        return cls(settings, engine, make_session_factory(engine), clock, policy_from(settings))

    def database_ok(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            log.exception("database health check failed")
            return False


def create_app(
    runtime: Runtime,
    *,
    bot_token: str,
    signing_secret: str | None,
    socket_mode: bool = False,
    listener_executor: Executor | None = None,
    work: WorkProcess | None = None,
    verified: bool = False,
    turns: Turns | None = None,
) -> tuple[App, Delivery]:
    """The bolt app. With `work`, listeners' lazy parts run in that work process (the
    web worker of `serve`); `verified=True` is the work process's own app, whose requests
    come from its web worker, which verified them already; `turns` are that process's
    (bot/turns.py)."""
    client = make_web_client(bot_token, runtime.settings.SLACK_API_URL)
    delivery = Delivery(runtime.sessions, client, runtime.clock, home_delay=HOME_DELAY, turns=turns)
    app = App(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=not (socket_mode or verified),
        listener_executor=listener_executor
        or ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener"),
    )
    if work is not None:
        # As bolt's AWS Lambda adapter does: lazy listeners run elsewhere.
        app.listener_runner.lazy_listener_runner = ProcessLazyListenerRunner(app.logger, work)
    deps = Deps(
        sessions=runtime.sessions,
        clock=runtime.clock,
        policy=runtime.policy,
        delivery=delivery,
        client=client,
    )

    @app.middleware
    def inject_deps(context: Any, next: Any) -> None:  # noqa: A002 - bolt's name
        context["deps"] = deps
        next()

    def checked_here(request: BoltRequest, body: dict[str, Any]) -> bool:
        if verified:  # the work process: what its web worker handed over
            return request.lazy_only
        if work is not None:  # serve's web worker: only the forms it answers itself
            return body.get("type") == "view_submission"
        return not request.lazy_only  # threads: lazy copies skip the middleware anyway

    @app.middleware
    def ignore_replays(
        request: BoltRequest,
        body: dict[str, Any],
        next: Any,  # noqa: A002
    ) -> BoltResponse | None:
        """A replay of a signed request (same trigger_id / action_ts) changes nothing.

        Checked where the request's work runs, so that with a work process nothing is
        written to the database before the ack."""
        key = replay_key(body) if checked_here(request, body) else None
        if key is not None and not _first_sighting(runtime, key):
            log.info("ignored a replayed request: %s", key)
            return BoltResponse(status=200, body="")
        next()
        return None

    def publish(user_id: str) -> None:
        publish_home(runtime.sessions, client, user_id, now=runtime.clock())

    commands.register(app)
    actions.register(app)
    views.register(app)
    home.register(app, publish)
    app.error(handle_error)
    return app, delivery


def replay_key(body: dict[str, Any]) -> str | None:
    kind = body.get("type")
    if body.get("command"):
        trigger = body.get("trigger_id")
        return f"command:{trigger}" if trigger else None
    if kind == "block_actions" and body.get("actions"):
        action_ts = body["actions"][0].get("action_ts")
        user = (body.get("user") or {}).get("id", "")
        return f"action:{user}:{action_ts}" if action_ts else None
    if kind == "view_submission" and body.get("trigger_id"):
        return f"view:{body['trigger_id']}"
    if kind == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    return None


def _first_sighting(runtime: Runtime, key: str) -> bool:
    now = runtime.clock()
    try:
        with runtime.sessions() as session, write_transaction(session):
            session.add(RequestReceipt(key=key[:200], at=now))
    except IntegrityError:
        return False
    return True


def forget_old_receipts(runtime: Runtime) -> None:
    with runtime.sessions() as session, write_transaction(session):
        session.execute(
            delete(RequestReceipt).where(RequestReceipt.at < runtime.clock() - REPLAY_WINDOW)
        )


def handle_error(
    error: Exception, body: dict[str, Any], client: WebClient, respond: Any, context: Any
) -> BoltResponse | None:
    """Errors outside listeners (middleware, payload shape) follow the same policy.

    Except when bolt's own checks failed on the request before `inject_deps` ran (a
    timestamp that is not a number, a signature with non-ASCII characters): it is not
    known to come from Slack, and its body names whom to answer, so nobody is told
    anything and it gets a 401, like any request with a bad signature.
    """
    if "deps" not in context:
        log.warning("refused a request that could not be verified: %r", error)
        return BoltResponse(status=401, body="")
    report(error, body, client, respond)
    return None
