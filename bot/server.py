"""HTTP mode on gunicorn (threaded workers): `POST /slack/events` and `GET /healthz`.

Bolt's built-in development server has a listen backlog of 5 and one thread; gunicorn's
`gthread` workers serve concurrent requests. Each worker builds its own app, engine and
scheduler after the fork (nothing is shared across processes but the database).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(app: App, healthy: Callable[[], bool]) -> WsgiApp:
    slack = SlackRequestHandler(app)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and method == "POST":
            try:
                return slack(environ, start_response)
            except ValueError as error:
                # Bolt parses the body before it checks the signature: a body that is not
                # UTF-8, or JSON that does not parse, is not from Slack. A 400, no traceback.
                log.warning("refused a malformed request: %s", error)
                body = b'{"error": "malformed request"}'
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                )
                return [body]
        if path == "/healthz" and method in ("GET", "HEAD"):
            ok = healthy()
            body = json.dumps({"ok": ok, "database": "up" if ok else "down"}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(
                status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        body = b'{"error": "not found"}'
        start_response(
            "404 Not Found",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return application


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(default: int = 2) -> None:
    """glibc gives threads their own malloc arenas (up to eight per core), and a threaded
    server's memory grows with them; two are plenty here (about 10 MB less per tree in
    the benchmarks). Applies to this process now (mallopt, before any thread and before
    the fork) and, through MALLOC_ARENA_MAX, to the processes it starts. A value the
    operator set is kept."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(default))
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"]))
    except (OSError, AttributeError, ValueError):
        log.debug("not glibc, or MALLOC_ARENA_MAX is not a number: malloc left as it is")


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Runs `load_app()` in every worker after the fork (no preloading)."""

    def __init__(self, load_app: Callable[[], WsgiApp], options: dict[str, Any]) -> None:
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        return self._load_app()


def serve(
    load_app: Callable[[], WsgiApp],
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    log_level: str = "info",
) -> None:
    GunicornServer(
        load_app,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "backlog": 2048,
            "timeout": 60,
            "graceful_timeout": 20,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": log_level,
            "preload_app": False,
            # gunicorn ≥ 25.1 opens a control socket at one per-user path ($HOME/.gunicorn/
            # or $XDG_RUNTIME_DIR); a second `serve` on the host would take it over.
            "control_socket_disable": True,
        },
    ).run()
