"""A real webhook receiver on a local port: checks every request's signature and counts
the deliveries of each event id. It can answer with an error, hang, or be down."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "whsec_test_0123456789abcdef0123456789abcdef"


def verify(secret: str, header: str, body: bytes, *, tolerance: float = 300) -> bool:
    """The receiver's check, written independently of the sender's code."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return abs(time.time() - timestamp) <= tolerance and hmac.compare_digest(expected, parts["v1"])


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class Receiver:
    """What the server saw, and how it answers (`status`, `hang` seconds)."""

    secret: str = SECRET
    status: int = 200
    hang: float = 0.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    in_flight: int = 0  # requests it is holding (hanging) right now
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The bodies it answered 2xx to, in order (only verified ones count)."""
        with self._lock:
            return [r.json for r in self.requests if r.verified and r.headers.get("_ok") == "1"]

    def counts(self) -> Counter[str]:
        """Accepted deliveries per event id."""
        return Counter(body["id"] for body in self.accepted)

    def types(self) -> set[str]:
        return {body["type"] for body in self.accepted}

    def release(self) -> None:
        """Stop hanging (requests hanging now are let go)."""
        self.hang = 0.0
        self._released.set()

    def wait_for(self, check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"receiver never saw it; it has {len(self.requests)} requests")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = dict(self.headers.items())
            signed = headers.get("Milestone-Signature", "")
            try:
                verified = verify(receiver.secret, signed, body)
            except (KeyError, ValueError):
                verified = False
            if receiver.hang:
                with receiver._lock:
                    receiver.in_flight += 1
                receiver._released.wait(receiver.hang)
                with receiver._lock:
                    receiver.in_flight -= 1
            status = receiver.status if verified else 400
            headers["_ok"] = "1" if 200 <= status < 300 else "0"
            with receiver._lock:
                receiver.requests.append(Received(body, headers, verified))
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up waiting

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def receiving(receiver: Receiver | None = None, *, port: int = 0) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 (`port` 0: any free one) until the block ends."""
    receiver = receiver or Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_port}/hooks"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
