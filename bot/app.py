"""The single wiring point: settings → engine, sessions, Slack client, bolt `App`,
outbox delivery and scheduler — everything one process of the bot runs (`Bot`).

Nothing is built at import time. `start_bot(settings)` builds and starts a `Bot`;
`Bot.close()` stops it. Listeners get their dependencies from `context["deps"]`
(handlers.deps.Deps). Every listener that changes something commits before it acks
(handlers.flow): bolt runs listeners on `listener_executor`, and the HTTP request waits
for the ack; the outbox delivery that follows runs in the same listener thread after
the response has gone.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import RemoteDisconnected
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

from slack_bolt import App, BoltContext, BoltResponse, Respond
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest as RetryRequest
from slack_sdk.http_retry.response import HttpResponse as RetryResponse
from slack_sdk.http_retry.state import RetryState
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import Delivery, publish_home
from bot.directory import SlackTimeZones
from bot.installs import (
    Installations,
    PeopleAcrossWorkspaces,
    build_installations,
    oauth_settings,
    redact_tokens_in_logs,
)
from bot.settings import DistributionCredentials, Settings
from bot.webhooks import WebhookSender
from domain import intake
from domain.db import make_engine, make_session_factory, upgrade_schema
from domain.policy import Clock, Policy, system_clock
from handlers import actions, commands, home, views
from handlers.deps import Deps
from handlers.errors import report
from handlers.people import SlackProfiles
from scheduler.jobs import Scheduler, sweep_once

if TYPE_CHECKING:
    from bot.payments import PaymentsFront, PaymentsSender

log = logging.getLogger(__name__)

SLACK_API_DEFAULT = "https://slack.com/api/"
# Bolt runs listeners (and their ack) on this pool; 5 threads by default would let five
# slow listeners stall every ack.
LISTENER_THREADS = 32
# App Home publishes after a change wait this long, so a burst costs one per person.
HOME_DELAY = 0.5
SLACK_TIMEOUT = 10  # seconds a Web API call may take
# Posts that change a channel: retried by the outbox (which looks for them first), never
# blindly by the HTTP client, because a dropped connection may follow a post that worked.
_NOT_REPEATABLE = ("chat.postMessage", "chat.postEphemeral")


def policy_from(settings: Settings) -> Policy:
    return Policy(
        auto_release_period=settings.auto_release_period,
        max_amount_major=settings.MAX_AMOUNT,
        request_reminder_first=settings.request_reminder_first_delay,
        request_reminder_every=settings.request_reminder_interval,
        review_reminders_before=settings.review_reminder_offsets,
        fund_reminder_after=settings.fund_reminder_delay,
        end_window=settings.end_window,
        working_hours=(settings.WORKING_HOURS.start, settings.WORKING_HOURS.end),
        pay_through_provider=settings.PAYMENTS == "stripe",
    )


class _RepeatableRetries(ConnectionErrorRetryHandler):
    """slack_sdk's retry on connection errors, except for a post that may have reached
    Slack: a connection refused is retried for any method, a dropped one only for
    methods that are safe to repeat."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: RetryRequest,
        response: RetryResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        refused = isinstance(error, URLError) and isinstance(error.reason, ConnectionRefusedError)
        if not refused and request.url.rstrip("/").endswith(_NOT_REPEATABLE):
            if isinstance(error, URLError | ConnectionResetError | RemoteDisconnected):
                return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def make_web_client(token: str | None, api_url: str | None) -> WebClient:
    return WebClient(
        token=token,
        base_url=api_url or SLACK_API_DEFAULT,
        timeout=SLACK_TIMEOUT,
        retry_handlers=[_RepeatableRetries(max_retry_count=2)],
    )


@dataclass
class Runtime:
    """The database side of a process, built once from settings."""

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
    client: WebClient,
    delivery: Delivery,
    signing_secret: str,
    listener_executor: Executor,
    installations: Installations | None = None,
    oauth: OAuthSettings | None = None,
) -> App:
    """The bolt app: every listener, the one error policy, dependencies in the context.

    Requests over HTTP are verified with `signing_secret`; Socket Mode requests need no
    signature (bolt skips the check for them)."""
    app = App(
        client=client,
        signing_secret=signing_secret,
        listener_executor=listener_executor,
        oauth_settings=oauth,  # distribution: each workspace's token from its install
    )
    deps = Deps(
        sessions=runtime.sessions,
        clock=runtime.clock,
        policy=runtime.policy,
        delivery=delivery,
        client=client,
        profiles=SlackProfiles(),  # one per app: commands and forms read the same people
        public_url=runtime.settings.PUBLIC_URL,
    )

    @app.middleware
    def inject_deps(context: BoltContext, next: Any) -> None:  # noqa: A002 - bolt's name
        context["deps"] = deps
        next()

    def publish(user_id: str, page: int = 0, *, via: WebClient | None = None) -> None:
        """`via`: the request's client (in distribution, the workspace's own token)."""
        publish_home(
            runtime.sessions,
            via or client,
            user_id,
            now=runtime.clock(),
            page=page,
            record_only=not runtime.policy.pay_through_provider,
        )

    commands.register(app)
    actions.register(app)
    views.register(app)
    home.register(app, publish)
    if installations is not None:
        installations.register(app)
    app.error(handle_error)
    return app


def handle_error(
    error: Exception,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    context: BoltContext,
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


@dataclass
class Bot:
    """What one process of the bot runs: its database, its Slack client, the bolt app,
    the outbox delivery and (unless asked not to) the scheduler."""

    runtime: Runtime
    client: WebClient
    delivery: Delivery
    app: App
    listeners: ListenerPool
    scheduler: Scheduler | None = None
    webhooks: WebhookSender | None = None  # outgoing webhooks, on their own thread
    # `PAYMENTS=stripe`: movements carried out on their own thread; the HTTP routes.
    payments: PaymentsSender | None = None
    payments_front: PaymentsFront | None = None
    # Whom the sweep asks for people's time zones (distribution: each one's workspace).
    people: WebClient | None = None
    _closed: bool = field(default=False, init=False)

    def sweep(self) -> None:
        """One pass of everything that came due (what the scheduler runs)."""
        runtime = self.runtime
        sweep_once(
            runtime.sessions,
            runtime.clock,
            policy=runtime.policy,
            outbox=self.delivery,
            time_zone_of=SlackTimeZones(self.people or self.client),
            housekeeping=lambda: intake.forget_receipts(runtime.sessions, now=runtime.clock()),
        )

    def close(self, *, timeout: float = 10.0) -> bool:
        """Stop: no new deliveries or sweeps; the work after acks already given gets up to
        `timeout` seconds to finish (what is left stays in the outbox, claimed for a
        minute at most, for the next sweep of any process). True if all finished."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + timeout
        self.delivery.close()
        if self.scheduler is not None:
            self.scheduler.shutdown()
        finished = self.listeners.wait_idle(max(0.0, deadline - time.monotonic()))
        self.listeners.shutdown(wait=False, cancel_futures=True)
        if self.webhooks is not None:  # what it has not sent stays queued
            self.webhooks.close(timeout=max(0.0, min(2.0, deadline - time.monotonic())))
        if self.payments is not None:  # a movement under way finishes or is retried
            self.payments.close(timeout=max(0.0, min(2.0, deadline - time.monotonic())))
        if not finished:
            log.warning("stopping with listener work still running: the outbox keeps it")
        self.runtime.engine.dispose()
        return finished


class ListenerPool(ThreadPoolExecutor):
    """Bolt's listener threads, counting the work not yet finished (a stopping process,
    and tests, wait for it to be done)."""

    def __init__(self, max_workers: int = LISTENER_THREADS) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="listener")
        self._unfinished = 0
        self._idle = threading.Condition()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._idle:
            self._unfinished += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: object) -> None:
        with self._idle:
            self._unfinished -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no listener work is left; False if some still runs after `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)


def start_bot(
    settings: Settings,
    *,
    bot_token: str,
    signing_secret: str,
    clock: Clock = system_clock,
    scheduler: bool = True,
    migrate: bool = False,
    listener_executor: ListenerPool | None = None,
    distribution: DistributionCredentials | None = None,
) -> Bot:
    """Build and start one process's bot (the scheduler's first sweep runs at once).

    `distribution`: serve every workspace that installs the app (OAuth), each with its
    own token (bot.installs); `bot_token` is then not used."""
    redact_tokens_in_logs()
    runtime = Runtime.from_settings(settings, clock=clock, migrate=migrate)
    api_url = settings.SLACK_API_URL
    client = make_web_client(None if distribution else bot_token, api_url)
    delivery = Delivery(runtime.sessions, client, clock, home_delay=HOME_DELAY)
    delivery.record_only = not runtime.policy.pay_through_provider
    installations, oauth = None, None
    if distribution is not None:
        installations = build_installations(
            distribution,
            engine=runtime.engine,
            sessions=runtime.sessions,
            clock=clock,
            make_client=lambda token: make_web_client(token, api_url),
        )
        installations.resume = delivery.sweep
        delivery.client_for = installations.clients.client_for
        delivery.installations = installations.clients.installations
        oauth = oauth_settings(
            distribution,
            engine=runtime.engine,
            store=installations.store,
            on_installed=installations.installed,
        )
    listeners = listener_executor or ListenerPool()
    app = create_app(
        runtime,
        client=client,
        delivery=delivery,
        signing_secret=signing_secret or (distribution.signing_secret if distribution else ""),
        listener_executor=listeners,
        installations=installations,
        oauth=oauth,
    )
    bot = Bot(runtime, client, delivery, app, listeners)
    if installations is not None:
        bot.people = PeopleAcrossWorkspaces(installations.clients, runtime.sessions)
    bot.webhooks = WebhookSender(
        runtime.sessions, clock, poll_seconds=settings.SWEEP_SECONDS
    ).start()
    delivery.nudges.append(bot.webhooks.nudge)
    stripe = settings.require_payments()
    if stripe is not None:
        # Imported only here: the stripe library stays out of ledger-mode processes.
        from bot.payments import PaymentsFront, PaymentsSender
        from payments.stripe_connect import StripeConnect

        provider = StripeConnect(
            api_key=stripe.api_key, webhook_secret=stripe.webhook_secret, api_base=stripe.api_base
        )
        bot.payments = PaymentsSender(
            runtime.sessions, clock, provider, poll_seconds=settings.SWEEP_SECONDS
        ).start()
        delivery.nudges.append(bot.payments.nudge)
        bot.payments_front = PaymentsFront(
            runtime.sessions,
            clock,
            provider,
            public_url=stripe.public_url,
            policy=runtime.policy,
            nudge=bot.payments.nudge,
            tell=lambda ids: listeners.submit(delivery.deliver, ids),
        )
    if scheduler:
        bot.scheduler = Scheduler(
            bot.sweep, delivery.sweep, every_seconds=settings.SWEEP_SECONDS
        ).start()
        delivery.wake = _wake_in_process_clock(bot.scheduler, clock)
    return bot


def _wake_in_process_clock(scheduler: Scheduler, clock: Clock) -> Any:
    """The scheduler runs on the machine's clock; a delivery defers on the bot's (the
    sandbox shifts it): wake after the same delay."""

    def wake(at: datetime) -> None:
        scheduler.wake_at(datetime.now(UTC) + (at - clock()))

    return wake
