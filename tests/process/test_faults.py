"""`serve` under the faults an operator meets: the database cut or losing a commit's
answer, the token refused for a while, Slack rate-limiting, posts whose answer is lost,
hostile clients. Each is a real `serve` process on PostgreSQL (through a proxy that
fails on demand, tests/process/netproxy.py) talking to the Slack emulator.

The rule under test: what a person is told matches what happened, nothing acked is
lost, and nothing is shown or moved twice.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from domain import services
from domain.db import upgrade_schema
from domain.model import DeliveryHold, MessageRef, OutboxMessage, OutboxState
from sandbox.emulator import Response, SlackDriver, SlackEmulator
from tests.process.conftest import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    BotProcess,
    Launcher,
    driver_for,
    wait_until,
)
from tests.process.netproxy import TcpProxy
from tests.process.test_processes import Database, message_text, reply_to

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DUE = (date.today() + timedelta(days=60)).isoformat()


@dataclass
class Rig:
    """A serve process on PostgreSQL through a proxy, its Slack, and a driver."""

    slack: SlackEmulator
    proxy: TcpProxy
    database: Database
    launcher: Launcher
    direct_url: str
    process: BotProcess | None = None

    def start(self, **settings: str) -> BotProcess:
        env = self.launcher.env(self.slack, self.proxied_url, **settings)
        self.process = self.launcher.serve("--workers", "1", env=env)
        self.process.wait_healthy()
        return self.process

    @property
    def proxied_url(self) -> str:
        url = make_url(self.direct_url).set(host="127.0.0.1", port=self.proxy.port)
        return url.render_as_string(hide_password=False)

    @property
    def driver(self) -> SlackDriver:
        assert self.process is not None
        return driver_for(self.slack, self.process)

    def say(self, user: str, text: str, *, channel: str = CHANNEL) -> Response:
        return self.driver.command(user, text, channel_id=channel)

    def contract_card_posted(self, contract_id: int) -> None:
        wait_until(
            lambda: self.card_ts(f"contract:{contract_id}"),
            timeout=20,
            what=f"contract {contract_id}'s card",
        )

    def card_ts(self, subject: str) -> str | None:
        with self.database.sessions() as session:
            ts = session.scalar(select(MessageRef.ts).where(MessageRef.subject == subject))
        return ts or None


@pytest.fixture
def rig(launcher: Launcher, slack: SlackEmulator, fresh_postgres_url: str) -> Iterator[Rig]:
    target = make_url(fresh_postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    database = Database(fresh_postgres_url)
    upgrade_schema(database.engine)
    try:
        yield Rig(slack, proxy, database, launcher, fresh_postgres_url)
    finally:
        launcher.close()
        proxy.close()
        database.close()


def seed_negotiating(database: Database, *, channel: str = CHANNEL) -> int:
    with database.sessions() as session:
        return services.create_contract(
            session,
            title=f"Site in {channel}",
            team_id="T0001",
            channel_id=channel,
            creator_id=CLIENT,
            client_id=CLIENT,
            freelancer_id=FREELANCER,
            now=datetime.now(UTC),
        ).contract_id


def milestone_titles(database: Database, contract_id: int) -> list[str]:
    return [m["title"] for m in database.contract(contract_id)["milestones"]]


def announcements_of(slack: SlackEmulator, text: str, channel: str = CHANNEL) -> int:
    """Channel announcements (not cards) that mention `text`."""
    return sum(
        1
        for m in slack.messages(channel, include_replies=False)
        if text in message_text(m) and any(b.get("block_id") == "announce" for b in m.blocks)
    )


# --- the database --------------------------------------------------------------------


def test_a_commit_whose_answer_is_lost_is_found_applied_and_told_as_done_once(rig: Rig) -> None:
    contract_id = seed_negotiating(rig.database)
    rig.start(SWEEP_SECONDS="3600")
    rig.contract_card_posted(contract_id)
    rig.proxy.drop_commit_of(b"INSERT INTO request_receipt")  # the next change loses its answer

    answer = reply_to(rig.slack, rig.say(FREELANCER, f'add "Lost answer" 300 {DUE}'))

    assert rig.proxy.commits_dropped == 1
    assert rig.process is not None
    assert "was committed although the commit did not answer" in rig.process.stderr
    assert "Milestone 1 (Lost answer) added" in answer, answer
    assert milestone_titles(rig.database, contract_id) == ["Lost answer"]
    wait_until(
        lambda: announcements_of(rig.slack, "Lost answer") >= 1,
        timeout=10,
        what="the announcement",
    )
    time.sleep(1)  # a second copy would be here by now
    assert announcements_of(rig.slack, "Lost answer") == 1
    # and the bot goes on as before
    assert "added" in reply_to(rig.slack, rig.say(FREELANCER, f'add "Next" 200 {DUE}'))
    assert milestone_titles(rig.database, contract_id) == ["Lost answer", "Next"]


def test_a_database_cut_mid_traffic_tells_each_person_the_truth_and_recovers_alone(
    rig: Rig,
) -> None:
    channels = [f"C0CUT{i}" for i in range(3)]
    for channel in channels:
        rig.slack.add_channel(channel, channel.lower(), members=[CLIENT, FREELANCER])
    contracts = {channel: seed_negotiating(rig.database, channel=channel) for channel in channels}
    rig.start(SWEEP_SECONDS="1")
    for contract_id in contracts.values():
        rig.contract_card_posted(contract_id)
    told: list[tuple[str, str, str]] = []  # (channel, title, answer)
    lock = threading.Lock()

    def traffic(channel: str) -> None:
        for n in range(20):
            title = f"{channel}-{n:02d}"
            response = rig.say(FREELANCER, f'add "{title}" 100 {DUE}', channel=channel)
            answer = reply_to(rig.slack, response, timeout=20) if response.status == 200 else ""
            with lock:
                told.append((channel, title, answer))
            time.sleep(0.4)

    threads = [threading.Thread(target=traffic, args=(c,)) for c in channels]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    with rig.proxy.down():
        time.sleep(8.0)
    for thread in threads:
        thread.join(timeout=120)

    refused = [t for t in told if "nothing changed" in t[2].lower()]
    added = [t for t in told if "added" in t[2]]
    assert refused, "the cut was felt"
    assert len(refused) + len(added) == len(told), [t for t in told if t not in refused + added]
    for channel, contract_id in contracts.items():
        titles = milestone_titles(rig.database, contract_id)
        assert len(titles) == len(set(titles)), "something was applied twice"
        assert {t for c, t, _ in added if c == channel} == set(titles)
    after_cut = [t for t in told if t in added][-3:]
    assert after_cut, "the bot recovered without a restart"
    wait_until(lambda: outbox_settled(rig.database), timeout=30, what="the outbox to drain")
    for channel, title, _ in added:
        assert announcements_of(rig.slack, title, channel=channel) == 1, title


def outbox_settled(database: Database) -> bool:
    with database.sessions() as session:
        waiting = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.state.in_([OutboxState.PENDING, OutboxState.HELD]))
        )
    return waiting == 0


# --- Slack ---------------------------------------------------------------------------


def test_a_refused_token_holds_the_workspace_and_what_waited_arrives_once_it_works(
    rig: Rig,
) -> None:
    contract_id = seed_negotiating(rig.database)
    rig.start(SWEEP_SECONDS="30")
    rig.contract_card_posted(contract_id)
    rig.slack.fail_for("*", 12, error="token_revoked")
    outage_began = time.monotonic()

    for n in range(4):  # the people are answered: response_urls need no token
        answer = reply_to(rig.slack, rig.say(CLIENT, f'add "During outage {n}" 100 {DUE}'))
        assert f"During outage {n}" in answer

    def held() -> bool:
        with rig.database.sessions() as session:
            return session.get(DeliveryHold, "team:T0001") is not None

    wait_until(held, timeout=10, what="the workspace to be held")
    with rig.database.sessions() as session:
        dead = session.scalar(select(func.count()).where(OutboxMessage.state == OutboxState.DEAD))
    assert dead == 0
    card_ts = rig.card_ts(f"contract:{contract_id}")
    assert card_ts is not None
    wait_until(
        lambda: "During outage 3" in message_text(rig.slack.message(CHANNEL, card_ts)),  # type: ignore[arg-type]
        timeout=60,
        what="the card to show what was added during the outage",
    )
    assert time.monotonic() - outage_began < 45
    wait_until(lambda: outbox_settled(rig.database), timeout=30, what="the outbox to drain")
    for n in range(4):
        assert announcements_of(rig.slack, f"During outage {n}") == 1
    refused = [c for c in rig.slack.calls if c.error == "token_revoked"]
    assert len(refused) < 15, f"{len(refused)} calls while the token was refused: it spun"


def test_a_rate_limited_card_update_and_post_arrive_within_three_seconds(rig: Rig) -> None:
    contract_id = seed_negotiating(rig.database)
    rig.start(SWEEP_SECONDS="30")  # the next sweep is far: only the wake-up can be on time
    rig.contract_card_posted(contract_id)
    card_ts = rig.card_ts(f"contract:{contract_id}")
    assert card_ts is not None

    rig.slack.fail_next("chat.update", status=429, retry_after=1, channel=CHANNEL)
    began = time.monotonic()
    reply_to(rig.slack, rig.say(CLIENT, f'add "Rate limited" 100 {DUE}'))
    wait_until(
        lambda: "Rate limited" in message_text(rig.slack.message(CHANNEL, card_ts)),  # type: ignore[arg-type]
        timeout=10,
        what="the rate-limited card update",
    )
    assert time.monotonic() - began < 3.0

    rig.slack.fail_next("chat.postMessage", status=429, retry_after=1, channel=CHANNEL)
    began = time.monotonic()
    reply_to(rig.slack, rig.say(CLIENT, f'add "Posted later" 100 {DUE}'))
    wait_until(
        lambda: announcements_of(rig.slack, "Posted later") == 1,
        timeout=10,
        what="the rate-limited announcement",
    )
    assert time.monotonic() - began < 3.0


def test_posts_whose_answer_is_lost_are_found_and_never_shown_twice(rig: Rig) -> None:
    contract_id = seed_negotiating(rig.database)
    rig.start(SWEEP_SECONDS="2")
    rig.contract_card_posted(contract_id)
    for party in (CLIENT, FREELANCER):
        reply_to(rig.slack, rig.say(party, f'add "M{party}" 100 {DUE}'))
    for party in (CLIENT, FREELANCER):
        reply_to(rig.slack, rig.say(party, "start"))

    # The change request card is posted, but its answer comes after the bot's timeout.
    rig.slack.answer_late("chat.postMessage", 12, channel=CHANNEL)
    began = time.monotonic()
    answer = reply_to(rig.slack, rig.say(FREELANCER, "edit 1 amount=150"))
    assert "change request #1" in answer.lower()
    assert time.monotonic() - began < 3.0, "the proposer's answer waited behind the slow post"
    wait_until(lambda: rig.card_ts("request:1"), timeout=40, what="the request card to be found")
    cards = [m for m in rig.slack.messages(CHANNEL) if "Accept" in message_text(m)]
    assert len(cards) == 1, [message_text(m)[:80] for m in cards]

    # An announcement whose connection drops after Slack posted it.
    rig.slack.drop_after_apply("chat.postMessage", channel=CHANNEL)
    reply_to(rig.slack, rig.say(CLIENT, "decline 1"))
    wait_until(lambda: outbox_settled(rig.database), timeout=40, what="the outbox to drain")
    declined = [
        m
        for m in rig.slack.messages(CHANNEL, include_replies=False)
        if any(b.get("block_id") == "announce" for b in m.blocks)
        and "declined" in message_text(m).lower()
    ]
    assert len(declined) == 1, [message_text(m)[:80] for m in declined]


# --- hostile clients -------------------------------------------------------------------


def test_slow_clients_and_a_huge_body_do_not_delay_a_signed_request(rig: Rig) -> None:
    seed_negotiating(rig.database)
    process = rig.start()
    assert process.url is not None
    port = int(process.url.rsplit(":", 1)[1])
    slow: list[socket.socket] = []
    stop = threading.Event()

    def trickle(sock: socket.socket, data: bytes) -> None:
        for byte in data:
            if stop.wait(1.0):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return

    header = b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nX-Padding: " + b"a" * 200
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", port))
        slow.append(sock)
        threading.Thread(target=trickle, args=(sock, header), daemon=True).start()
    huge = socket.create_connection(("127.0.0.1", port))
    slow.append(huge)
    huge.sendall(
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {5 * 1024 * 1024}\r\n\r\n".encode()
        + b"x" * 65536
    )
    try:
        time.sleep(2.0)  # they all hold their connections now
        huge.settimeout(5)
        status_line = huge.recv(200).split(b"\r\n", 1)[0]
        assert b" 413 " in status_line + b" ", status_line

        timings = []
        for _ in range(5):
            began = time.monotonic()
            response = rig.say(CLIENT, "help")
            timings.append(time.monotonic() - began)
            assert response.status == 200
        assert max(timings) < 1.0, timings
    finally:
        stop.set()
        for sock in slow:
            sock.close()
