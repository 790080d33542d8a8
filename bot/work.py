"""The work process: where a listener's work runs, so the process that acks stays free.

Every listener is an ack function plus a lazy function (bolt's own split, the one its
AWS Lambda adapter uses). In `serve` (HTTP) each web worker starts one work process;
the web worker verifies the request, acks it, and hands the lazy part to the work
process over a pipe, writing nothing to the database first. The work process holds its
own copy of the app and runs the lazy function by dispatching the same request, marked
lazy-only, to it — the same listeners, the same middleware (the replay check included),
the same error policy. It also runs the scheduler, at a lower scheduling priority than
the web worker. So the interpreter that answers Slack within its 3 seconds never waits
behind a card being rendered, and a slow Slack call never delays an ack. Forms are the
exception: their errors travel in the ack, so the web worker runs them itself. Inside
the work process, jobs take turns at the interpreter (bot/turns.py).

What is lost if a process dies is the same as with threads: a request whose ack was
sent but whose work had not yet committed, including a job handed over in the instant
the work process died (the person sees no confirmation and can click again; a click
already applied is reported as done). If the work process dies, the next hand-over
starts a new one.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from slack_bolt.lazy_listener import LazyListenerRunner
from slack_bolt.request import BoltRequest

from bot.settings import Settings

log = logging.getLogger(__name__)

LAZY_ONLY = "x-slack-bolt-lazy-only"
LAZY_NAME = "x-slack-bolt-lazy-function-name"
WORK_NICENESS = 5  # the scheduling priority of the work process, below the web worker's
WORK_MAIN = "import sys; from bot.work import serve_jobs; serve_jobs(int(sys.argv[1]))"


@dataclass(frozen=True)
class Job:
    """One lazy listener to run: the request as bolt received it, and which function."""

    function: str
    body: str | dict[str, Any]
    headers: dict[str, list[str]]
    mode: str

    @classmethod
    def of(cls, request: BoltRequest) -> Job:
        assert request.lazy_function_name is not None
        body: str | dict[str, Any] = request.raw_body if request.mode == "http" else request.body
        headers = {name: list(values) for name, values in request.headers.items()}
        return cls(request.lazy_function_name, body, headers, request.mode)

    def request(self) -> BoltRequest:
        headers: dict[str, str | Sequence[str]] = {
            **self.headers,
            LAZY_ONLY: ["1"],
            LAZY_NAME: [self.function],
        }
        return BoltRequest(body=self.body, headers=headers, mode=self.mode)


@dataclass(frozen=True)
class WorkSpec:
    """What the work process needs to build its app (pickled to the new interpreter)."""

    settings: Settings
    bot_token: str
    scheduler: bool
    # Jobs in flight. Only a couple run Python at a time (bot/turns.py); the rest wait,
    # mostly for Slack, so this is well above the clicks expected in flight at once: a
    # job that finds no thread free waits for a whole other job to finish.
    threads: int = 32
    log_format: str = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class WorkProcess:
    """The web worker's side: starts the work process and hands jobs to it."""

    spec: WorkSpec
    _process: subprocess.Popen[bytes] | None = None
    _pipe: Connection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WorkProcess:
        with self._lock:
            self._start()
        return self

    def _start(self) -> None:
        # A fresh interpreter, not a fork (the web worker has threads), started as a
        # plain child: multiprocessing's spawn would also start its resource tracker, an
        # interpreter more (~7 MB) that nothing here needs. The spec goes first on the pipe.
        reader, writer = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", WORK_MAIN, str(reader)], pass_fds=(reader,)
            )
        except BaseException:
            os.close(writer)
            raise
        finally:
            os.close(reader)  # the child holds the reading end: EOF there when we go away
        pipe = Connection(writer, readable=False)
        pipe.send(self.spec)
        self._process, self._pipe = process, pipe

    def submit(self, job: Job) -> None:
        with self._lock:
            for attempt in (1, 2):
                if self._pipe is None or self._process is None or self._exited():
                    if self._process is not None:
                        log.error("the work process exited (%s); starting a new one", self._exit())
                    self._start()
                assert self._pipe is not None
                try:
                    self._pipe.send(job)
                    return
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    if attempt == 2:
                        raise
                    self._pipe = None

    def _exited(self) -> bool:
        """The process is gone (reaped here, or by whoever else reaped it)."""
        assert self._process is not None
        return self._process.poll() is not None

    def _exit(self) -> str:
        code = self._process.returncode if self._process is not None else None
        return f"exit code {code}"

    def stop(self, *, timeout: float = 20.0) -> None:
        """Close the pipe: the work process finishes what it holds, then exits."""
        with self._lock:
            if self._pipe is not None:
                self._pipe.close()
                self._pipe = None
            if self._process is not None:
                try:
                    self._process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.error("the work process did not finish within %ss; stopping it", timeout)
                    self._process.terminate()
                    try:
                        self._process.wait(5)
                    except subprocess.TimeoutExpired:
                        self._process.kill()
                        self._process.wait()
                self._process = None


class ProcessLazyListenerRunner(LazyListenerRunner):
    """Bolt's lazy listeners, started in the work process instead of a thread."""

    def __init__(self, logger: logging.Logger, work: WorkProcess) -> None:
        self.logger = logger
        self.work = work

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        self.work.submit(Job.of(request))


def serve_jobs(fd: int) -> None:
    """The work process's entry (WORK_MAIN): its spec, then jobs, from the pipe `fd`."""
    pipe = Connection(fd, writable=False)
    spec = pipe.recv()
    assert isinstance(spec, WorkSpec)
    run_work_process(spec, pipe)


def run_work_process(spec: WorkSpec, pipe: Connection) -> None:
    """The work process's main: build the app, run jobs until the pipe closes."""
    logging.basicConfig(level=spec.settings.log_level, format=spec.log_format)
    # Acks first: when both want the CPU, the web worker (Slack's 3 seconds) goes first.
    os.nice(WORK_NICENESS)
    from bot.app import Runtime, create_app
    from bot.ticker import start_ticker
    from bot.turns import Turns, give_turns_up_during_http

    # Jobs run their Python in turns, a first answer to Slack ahead of the rest, and
    # wait for Slack without one.
    turns = Turns()
    give_turns_up_during_http(turns)
    runtime = Runtime.from_settings(spec.settings, migrate=False)
    app, delivery = create_app(
        runtime, bot_token=spec.bot_token, signing_secret=None, verified=True, turns=turns
    )
    scheduler = start_ticker(runtime, delivery) if spec.scheduler else None
    pool = ThreadPoolExecutor(max_workers=spec.threads, thread_name_prefix="work")

    def run(job: Job) -> None:
        try:
            with turns.taken():
                app.dispatch(job.request())
        except Exception:  # noqa: BLE001 - bolt's error handler ran already; keep going
            log.exception("work on %s failed", job.function)

    try:
        while True:
            try:
                job = pipe.recv()
            except (EOFError, OSError):
                break  # the web worker is gone or stopping
            pool.submit(run, job)
    finally:
        pool.shutdown(wait=True)
        delivery.close()
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        runtime.engine.dispose()
