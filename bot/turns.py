"""Turns: in the work process the Python of at most `slots` jobs runs at a time; a job
gives its turn up while it waits for Slack; and the work before a job's first word to
Slack goes ahead of everything else.

The jobs of one process share one interpreter lock. Left to it, twenty jobs in flight
all advance together and all finish late: every click waits for every other one, and
the interpreter spends its time switching between them. Taking turns, jobs run in the
order they asked. Waiting for Slack (tens to hundreds of milliseconds over the
internet) is done without a turn, so a slow Slack call never holds the others up; when
its answer arrives the job asks again, behind those already waiting.

A job's first word to Slack is what the person waits for: the card they clicked,
updated, or the answer to their command, or the form they asked for. So a job asks
for its first turn ahead of the rest — later parts of other jobs (the contract card,
the channel announcement, the person's confirmation) and the App Home passes — which
follow it in the order they asked. The work done per second is the same; under load
the click is answered first and its echoes follow.

A turn is a scheduling hint, never a lock that correctness rests on: a job that has
waited `patience` seconds runs anyway. So a job can't be stuck behind one that holds
a database lock while waiting for a turn; at worst it waits that long.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPResponse
from typing import Any

TURN_SLOTS = 2  # one job runs Python while another waits on a database round trip
PATIENCE = 0.25  # seconds

_FIRST, _LATER = 0, 1  # before the job's first word to Slack; after it


class Turns:
    def __init__(self, slots: int = TURN_SLOTS, *, patience: float = PATIENCE) -> None:
        self.slots = slots
        self.patience = patience
        self._lock = threading.Lock()
        self._running = 0
        # (class, order) -> the waiter's event; the lowest goes next
        self._waiting: list[tuple[tuple[int, int], threading.Event]] = []
        self._order = itertools.count()
        self._mine = threading.local()

    @contextmanager
    def taken(self, *, first: bool = True) -> Iterator[None]:
        """Run the body in turn: a job (`first`: nothing said to Slack yet), or a
        background pass such as the App Home thread's (`first=False`). Nested: as is."""
        if self._held():
            yield
            return
        self._take(_FIRST if first else _LATER)
        try:
            yield
        finally:
            if self._held():
                self._give_back()

    @contextmanager
    def given_up(self) -> Iterator[None]:
        """Wait (for Slack) without the turn, then ask again behind those waiting."""
        if not self._held():
            yield
            return
        self._give_back()
        try:
            yield
        finally:
            self._take(_LATER)

    @property
    def running(self) -> int:
        """Jobs running now (above `slots` only while someone ran out of patience)."""
        with self._lock:
            return self._running

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _held(self) -> bool:
        return bool(getattr(self._mine, "held", False))

    def _take(self, kind: int) -> None:
        with self._lock:
            if self._running < self.slots and not self._waiting:
                self._running += 1
                self._mine.held = True
                return
            entry = ((kind, next(self._order)), threading.Event())
            heapq.heappush(self._waiting, entry)
        granted = entry[1].wait(self.patience)
        if not granted:
            with self._lock:
                if not entry[1].is_set():  # out of patience: leave the queue, run anyway
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                    self._running += 1
        self._mine.held = True

    def _give_back(self) -> None:
        self._mine.held = False
        with self._lock:
            self._running -= 1
            while self._running < self.slots and self._waiting:
                _, event = heapq.heappop(self._waiting)
                self._running += 1  # on the waiter's behalf: it runs as soon as it wakes
                event.set()


def give_turns_up_during_http(turns: Turns) -> None:
    """Make urllib's default opener — the one slack_sdk's Web API and response_url
    clients use unless given their own SSL context or a proxy — wait for each answer
    without the turn. (urllib's handler classes are its extension point for this.)"""

    class _HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> HTTPResponse:
            with turns.given_up():
                return super().http_open(req)

    class _HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> HTTPResponse:
            with turns.given_up():
                return super().https_open(req)

    opener: Any = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)
    urllib.request.install_opener(opener)
