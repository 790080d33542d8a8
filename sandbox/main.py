"""`milestone-bot sandbox`: start everything, print the page's address, run until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings

DEFAULT_PORT = 3001


def run_sandbox(
    settings: Settings,
    *,
    port: int = DEFAULT_PORT,
    database: str | None = None,
    demo: bool = False,
    browser: bool = True,
) -> int:
    # The ticker runs every 2 s and the schema is set up at start: their INFO lines would
    # drown the one line that matters (the page's address).
    for name in ("apscheduler", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from .demo import seed_demo
    from .sandbox import Sandbox
    from .web import PageServer

    out = sys.stdout
    sandbox = Sandbox(settings, database=Path(database) if database else None)
    try:
        page = PageServer(sandbox, port=port)
    except OSError as error:
        sys.stderr.write(
            f"milestone-bot: cannot serve the sandbox on 127.0.0.1:{port} ({error.strerror}); "
            "pick another port with --port N (0 = any free port)\n"
        )
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        sandbox.start()
        where = database or "a temporary SQLite file (deleted on exit)"
        out.write(f"milestone-bot sandbox: the real bot and a local Slack; data in {where}\n")
        if demo:
            out.write("Setting up the demo contract (through the bot, as its people would)…\n")
            out.flush()
            if not seed_demo(sandbox):
                out.write("The database already holds contracts, so --demo added nothing.\n")
        out.write(f"\n  Open {page.url}\n\n(Ctrl-C to stop)\n")
        out.flush()
        if browser and _has_display():
            webbrowser.open(page.url)
        stop.wait()
    finally:
        out.write("Stopping the sandbox…\n")
        out.flush()
        page.stop()
        sandbox.stop()
    return 0


def _has_display() -> bool:
    """Open a browser only where a window can appear (never a text browser in this tty)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
