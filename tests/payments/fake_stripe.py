"""A local Stripe for the tests: `localstripe` (PaymentIntents, PaymentMethods, refunds)
behind a small fake of what it lacks — Connect accounts, account links, Checkout
Sessions and transfers — on one base URL, so stripe-python talks to it over real HTTP.

The fake's objects follow the shapes of Stripe's API reference (docs.stripe.com/api:
`account`, `account_link`, `checkout.session`, `transfer`, `event`), with the fields the
bot reads. Every POST honours `Idempotency-Key` as Stripe does: the same key with the
same parameters answers the first response again; with other parameters, a 400
`idempotency_error`. Anything else is forwarded to localstripe unchanged.

Faults for the tests: `down` (every request answers 503, as when Stripe is
unreachable behind a load balancer) and `lose_responses` (the next N requests are
carried out, then answered 500 — the call happened but the caller never heard).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

API_KEY = "sk_test_milestone_bot_fake"
WEBHOOK_SECRET = "whsec_milestone_bot_fake"

JsonDict = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unflatten(pairs: list[tuple[str, str]]) -> JsonDict:
    """Stripe's form encoding (`a[b][0][c]=v`) as nested dicts and lists."""
    root: JsonDict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    nested: JsonDict = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """A `Stripe-Signature` header for `payload` (docs.stripe.com/webhooks#verify-manually)."""
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


@dataclass
class FakeStripe:
    """The state of the fake, and the switches the tests turn."""

    base_url: str = ""
    localstripe_url: str = ""
    accounts: dict[str, JsonDict] = field(default_factory=dict)
    sessions: dict[str, JsonDict] = field(default_factory=dict)
    transfers: dict[str, JsonDict] = field(default_factory=dict)
    idempotent: dict[str, tuple[str, int, bytes]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    down: bool = False
    lose_responses: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}{secrets.token_hex(4)}"

    # ----- what the tests do as the client, the provider and Stripe ----------------------

    def pay(self, session_id: str) -> JsonDict:
        """The client pays a Checkout Session with a test card: a real PaymentIntent in
        localstripe, the session completed; the `checkout.session.completed` event."""
        session = self.sessions[session_id]
        method = self.localstripe(
            "POST",
            "/v1/payment_methods",
            {
                "type": "card",
                "card[number]": "4242424242424242",
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        form = {
            "amount": str(session["amount_total"]),
            "currency": session["currency"],
            "payment_method": method["id"],
            "confirm": "true",
        }
        for key, value in (session.get("metadata") or {}).items():
            form[f"metadata[{key}]"] = value
        intent = self.localstripe("POST", "/v1/payment_intents", form)
        assert intent["status"] == "succeeded", intent
        with self.lock:
            session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
        return self.event("checkout.session.completed", session)

    def finish_onboarding(self, account_id: str) -> JsonDict:
        with self.lock:
            account = self.accounts[account_id]
            account.update(charges_enabled=True, payouts_enabled=True, details_submitted=True)
            account["capabilities"] = {"transfers": "active"}
        return self.event("account.updated", account)

    def event(self, kind: str, obj: Mapping[str, Any]) -> JsonDict:
        return {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": "2026-08-26.dahlia",
            "created": int(time.time()),
            "type": kind,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": dict(obj)},
        }

    def localstripe(self, method: str, path: str, form: Mapping[str, str] | None = None) -> Any:
        url = urlsplit(self.localstripe_url)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
        body = urlencode(dict(form or {}))
        conn.request(
            method,
            path,
            body=body.encode() if form else None,
            headers={
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        response = conn.getresponse()
        data = json.loads(response.read() or b"{}")
        conn.close()
        return data

    # ----- the fake's own API ------------------------------------------------------------

    def handle(self, method: str, path: str, query: JsonDict, form: JsonDict) -> Any:
        """(status, body) for the routes the fake serves, or None: forward it."""
        parts = path.strip("/").split("/")
        match method, parts:
            case "POST", ["v1", "accounts"]:
                account = {
                    "id": self.new_id("acct"),
                    "object": "account",
                    "type": form.get("type", "express"),
                    "charges_enabled": False,
                    "payouts_enabled": False,
                    "details_submitted": False,
                    "capabilities": {"transfers": "inactive"},
                    "metadata": form.get("metadata", {}),
                    "created": int(time.time()),
                }
                self.accounts[account["id"]] = account
                return 200, account
            case "GET", ["v1", "accounts", account_id]:
                return self._found(self.accounts, account_id, "account")
            case "POST", ["v1", "account_links"]:
                if form.get("account") not in self.accounts:
                    return _missing("account", form.get("account"))
                return 200, {
                    "object": "account_link",
                    "created": int(time.time()),
                    "expires_at": int(time.time()) + 300,
                    "url": f"{self.base_url}/connect/onboarding/{form['account']}",
                }
            case "POST", ["v1", "checkout", "sessions"]:
                return self._new_session(form)
            case "GET", ["v1", "checkout", "sessions", session_id]:
                return self._found(self.sessions, session_id, "checkout.session")
            case "POST", ["v1", "transfers"]:
                return self._new_transfer(form)
            case "GET", ["v1", "transfers", transfer_id]:
                return self._found(self.transfers, transfer_id, "transfer")
            case "GET", ["v1", "transfers"]:
                group = query.get("transfer_group")
                found = [t for t in self.transfers.values() if group in (None, t["transfer_group"])]
                return 200, {
                    "object": "list",
                    "url": "/v1/transfers",
                    "has_more": False,
                    "data": found,
                }
        return None

    def _found(self, table: Mapping[str, JsonDict], key: str, what: str) -> tuple[int, Any]:
        return (200, table[key]) if key in table else _missing(what, key)

    def _new_session(self, form: JsonDict) -> tuple[int, Any]:
        items = form.get("line_items") or []
        if form.get("mode") != "payment" or len(items) != 1:
            return _invalid("line_items", "one line item in payment mode")
        price = items[0]["price_data"]
        amount = int(price["unit_amount"]) * int(items[0].get("quantity", 1))
        session = {
            "id": self.new_id("cs_test"),
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": price["currency"],
            "client_reference_id": form.get("client_reference_id"),
            "metadata": form.get("metadata", {}),
            "payment_intent": None,
            "payment_intent_data": form.get("payment_intent_data", {}),
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "created": int(time.time()),
        }
        session["url"] = f"{self.base_url}/pay/{session['id']}"
        self.sessions[session["id"]] = session
        return 200, session

    def _new_transfer(self, form: JsonDict) -> tuple[int, Any]:
        destination = form.get("destination")
        account = self.accounts.get(str(destination))
        if account is None:
            return _missing("account", destination)
        if account["capabilities"].get("transfers") != "active":
            return _invalid("destination", "the account cannot receive transfers yet")
        transfer = {
            "id": self.new_id("tr"),
            "object": "transfer",
            "amount": int(form["amount"]),
            "amount_reversed": 0,
            "currency": form["currency"],
            "destination": destination,
            "transfer_group": form.get("transfer_group"),
            "metadata": form.get("metadata", {}),
            "reversed": False,
            "created": int(time.time()),
        }
        self.transfers[transfer["id"]] = transfer
        return 200, transfer


def _missing(what: str, key: object) -> tuple[int, Any]:
    return 404, {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such {what}: '{key}'",
        }
    }


def _invalid(param: str, message: str) -> tuple[int, Any]:
    return 400, {"error": {"type": "invalid_request_error", "param": param, "message": message}}


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            with fake.lock:
                fake.calls.append((method, url.path))
                if fake.down:
                    self._answer(503, b'{"error": {"type": "api_error", "message": "down"}}')
                    return
                key = self.headers.get("Idempotency-Key") if method == "POST" else None
                if key is not None and key in fake.idempotent:
                    seen_raw, status, body = fake.idempotent[key]
                    if seen_raw != raw.decode():
                        status, body = (
                            400,
                            json.dumps(
                                {"error": {"type": "idempotency_error", "message": "reused key"}}
                            ).encode(),
                        )
                    self._answer(status, body, replayed=True)
                    return
                query = unflatten(parse_qsl(url.query))
                form = unflatten(parse_qsl(raw.decode()))
                handled = fake.handle(method, url.path, query, form)
            if handled is None:
                status, body = self._forward(method, raw)
            else:
                status, body = handled[0], json.dumps(handled[1]).encode()
            with fake.lock:
                if key is not None and status < 500:
                    fake.idempotent[key] = (raw.decode(), status, body)
                if fake.lose_responses > 0:
                    fake.lose_responses -= 1
                    status, body = 500, b'{"error": {"type": "api_error", "message": "lost"}}'
            self._answer(status, body)

        def _forward(self, method: str, raw: bytes) -> tuple[int, bytes]:
            url = urlsplit(fake.localstripe_url)
            conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
            headers = {
                "Authorization": self.headers.get("Authorization", ""),
                "Content-Type": self.headers.get(
                    "Content-Type", "application/x-www-form-urlencoded"
                ),
            }
            conn.request(method, self.path, body=raw or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            return response.status, body

        def _answer(self, status: int, body: bytes, *, replayed: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(6)}")
            if replayed:
                self.send_header("Idempotent-Replayed", "true")
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def running_localstripe(workdir: Path) -> Iterator[str]:
    """localstripe as a subprocess on a free port; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_fake_stripe(workdir: Path) -> Iterator[FakeStripe]:
    """The fake in front of a fresh localstripe; `fake.base_url` is `STRIPE_API_BASE`."""
    with running_localstripe(workdir) as localstripe_url:
        fake = FakeStripe(localstripe_url=localstripe_url)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
        server.daemon_threads = True
        fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield fake
        finally:
            server.shutdown()
            server.server_close()
