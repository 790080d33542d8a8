"""Turns: in the work process the Python of at most `slots` jobs runs at a time, in the
order they asked, and a job gives its turn up while it waits for Slack.

The jobs of one process share one interpreter lock. Left to it, twenty jobs in flight
all advance together and all finish late: every click waits for every other one, and
the interpreter spends time switching between them. Taking turns, the job that asked
first goes first, so a click's card is updated after the work queued before it, not
after all the work in flight. Waiting for Slack (tens to hundreds of milliseconds over
the internet) is done without a turn, so a slow Slack call never holds the others up;
when its answer arrives the job asks again, behind those already waiting.

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


class Turns:
    def __init__(self, slots: int = TURN_SLOTS, *, patience: float = PATIENCE) -> None:
        self.slots = slots
        self.patience = patience
        self._ready = threading.Condition()
        self._running = 0
        self._waiting: list[int] = []  # tickets, lowest first
        self._tickets = itertools.count()
        self._mine = threading.local()

    @contextmanager
    def taken(self) -> Iterator[None]:
        """Run the body in turn (a job; a pass of the Home thread). Nested: as is."""
        if self._held():
            yield
            return
        self._take()
        try:
            yield
        finally:
            if self._held():
                self._give_back()

    @contextmanager
    def given_up(self) -> Iterator[None]:
        """Wait (for Slack) without the turn, then ask for one again, at the back."""
        if not self._held():
            yield
            return
        self._give_back()
        try:
            yield
        finally:
            self._take()

    @property
    def running(self) -> int:
        """Jobs running now (above `slots` only while someone ran out of patience)."""
        with self._ready:
            return self._running

    @property
    def waiting(self) -> int:
        with self._ready:
            return len(self._waiting)

    def _held(self) -> bool:
        return bool(getattr(self._mine, "held", False))

    def _take(self) -> None:
        with self._ready:
            ticket = next(self._tickets)
            heapq.heappush(self._waiting, ticket)
            self._ready.wait_for(
                lambda: self._running < self.slots and self._waiting[0] == ticket,
                timeout=self.patience,
            )
            if self._waiting[0] == ticket:  # its turn, or out of patience at the front
                heapq.heappop(self._waiting)
            else:  # out of patience behind others
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
            self._running += 1
            self._ready.notify_all()  # the front of the queue changed
        self._mine.held = True

    def _give_back(self) -> None:
        self._mine.held = False
        with self._ready:
            self._running -= 1
            self._ready.notify_all()


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
