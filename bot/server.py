"""HTTP mode: `POST /slack/events` and `GET /healthz`, served by gunicorn.

`SlackFront` is the one HTTP front end: it routes, refuses what is not Slack's (a body
over `MAX_BODY` gets 413 before it is read), parses Slack's form bodies correctly
(`SlackRequest`) and hands them to the bolt app. `serve()` runs it on gunicorn with
its asyncio (ASGI) workers, so a connection that sends slowly holds no thread: fifty
slow clients cost fifty sockets, not the threads that ack Slack. `wsgi_app()` is the
same front end for an in-process server (the tests and the sandbox).

Stopping: SIGTERM or SIGINT to the master, to a worker or to the whole group stops
taking connections, lets requests in flight finish (every one of them is committed
before its ack, handlers.flow), gives the work after the acks what is left of
`SHUTDOWN_SECONDS`, and exits 0. What has not been delivered to Slack by then is in
the outbox, for the next sweep of any process.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from gunicorn.app.base import BaseApplication
from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.request.internals import build_context

if TYPE_CHECKING:
    from bot.payments import PaymentsFront

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Slack's largest payloads (a big form) are a fraction of this
BODY_SECONDS = 10.0  # a body must arrive within this, however slowly it trickles
DISPATCH_THREADS = 64  # requests handed to bolt at once (each waits for its ack)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def parse_form_body(raw: str, content_type: str | None) -> dict[str, Any]:
    """Slack's request body as a dict: JSON (events), a form whose `payload` field holds
    JSON (interactivity), or a plain form (slash commands)."""
    if not raw:
        return {}
    if content_type == "application/json" or raw.startswith("{"):
        parsed: dict[str, Any] = json.loads(raw)
        return parsed
    fields = dict(parse_qsl(raw, keep_blank_values=True))
    if "payload" in fields:
        payload: dict[str, Any] = json.loads(fields["payload"])
        return payload
    return fields


class SlackRequest(BoltRequest):
    """A bolt request whose form body is parsed by its fields.

    slack-bolt 1.30's `parse_body` (slack_bolt/request/internals.py) takes any form body
    containing the text "payload" for an interactivity payload: a command such as
    `/milestone submit "final payload uploaded"` then has no fields at all, matches no
    listener and gets 404 "unhandled request". The raw body still goes to bolt, which
    verifies its signature over exactly those bytes.
    """

    def __init__(self, *, body: str, query: str, headers: dict[str, Sequence[str]]) -> None:
        super().__init__(body=body, query=query, headers=dict(headers))
        parsed = parse_form_body(body, self.content_type)
        if parsed != self.body:
            self.body = parsed
            self.context = build_context(BoltContext({}), parsed)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        return cls(status, json.dumps(payload).encode(), [("content-type", "application/json")])


TOO_LARGE = Reply.json(413, {"error": "request body too large"})
TOO_SLOW = Reply.json(408, {"error": "request body too slow"})
NOT_FOUND = Reply.json(404, {"error": "not found"})


class SlackFront:
    """The routes, whatever server runs them."""

    def __init__(
        self, app: App, healthy: Callable[[], bool], payments: PaymentsFront | None = None
    ) -> None:
        self.app = app
        self.healthy = healthy
        self.payments = payments  # `PAYMENTS=stripe`: Stripe's webhook, pay and payout links

    def wants_body(self, method: str, path: str) -> bool:
        if self.payments is not None and self.payments.wants_body(method, path):
            return True
        return method == "POST" and path == "/slack/events"

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        if self.payments is not None and self.payments.handles(method, path):
            page = self.payments.handle(method, path, headers, body)
            return Reply(page.status, page.body, list(page.headers))
        if self.wants_body(method, path):
            return self._slack(query, headers, body)
        if path == "/healthz" and method in ("GET", "HEAD"):
            ok = self.healthy()
            return Reply.json(200 if ok else 503, {"ok": ok, "database": "up" if ok else "down"})
        flow = self.app.oauth_flow  # distribution only: bolt's install pages
        if flow is not None and method == "GET":
            if path in (flow.install_path, flow.redirect_uri_path):
                return self._oauth(flow, path, query, headers)
        return NOT_FOUND

    def _oauth(self, flow: Any, path: str, query: str, headers: Mapping[str, str]) -> Reply:
        """`GET /slack/install` (the Add to Slack page) and `GET /slack/oauth_redirect`
        (state checked, code exchanged, installation stored), as bolt's adapters do."""
        request = BoltRequest(
            body="", query=query, headers={name: [value] for name, value in headers.items()}
        )
        if path == flow.install_path:
            response = flow.handle_installation(request)
        else:
            response = flow.handle_callback(request)
        out = [(name, value) for name, values in response.headers.items() for value in values]
        return Reply(response.status, response.body.encode("utf-8"), out)

    def _slack(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        try:
            request = SlackRequest(
                body=body.decode("utf-8"),
                query=query,
                headers={name: [value] for name, value in headers.items()},
            )
        except ValueError as error:
            # Not UTF-8, or JSON that does not parse: not from Slack. A 400, no traceback.
            log.warning("refused a malformed request: %s", error)
            return Reply.json(400, {"error": "malformed request"})
        response = self.app.dispatch(request)
        out = [(name, value) for name, values in response.headers.items() for value in values]
        return Reply(response.status, response.body.encode("utf-8"), out)


def declared_length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


# --- the ASGI side, for gunicorn's asyncio workers -----------------------------------


class AsgiFront:
    """`SlackFront` as an ASGI app. The bot is built in each worker when it starts
    (`lifespan.startup`) and stopped when it stops (`lifespan.shutdown`); bolt, which
    is synchronous, runs in a thread pool, so the event loop keeps reading the other
    connections."""

    def __init__(self, start: Callable[[], Any], stop: Callable[[Any], None]) -> None:
        self._start = start
        self._stop = stop
        self._bot: Any = None
        self._front: SlackFront | None = None
        self._pool = ThreadPoolExecutor(max_workers=DISPATCH_THREADS, thread_name_prefix="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._bot = await loop.run_in_executor(self._pool, self._start)
                    self._front = SlackFront(
                        self._bot.app, self._bot.runtime.database_ok, self._bot.payments_front
                    )
                except Exception as error:  # noqa: BLE001 - told to gunicorn, which stops
                    log.exception("the bot could not start")
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._bot is not None:
                    await loop.run_in_executor(self._pool, self._stop, self._bot)
                self._pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        method, path = scope["method"], scope["path"]
        front = self._front
        if front is None:
            reply = Reply.json(503, {"error": "starting"})
        elif front.wants_body(method, path):
            length = declared_length(headers)
            if length is not None and length > MAX_BODY:
                reply = TOO_LARGE  # before a byte of it is read
            else:
                try:
                    body = await asyncio.wait_for(_read_body(receive), BODY_SECONDS)
                except TimeoutError:
                    reply = TOO_SLOW
                except _TooLarge:
                    reply = TOO_LARGE
                else:
                    reply = await self._handle(front, method, path, scope, headers, body)
        else:
            reply = await self._handle(front, method, path, scope, headers, b"")
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in [*reply.headers, ("content-length", str(len(reply.body)))]
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else reply.body})

    async def _handle(
        self,
        front: SlackFront,
        method: str,
        path: str,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
    ) -> Reply:
        query = scope.get("query_string", b"").decode("latin-1")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, front.handle, method, path, query, headers, body
        )


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise TimeoutError  # nothing to answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


# --- the WSGI side, for an in-process server (tests, sandbox) ----------------------------


def wsgi_app(front: SlackFront) -> WsgiApp:
    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = str(environ[key])
        length = declared_length(headers) or 0
        if front.wants_body(method, path) and length > MAX_BODY:
            reply = TOO_LARGE
        else:
            body = environ["wsgi.input"].read(length) if length else b""
            reply = front.handle(method, path, environ.get("QUERY_STRING", ""), headers, body)
        start_response(
            f"{reply.status} {_REASONS.get(reply.status, 'OK')}",
            [*reply.headers, ("Content-Length", str(len(reply.body)))],
        )
        return [reply.body]

    return application


_REASONS = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# --- gunicorn ---------------------------------------------------------------------------

M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(default: int = 2) -> None:
    """glibc gives threads their own malloc arenas (up to eight per core), and a threaded
    server's memory grows with them; two are plenty here (about 10 MB less per tree in
    the benchmarks). Set in gunicorn's master before any thread and before the fork, so
    the workers inherit it. A MALLOC_ARENA_MAX the operator set is kept."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, int(os.environ.get("MALLOC_ARENA_MAX", default)))
    except (OSError, AttributeError, ValueError):
        log.debug("not glibc, or MALLOC_ARENA_MAX is not a number: malloc left as it is")


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with `app` preloaded in the master (the workers share its pages)."""

    def __init__(self, app: AsgiFront, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> AsgiFront:
        return self._app


STOPPING_SINCE: list[float] = []  # when this worker was told to stop (monotonic)


def _stop_gracefully_on_sigint_master(arbiter: Any) -> None:
    """Ctrl+C (SIGINT) drains like SIGTERM instead of gunicorn's quick exit: a request
    being committed finishes and is answered. (A second SIGINT while draining still
    forces a quick exit.)"""
    arbiter.handle_int = arbiter.handle_term


def _stop_gracefully_on_sigint_worker(worker: Any) -> None:
    """In a worker, SIGTERM and SIGINT both start the graceful stop, and note when."""

    def stop() -> None:
        if not STOPPING_SINCE:
            STOPPING_SINCE.append(time.monotonic())
        worker.handle_exit_signal()

    for sig in (signal.SIGTERM, signal.SIGINT):
        worker.loop.add_signal_handler(sig, stop)


def seconds_left(shutdown_seconds: float, *, margin: float = 1.5) -> float:
    """What is left of the stop's time for the work after the acks."""
    since = STOPPING_SINCE[0] if STOPPING_SINCE else time.monotonic()
    return max(0.5, shutdown_seconds - margin - (time.monotonic() - since))


def serve(
    app: AsgiFront,
    *,
    host: str,
    port: int,
    workers: int,
    shutdown_seconds: float,
    log_level: str = "info",
) -> None:
    GunicornServer(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "asgi",
            "asgi_lifespan": "on",
            # Connections per worker; a slow one costs a socket, not a thread.
            "worker_connections": 1000,
            "backlog": 2048,
            # The heartbeat, and the longest wait for one more piece of a request body.
            "timeout": 30,
            # Then gunicorn kills what is left; the stop is over within SHUTDOWN_SECONDS.
            "graceful_timeout": max(1, int(shutdown_seconds) - 1),
            # Idle kept-alive connections close soon, so a stopping worker isn't held.
            "keepalive": 2,
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": log_level,
            "preload_app": True,
            "when_ready": _stop_gracefully_on_sigint_master,
            "post_worker_init": _stop_gracefully_on_sigint_worker,
            # gunicorn ≥ 25.1 opens a control socket at one per-user path ($HOME/.gunicorn/
            # or $XDG_RUNTIME_DIR); a second `serve` on the host would take it over.
            "control_socket_disable": True,
        },
    ).run()
