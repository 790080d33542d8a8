"""The sandbox's parts: typed commands, the clock, the demo, the page's emoji, the CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import _parser
from domain.money import format_amount
from sandbox.browser import WIDE
from sandbox.clock import OffsetClock
from sandbox.demo import AGENCY_CONTRACT, CONTRACT, seed_demo, waiting_request
from sandbox.people import CLIENT, FREELANCER, MANAGER, MEMBER, OUTSIDER, person
from sandbox.sandbox import Sandbox
from sandbox.typed import NotACommand, escape_like_slack, split_command
from tests.sandbox.conftest import PROXY_VARS, SETTINGS_VARS, contracts, png_size

REPO = Path(__file__).resolve().parents[2]


def test_typed_text_is_escaped_and_mentions_become_ids_like_slack_does() -> None:
    text = 'new "Tom & Jerry <3" client=@carol freelancer=@Fred, see #deals @nobody x@carol.com'
    assert escape_like_slack(
        text, users={"carol": "U1", "fred": "U2"}, channels={"deals": "C1"}
    ) == (
        'new "Tom &amp; Jerry &lt;3" client=<@U1|carol> freelancer=<@U2|fred>, '
        "see <#C1|deals> @nobody x@carol.com"
    )


def test_only_the_milestone_command_is_accepted() -> None:
    assert split_command("  /milestone   add x ") == ("/milestone", "add x")
    assert split_command("/MILESTONE") == ("/milestone", "")
    with pytest.raises(NotACommand):
        split_command("hello")
    with pytest.raises(NotACommand):
        split_command("/milestones help")


@pytest.mark.parametrize(
    ("typed", "answer", "retype"),
    [
        (
            "/milestne help",
            "/milestne is not a valid command. Did you mean /milestone help?",
            "/milestone help",
        ),
        (
            '/Milestones add "Build"  2500',
            '/Milestones is not a valid command. Did you mean /milestone add "Build"  2500?',
            '/milestone add "Build"  2500',
        ),
        (
            "milestone status",
            "The sandbox has no plain chat messages, only the app's slash command. "
            "Did you mean /milestone status?",
            "/milestone status",
        ),
        (
            "/giphy cats",
            "/giphy is not a valid command. This workspace has /milestone: try /milestone help.",
            None,
        ),
        (
            "hello team",
            "The sandbox has no plain chat messages, only the app's slash command. "
            "This workspace has /milestone: try /milestone help.",
            None,
        ),
    ],
)
def test_an_unknown_command_is_answered_like_slack_with_the_closest_command_to_retype(
    typed: str, answer: str, retype: str | None
) -> None:
    with pytest.raises(NotACommand) as refused:
        split_command(typed)
    assert str(refused.value) == answer
    assert refused.value.suggestion == retype
    assert "`" not in answer, "plain text: the page shows it as it is"


def test_the_offset_clock_moves_only_forward() -> None:
    base = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = OffsetClock(lambda: base)
    assert clock() == base and clock.offset == timedelta(0)
    assert clock.advance(timedelta(days=7)) == base + timedelta(days=7)
    assert clock.epoch() == (base + timedelta(days=7)).timestamp()
    with pytest.raises(ValueError):
        clock.advance(timedelta(0))
    with pytest.raises(ValueError):
        clock.advance(timedelta(days=-1))


def test_every_emoji_the_bot_uses_has_a_picture_in_the_page() -> None:
    used = set()
    for path in (REPO / "handlers").rglob("*.py"):
        used |= set(re.findall(r":([a-z0-9_+]+):", path.read_text(encoding="utf-8")))
    page = (REPO / "sandbox" / "static" / "app.js").read_text(encoding="utf-8")
    table = page[page.index("const EMOJI = {") : page.index("};", page.index("const EMOJI"))]
    known = set(re.findall(r"'?([a-z0-9_+]+)'?: '", table))
    assert used, "the bot uses emoji"
    assert used <= known, f"add to EMOJI in app.js: {sorted(used - known)}"


def test_the_demo_is_typed_through_the_bot(sandbox: Sandbox) -> None:
    assert seed_demo(sandbox)
    agency, contract = contracts(sandbox)
    assert contract["title"] == CONTRACT and contract["status"] == "active"
    assert [m["status"] for m in contract["milestones"]] == ["funded", "pending"]
    (request,) = contract["change_requests"]
    assert request["status"] == "pending" and request["proposed_by"] == FREELANCER.id
    carol = sandbox.state(CLIENT.id)
    assert carol["typed"][0]["text"].startswith(f'/milestone new "{AGENCY_CONTRACT}"')
    # Every command was answered, and so was the click on End contract that `end` offers.
    assert len(carol["ephemerals"]) == len(carol["typed"]) + 1
    assert not seed_demo(sandbox), "a second demo contract would make commands ambiguous"
    assert len(contracts(sandbox)) == 2
    # The agency contract is over, so commands in the channel mean the one in progress.
    assert agency["status"] == "closed"
    status = sandbox.say(FREELANCER.id, "/milestone status")
    assert CONTRACT in status and "several open contracts" not in status


def test_the_demo_shows_what_an_agency_manager_and_a_member_may_do(sandbox: Sandbox) -> None:
    seed_demo(sandbox)
    agency = contracts(sandbox)[0]
    assert agency["title"] == AGENCY_CONTRACT
    assert agency["agency"] == {
        "name": "Pixel & Co",
        "manager_ids": [MANAGER.id],
        "member_ids": [MEMBER.id],
    }
    (proposal,) = agency["change_requests"]
    assert (proposal["proposed_by"], proposal["status"]) == (MANAGER.id, "accepted")
    assert [m["status"] for m in agency["milestones"]] == ["released"]
    milo = sandbox.state(MEMBER.id)
    assert [t["text"].split()[1] for t in milo["typed"]] == ["edit", "submit"]
    assert [e["text"] for e in milo["ephemerals"]] == [
        f"Only an agency manager (<@{MANAGER.id}>) can propose changes.",
        "Submitted milestone 1 (Logo and colours) for review.",
    ]
    # Only Milo is told; the channel shows what the manager and the member did.
    assert "Only an agency manager" not in str(sandbox.state(CLIENT.id)["ephemerals"])
    channel = str(sandbox.state(OUTSIDER.id)["messages"])
    assert "Two more logo variants" in channel and f"<@{MEMBER.id}>" in channel


def test_the_readme_says_what_the_demo_and_its_picture_show(sandbox: Sandbox) -> None:
    """README, Quick start: the walk-through's first lines and the picture's caption."""
    seed_demo(sandbox)
    request = waiting_request(sandbox)
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    proposer = person(request.proposed_by)
    assert proposer is not None and proposer is not CLIENT

    def dollars(minor: int) -> str:
        return format_amount(minor, request.currency).removesuffix(".00")

    said = (
        f"{proposer.real_name.split()[0]}'s change request #{request.number} "
        f"(milestone {request.milestone} from {dollars(request.amount_before_minor)} "
        f"to {dollars(request.amount_after_minor)})"
    )
    assert f"![The sandbox: Carol, the client, sees {said} with Accept / Decline" in readme
    (contract,) = [c for c in contracts(sandbox) if c["status"] == "active"]
    funded = [m["number"] for m in contract["milestones"] if m["status"] == "funded"]
    assert funded == [1]
    assert (
        f"The demo contract *{request.contract_title}* is active, milestone 1 is funded, "
        f"and {said} waits for you." in readme
    )
    assert f"*{AGENCY_CONTRACT}* with the Pixel & Co agency" in readme
    assert png_size(REPO / "docs" / "sandbox.png") == (WIDE.width, WIDE.height)


def test_the_cli_has_a_sandbox_command() -> None:
    args = _parser().parse_args(["sandbox", "--port", "0", "--db", "x.sqlite3", "--demo"])
    assert (args.port, args.db, args.demo, args.no_browser) == (0, "x.sqlite3", True, False)
    assert args.run.__name__ == "_sandbox"


def test_milestone_bot_sandbox_starts_without_tokens_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS + PROXY_VARS}
    env["PYTHONPATH"] = str(REPO)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env["TMPDIR"] = str(scratch)  # where the temporary database goes
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "sandbox", "--port", "0", "--no-browser"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"Open (http://127\.0\.0\.1:\d+/)", line)
            url = found[1] if found else None
        assert url, f"no address printed; stderr: {process.stderr.read() if process.stderr else ''}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as page:
            assert b"milestone-bot" in page.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert not list(work.iterdir()), "nothing written to the working directory"
        assert not list(scratch.iterdir()), "the temporary database is gone"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
