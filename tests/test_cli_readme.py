"""The README's first hour, as written: after `./scripts/run sandbox --demo` the reader
can put `milestone-bot` on the PATH with the line the README gives, and export what they
did in the sandbox with the README's two lines."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import missing_dependency
from tests.test_cli import SETTINGS_VARS

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
ACTIVATE = ". .venv/bin/activate"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def section(title: str) -> str:
    """The README's text under the heading `title`, up to the next heading of its level or
    higher (lines in code blocks are never headings)."""
    lines = README.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"#+ {title}\n", line))
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    body, fenced = [], False
    for line in lines[start + 1 :]:
        fenced ^= line.startswith("```")
        heading = re.match(r"(#+) ", line)
        if not fenced and heading and len(heading[1]) <= level:
            break
        body.append(line)
    return "".join(body)


def shell_lines(text: str) -> list[str]:
    """The commands of the ```sh blocks in `text`, without their comments."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


def shell() -> dict[str, str]:
    """An environment like a fresh terminal's: no bot settings, no virtualenv on PATH."""
    venv = REPO_ROOT / ".venv"
    if not (venv / "bin" / "milestone-bot").exists():
        missing_dependency(
            "the README's `milestone-bot` needs the .venv that ./scripts/run creates",
            fix=f"{REPO_ROOT / 'scripts' / 'run'} --help",
        )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SETTINGS_VARS + PROXY_VARS + ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(venv))
    )
    return env


def run_in_repo_shell(script: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`script` in bash, in `cwd`, after the README's activation line run in the repository."""
    activate = f"cd {shlex.quote(str(REPO_ROOT))} && {ACTIVATE} && cd {shlex.quote(str(cwd))}"
    return subprocess.run(
        ["bash", "-c", f"{activate} && {script}"],
        env=shell(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_says_how_to_put_milestone_bot_on_the_path_before_using_it() -> None:
    quick_start = section("Quick start")
    first_command = quick_start.index("./scripts/run sandbox --demo")
    activation = quick_start.index(ACTIVATE)
    assert first_command < activation, "say it after the command that creates .venv"
    assert activation < quick_start.index("milestone-bot --help")
    command_line = shell_lines(section("Command line"))
    assert command_line[:2] == [ACTIVATE, "milestone-bot --help"]


def test_milestone_bot_help_works_after_the_readmes_activation_line(tmp_path: Path) -> None:
    done = run_in_repo_shell("command -v milestone-bot && milestone-bot --help", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    where, *usage = done.stdout.splitlines()
    assert where == str(REPO_ROOT / ".venv" / "bin" / "milestone-bot")
    help_text = "\n".join(usage)
    for command in ("serve", "worker", "sandbox", "export", "ledger", "outbox", "manifest"):
        assert command in help_text
    assert done.stderr == ""


def test_the_readmes_lines_export_what_was_done_in_the_sandbox(tmp_path: Path) -> None:
    lines = shell_lines(section("Command line"))
    [sandbox_line] = [line for line in lines if " sandbox " in line]
    [export_line] = [line for line in lines if line.endswith(" export")]
    assert (
        sandbox_line.startswith("milestone-bot sandbox") and "--db sandbox.sqlite3" in sandbox_line
    )
    assert export_line == "DATABASE_URL=sqlite:///sandbox.sqlite3 milestone-bot export"

    # The reader's first terminal: the sandbox, as the README starts it (here on a free port
    # and without a browser). Its log goes to a file, so a full pipe never stops it.
    work, log = tmp_path / "work", tmp_path / "sandbox.log"
    work.mkdir()
    activate = f"cd {shlex.quote(str(REPO_ROOT))} && {ACTIVATE} && cd {shlex.quote(str(work))}"
    with log.open("w") as log_file:
        sandbox = subprocess.Popen(
            ["bash", "-c", f"{activate} && exec {sandbox_line} --port 0 --no-browser"],
            env=shell(),
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    try:
        assert sandbox.stdout is not None
        deadline = time.monotonic() + 60
        said = []
        while not said or not said[-1].startswith("Open http://"):
            line = sandbox.stdout.readline()
            if not line or time.monotonic() > deadline:
                pytest.fail(f"the sandbox did not start: {said}\n{log.read_text()}")
            said.append(line.strip())

        # The second terminal: the README's export line, while the sandbox runs.
        while_running = run_in_repo_shell(export_line, cwd=work)
    finally:
        sandbox.send_signal(signal.SIGINT)
        try:
            sandbox.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sandbox.kill()
            sandbox.wait()
    # And after Ctrl-C: the file was kept.
    after_stop = run_in_repo_shell(export_line, cwd=work)

    for exported in (while_running, after_stop):
        assert exported.returncode == 0, exported.stderr
        assert exported.stderr == "milestone-bot: reading sqlite:///sandbox.sqlite3\n"
    assert while_running.stdout == after_stop.stdout
    titles = {c["title"] for c in json.loads(while_running.stdout)["contracts"]}
    assert titles == {"Brand refresh", "Website redesign"}  # the demo's two contracts
