"""The one HTTP front end of the sandbox's servers (the emulator's Slack and the page).

`LoopbackServer(answer, ...)` binds a stdlib `ThreadingHTTPServer` (one daemon thread a
request) and serves until `stop()`. Each request reaches `answer` as an `HttpRequest`
(header names lower-cased) and its `HttpReply` is written back with a Content-Length.
`answer` may raise `DropConnection` to close the connection with no reply at all; any
other exception is logged and answered 500 `{"ok": false, "error": failure}`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as a router sees it (header names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpReply:
    """What a router answers."""

    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> HttpReply:
        merged = {"content-type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, merged, json.dumps(payload).encode("utf-8"))


Answer = Callable[[HttpRequest], HttpReply]


class DropConnection(Exception):
    """Raised by an `Answer`: close the connection without a status line, headers or body."""


class LoopbackServer:
    """`answer` served over HTTP/1.0 on `host:port` (0: any free port) until `stop()`."""

    def __init__(
        self,
        answer: Answer,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "http",
        server_version: str = "milestone-bot",
        max_body: int | None = None,
        failure: str = "internal_error",
    ) -> None:
        self.answer = answer
        self.name = name
        self.server_version = server_version
        self.max_body = max_body
        self.failure = failure
        self._http = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    def stop(self) -> None:
        """Stop serving, release the port and wait for the serving thread."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of concurrent clients must not be refused

    def __init__(self, address: tuple[str, int], front: LoopbackServer) -> None:
        self.front = front
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, verb: str) -> None:
        front = self.server.front
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if front.max_body is not None:
            length = min(length, front.max_body)
        split = urlsplit(self.path)
        request = HttpRequest(
            method=verb,
            path=split.path,
            query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length > 0 else b"",
        )
        try:
            reply = front.answer(request)
        except DropConnection:
            self.close_connection = True  # the client sees the connection close unanswered
            return
        except Exception:
            log.exception("%s failed on %s %s", front.name, verb, self.path)
            reply = HttpReply.json(500, {"ok": False, "error": front.failure})
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client went away
            log.debug("%s: the client left before the reply to %s", front.name, self.path)

    def version_string(self) -> str:
        return f"{self.server.front.server_version} {self.sys_version}"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("%s: %s - %s", self.server.front.name, self.address_string(), format % args)
