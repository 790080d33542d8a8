"""The page and its JSON API, on 127.0.0.1 (`sandbox.http`, one thread a request).

    GET  /                      the page (static/index.html, app.js, app.css)
    GET  /api/state?as=U&since=N&wait=S
                                what person U sees; with `since`, waits up to S seconds
                                (at most 25) for something newer than version N
    POST /api/command   {"as", "text"}                       a `/milestone …` command
    POST /api/click     {"as", "action_id", "block_id"?, "value"?,
                         "ts" | "view_id", "values"?}         a button or select
    POST /api/submit    {"as", "view_id", "values"}          a modal's submit button
    POST /api/close     {"as", "view_id"}                    a modal's Cancel button
    POST /api/home_opened {"as"}                             the Home tab was opened
    POST /api/clock     {"days"}                             move time forward, then sweep

POSTs take JSON (`Content-Type: application/json`, which browsers never send across
sites without asking) and answer `{"ok": true, …}` or `{"ok": false, "error": "…"}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from sandbox.http import HttpReply, HttpRequest, LoopbackServer

from .people import CAST
from .sandbox import Sandbox
from .typed import NotACommand

log = logging.getLogger(__name__)

STATIC: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
MAX_WAIT = 25.0
MAX_DAYS = 366.0
MAX_BODY = 1_000_000
_NO_STORE = {"cache-control": "no-store"}


class BadRequest(ValueError):
    pass


def _static(name: str) -> bytes:
    return resources.files("sandbox").joinpath("static", name).read_bytes()


class SandboxWeb:
    """Routes requests to the sandbox; `handle` is plain (request in, reply out)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._posts: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "/api/command": self._command,
            "/api/click": self._click,
            "/api/submit": self._submit,
            "/api/close": self._close,
            "/api/home_opened": self._home_opened,
            "/api/clock": self._clock,
        }

    def handle(self, request: HttpRequest) -> HttpReply:
        if not _local_host(request.headers.get("host", "")):
            return HttpReply.json(421, {"ok": False, "error": "use http://127.0.0.1"})
        try:
            if request.method == "GET":
                return self._get(request)
            if request.method == "POST" and request.path in self._posts:
                body = self._json_body(request)
                return HttpReply.json(
                    200, {"ok": True, **self._posts[request.path](body)}, _NO_STORE
                )
            return HttpReply.json(404, {"ok": False, "error": f"no route {request.path}"})
        except (BadRequest, NotACommand) as error:
            return HttpReply.json(400, {"ok": False, "error": str(error)})
        except KeyError:
            raise  # a bug, not a request for something that isn't there
        except LookupError as error:  # no such message, button, view or person
            message = error.args[0] if error.args else str(error)
            return HttpReply.json(409, {"ok": False, "error": str(message)})

    # ------------------------------------------------------------------ GET

    def _get(self, request: HttpRequest) -> HttpReply:
        if request.path == "/api/state":
            query = parse_qs(request.query)
            user = (query.get("as") or [""])[0] or CAST[0].id  # the page's first visit
            since = _number(query, "since", default=None)
            wait = min(_number(query, "wait", default=0.0) or 0.0, MAX_WAIT)
            if since is not None and wait > 0:
                self.sandbox.wait_for_change(int(since), wait)
            return HttpReply.json(200, self.sandbox.state(user), _NO_STORE)
        name = "index.html" if request.path in ("/", "/index.html") else None
        if request.path.startswith("/static/"):
            name = request.path[len("/static/") :]
        if name in STATIC:
            return HttpReply(200, {"content-type": STATIC[name], **_NO_STORE}, _static(name))
        return HttpReply.json(404, {"ok": False, "error": f"no page {request.path}"})

    # ------------------------------------------------------------------ POST

    @staticmethod
    def _json_body(request: HttpRequest) -> Mapping[str, Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise BadRequest("send JSON (Content-Type: application/json)")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as error:
            raise BadRequest(f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _command(self, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.sandbox.command(_text(body, "as"), _text(body, "text"))
        return {"status": response.status}

    def _click(self, body: Mapping[str, Any]) -> dict[str, Any]:
        values = body.get("values")
        if values is not None and not isinstance(values, dict):
            raise BadRequest("values must be an object: {block_id: {action_id: value}}")
        response = self.sandbox.click(
            _text(body, "as"),
            action_id=_text(body, "action_id"),
            message_ts=_optional_text(body, "ts"),
            view_id=_optional_text(body, "view_id"),
            block_id=_optional_text(body, "block_id"),
            value=body.get("value"),
            values=values,
        )
        return {"status": response.status}

    def _submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        values = body.get("values") or {}
        if not isinstance(values, dict):
            raise BadRequest("values must be an object: {block_id: {action_id: value}}")
        return self.sandbox.submit(_text(body, "as"), _text(body, "view_id"), values)

    def _close(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.sandbox.close(_text(body, "as"), _text(body, "view_id"))
        return {}

    def _home_opened(self, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.sandbox.open_home(_text(body, "as"))
        return {"status": response.status}

    def _clock(self, body: Mapping[str, Any]) -> dict[str, Any]:
        days = body.get("days")
        if isinstance(days, bool) or not isinstance(days, int | float):
            raise BadRequest("days must be a number, e.g. 1, 7 or 14")
        if not 0 < days <= MAX_DAYS:
            raise BadRequest(f"days must be more than 0 and at most {MAX_DAYS:.0f}")
        now = self.sandbox.advance(timedelta(days=float(days)))
        return {"now": now.isoformat()}


def _number(query: Mapping[str, list[str]], key: str, *, default: float | None) -> float | None:
    values = query.get(key) or []
    if not values:
        return default
    try:
        return float(values[0])
    except ValueError:
        raise BadRequest(f"?{key}= must be a number") from None


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"missing {key!r}")
    return value


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string")
    return value


def _local_host(host: str) -> bool:
    """Only loopback names (a guard against DNS rebinding)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("127.0.0.1", "localhost", "[::1]", "")


# ---------------------------------------------------------------------- HTTP server


class PageServer:
    """The page's HTTP server, serving in a daemon thread until `stop()`."""

    def __init__(self, sandbox: Sandbox, *, port: int = 0) -> None:
        self._server = LoopbackServer(
            SandboxWeb(sandbox).handle,
            port=port,
            name="sandbox-page",
            server_version="milestone-bot-sandbox",
            max_body=MAX_BODY,
            failure="the sandbox failed; see log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/"

    def stop(self) -> None:
        self._server.stop()
