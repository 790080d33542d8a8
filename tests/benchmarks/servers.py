"""Real server processes for the benchmarks, and the memory they use.

`milestone-bot serve` (the console script, or `python -m bot.cli` without it) and the
bare bolt app run as separate processes on loopback ports, configured through the
environment exactly as an operator would. Both are gunicorn: the process started here is
the master, its children are the ASGI workers (`Server.master`, `Server.workers`), so
CPU can be charged to each role. A sampler thread reads the resident set size (RSS) of
each server's whole process tree with psutil every 100 ms, and its proportional set size
(PSS) every second, and keeps the peaks, per server and per phase of the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["SKIP_SLACK_SDK_WARNING"] = "1"
    env.update(extra)
    return env


def serve_command() -> tuple[list[str], str]:
    """The `milestone-bot` console script beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("milestone-bot")
    if beside.exists():
        return [str(beside)], "milestone-bot serve"
    found = shutil.which("milestone-bot")
    if found:
        return [found], "milestone-bot serve"
    return [sys.executable, "-m", "bot.cli"], "python -m bot.cli serve"


def serve_workers() -> int:
    """`milestone-bot serve`'s default number of workers, read from its own parser, so
    the bare app is served by as many as the bot."""
    from bot.cli import _parser

    return int(_parser().parse_args(["serve"]).workers)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    peak_tree: int = 0  # bytes
    peak_largest: int = 0  # the largest single process
    peak_pss: int = 0  # proportional set size of the tree: shared pages counted once
    phase_peaks: dict[str, int] = field(default_factory=dict)

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def master(self) -> list[psutil.Process]:
        """gunicorn's arbiter: the process started here."""
        return self.tree()[:1]

    def workers(self) -> list[psutil.Process]:
        """The ASGI workers: the master's children."""
        return self.tree()[1:]

    def rss(self) -> tuple[int, int]:
        sizes = []
        for member in self.tree():
            try:
                sizes.append(member.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        return sum(sizes), max(sizes, default=0)

    def pss(self) -> int:
        """The tree's memory with each shared page split among its sharers (smaps)."""
        total = 0
        for member in self.tree():
            try:
                total += member.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def wait_until_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                with opener.open(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for member in reversed(self.tree()):
                    member.kill()
                self.process.wait(timeout=10)


def _start(name: str, command: list[str], env: dict[str, str], workdir: Path, port: int) -> Server:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, process, port, log_path)
    try:
        server.wait_until_healthy()
    except BaseException:
        server.stop()
        raise
    return server


def start_serve(
    name: str, database_url: str, api_url: str, workdir: Path, *, sweep_seconds: float = 30.0
) -> Server:
    """`milestone-bot serve` with its defaults (gunicorn, serve's default number of ASGI
    workers, each building the bot and running its scheduler)."""
    port = free_port()
    command, _ = serve_command()
    env = clean_environment(
        {
            "DATABASE_URL": database_url,
            "SLACK_API_URL": api_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SWEEP_SECONDS": str(sweep_seconds),
        }
    )
    extra = os.environ.get("MILESTONE_BENCH_SERVE_ARGS", "").split()
    return _start(name, [*command, "serve", "--port", str(port), *extra], env, workdir, port)


def start_bare(name: str, api_url: str, workdir: Path, *, workers: int) -> Server:
    """The bare bolt app on `workers` ASGI workers (tests/benchmarks/bare_app.py)."""
    port = free_port()
    env = clean_environment(
        {
            "SLACK_API_URL": api_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        }
    )
    command = [sys.executable, "-m", "tests.benchmarks.bare_app", "--port", str(port)]
    command += ["--workers", str(workers)]
    return _start(name, command, env, workdir, port)


class RssSampler:
    """Samples every server's process-tree RSS (and, every tenth time, its PSS) until
    stopped; keeps peaks."""

    def __init__(self, servers: list[Server], every: float = 0.1) -> None:
        self.servers = servers
        self.every = every
        self.phase = "start-up"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.every):
            tick += 1
            for server in list(self.servers):
                if tick % 10 == 0:  # reading smaps costs more than the RSS counter
                    server.peak_pss = max(server.peak_pss, server.pss())
                tree, largest = server.rss()
                server.peak_tree = max(server.peak_tree, tree)
                server.peak_largest = max(server.peak_largest, largest)
                server.phase_peaks[self.phase] = max(server.phase_peaks.get(self.phase, 0), tree)
