"""A TCP proxy between the bot and PostgreSQL that fails the way networks and servers do.

- `cut()`: every open connection is dropped and new ones are refused (closed at once)
  until `restore()` — PostgreSQL restarting, a network partition.
- `drop_commit_of(marker)`: the COMMIT of the next transaction whose statements
  contain `marker` reaches the server, which applies it, and then the connection is
  dropped before the answer gets back — the commit whose outcome the client can't know.

It reads PostgreSQL's wire protocol only to spot a simple-query COMMIT (`Q`, length,
`COMMIT\\0`), which is how psycopg 3 commits, and the marker in the statements sent
before it on the same connection.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._refusing = False
        self._drop_marker: bytes | None = None
        self.commits_dropped = 0
        self.refused = 0
        self._running = True
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    # --- faults -------------------------------------------------------------------------

    def cut(self) -> None:
        """Drop every connection and refuse new ones until `restore()`."""
        with self._lock:
            self._refusing = True
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close(*pair)

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    @contextmanager
    def down(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def drop_commit_of(self, marker: bytes) -> None:
        with self._lock:
            self._drop_marker = marker

    def close(self) -> None:
        self._running = False
        self.cut()
        with suppress(OSError):
            self._listener.close()

    # --- plumbing -------------------------------------------------------------------------

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                self.refused += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._pairs.append((client, server))
            muted = threading.Event()  # the server's answers no longer reach the client
            threading.Thread(
                target=self._pump, args=(client, server, True, muted), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, False, muted), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, from_client: bool, muted: threading.Event
    ) -> None:
        transaction = b""  # what the client sent since its last COMMIT
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not from_client:
                    if not muted.is_set():
                        sink.sendall(data)
                    continue
                transaction = (transaction + data)[-65536:]
                if COMMIT in data and self._take_commit_drop(transaction):
                    muted.set()
                    sink.sendall(data)
                    time.sleep(0.3)  # the server applies it meanwhile; its answer is lost
                    break
                sink.sendall(data)
                if COMMIT in data:
                    transaction = b""
        except OSError:
            pass
        self._forget(source, sink)

    def _take_commit_drop(self, transaction: bytes) -> bool:
        with self._lock:
            if self._drop_marker is None or self._drop_marker not in transaction:
                return False
            self._drop_marker = None
            self.commits_dropped += 1
            return True

    def _forget(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            self._pairs = [p for p in self._pairs if a not in p and b not in p]
        _close(a, b)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            sock.close()
