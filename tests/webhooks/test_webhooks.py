"""Signed outgoing webhooks: every event to every endpoint, once, signed, retried with
backoff, dead-lettered after the last try; against a real local HTTP receiver."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.webhooks import WebhookSender
from domain import webhooks
from domain.model import EventKind, WebhookDelivery, WebhookState
from tests.conftest import Database
from tests.factories import new_contract
from tests.webhooks.receiver import SECRET, Receiver, receiving
from tests.webhooks.story import event_kinds, walk_every_event

T0 = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)  # after everything the walk does


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


def sender_for(db: Database, clock: Callable[[], datetime], **kwargs: object) -> WebhookSender:
    options: dict[str, object] = {"base_backoff": 10.0, "jitter": lambda: 1.0, "timeout": 1.0}
    options.update(kwargs)
    return WebhookSender(db.sessions, clock, **options)  # type: ignore[arg-type]


def endpoint(db: Database, url: str, secret: str = SECRET) -> int:
    with db.session() as session:
        return webhooks.add_endpoint(session, url=url, secret=secret, now=T0).id


def deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- names and shapes --------------------------------------------------------------------


def test_every_event_kind_has_a_stable_dotted_type_and_a_field_list() -> None:
    assert set(webhooks.TYPES) == set(EventKind)
    assert set(webhooks.FIELDS) == set(EventKind)
    names = list(webhooks.TYPES.values())
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z_]+\.[a-z_]+", name) for name in names)
    assert webhooks.TYPES[EventKind.MILESTONE_RELEASED] == "milestone.released"
    assert webhooks.TYPES[EventKind.CONTRACT_CREATED] == "contract.created"
    assert webhooks.TYPES[EventKind.REQUEST_ACCEPTED] == "change_request.accepted"


def test_every_event_of_two_walked_contracts_reaches_the_receiver_once_signed(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    endpoint(db, receiver.url)
    with db.session() as session:
        contract_ids = walk_every_event(session)
        written = event_kinds(session)

    sent = sender_for(db, clock).send_due()

    assert sent == len(written)
    assert all(r.verified for r in receiver.requests)
    assert {k for _, k in written} == set(EventKind), "the walk misses an event kind"
    assert receiver.types() == set(webhooks.TYPES.values())
    assert receiver.counts() == {f"evt_{event_id}": 1 for event_id, _ in written}
    assert {b["contract_id"] for b in receiver.accepted} == set(contract_ids)
    for contract_id in contract_ids:  # each contract's in the order they happened
        ids = [int(b["id"][4:]) for b in receiver.accepted if b["contract_id"] == contract_id]
        assert ids == sorted(ids)
    assert {(d.state, d.attempts, d.last_status) for d in deliveries(db)} == {
        (WebhookState.SENT, 1, 200)
    }
    for body in receiver.accepted:
        assert set(body) == {"id", "type", "created_at", "contract_id", "api_version", "data"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["created_at"])
        data = body["data"]
        assert {"actor_id", "currency", "milestone", "change_request"} <= set(data)
        assert data["currency"] == "USD"
        for key, value in data.items():
            if key.endswith("_minor"):
                assert value is None or isinstance(value, int), (body["type"], key)
            if key.endswith("_at") and value is not None:
                assert value.endswith("Z"), (body["type"], key)


def test_a_release_says_whether_it_was_automatic_and_carries_minor_units(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    endpoint(db, receiver.url)
    with db.session() as session:
        walk_every_event(session)
    sender_for(db, clock).send_due()

    releases = sorted(
        (b for b in receiver.accepted if b["type"] == "milestone.released"),
        key=lambda b: int(b["id"][4:]),
    )
    by_hand, automatic, split = releases
    assert by_hand["data"]["automatic"] is False and by_hand["data"]["amount_minor"] == 110000
    assert by_hand["data"]["milestone"] == {"number": 1, "title": "Design"}
    assert automatic["data"]["automatic"] is True and automatic["data"]["actor_id"] == "system"
    assert automatic["data"]["amount_minor"] == 270000
    assert split["data"]["split"] is True and split["data"]["amount_minor"] == 40000
    [ended] = [b for b in receiver.accepted if b["type"] == "contract.ended"]
    assert ended["data"]["refunded_minor"] == 200000
    [created] = [b for b in receiver.accepted if b["type"] == "contract.created"][:1]
    assert created["data"]["parties"] == [
        {"user_id": "UCLIENT01", "role": "client"},
        {"user_id": "UFREELA01", "role": "freelancer"},
    ]


def test_the_same_event_is_the_same_bytes_on_every_try(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    endpoint(db, receiver.url)
    with db.session() as session:
        new_contract(session)
    receiver.status = 500
    sender = sender_for(db, clock)
    sender.send_due()
    receiver.status = 200
    clock.advance(10)
    sender.send_due()

    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["Milestone-Delivery-Attempt"] == "1"
    assert second.headers["Milestone-Delivery-Attempt"] == "2"


# --- endpoints -----------------------------------------------------------------------------


def test_only_events_after_an_endpoint_is_added_are_queued_for_it(
    db: Database, receiver: Receiver
) -> None:
    with db.session() as session:
        new_contract(session)
    assert deliveries(db) == []  # no endpoint: nothing queued

    endpoint(db, receiver.url)
    with db.session() as session:
        new_contract(session)

    assert len(deliveries(db)) == 1


def test_every_endpoint_gets_its_own_delivery(db: Database) -> None:
    first = endpoint(db, "http://127.0.0.1:9/a")
    second = endpoint(db, "https://example.com/b")
    with db.session() as session:
        new_contract(session)

    assert sorted(d.endpoint_id for d in deliveries(db)) == [first, second]


def test_removing_an_endpoint_cancels_what_waited_and_queues_nothing_new(
    db: Database, clock: Clock
) -> None:
    gone = endpoint(db, "http://127.0.0.1:9/gone")
    with db.session() as session:
        new_contract(session)
        assert webhooks.remove_endpoint(session, gone, now=T0) == 1
        new_contract(session)

    assert [(d.state, d.last_error) for d in deliveries(db)] == [
        (WebhookState.CANCELLED, "endpoint removed")
    ]
    assert sender_for(db, clock).send_due() == 0


def test_an_endpoint_needs_a_web_address_and_a_secret(db: Database) -> None:
    from domain.errors import InvalidInput

    with db.session() as session:
        with pytest.raises(InvalidInput):
            webhooks.add_endpoint(session, url="ftp://example.com", secret="s", now=T0)
        with pytest.raises(InvalidInput):
            webhooks.add_endpoint(session, url="https://example.com", secret="", now=T0)
        shown = webhooks.add_endpoint(session, url="https://example.com", secret=SECRET, now=T0)
    assert SECRET not in repr(shown) and shown.secret_hint == "…" + SECRET[-4:]


# --- failures ------------------------------------------------------------------------------


def test_a_500_is_retried_with_exponential_backoff_until_it_is_taken(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    endpoint(db, receiver.url)
    with db.session() as session:
        new_contract(session)
    receiver.status = 500
    sender = sender_for(db, clock)

    tries_at = []
    for _ in range(4):
        before = len(receiver.requests)
        sender.send_due()
        if len(receiver.requests) > before:
            tries_at.append((clock.now - T0).total_seconds())
        [row] = deliveries(db)
        assert row.state == WebhookState.PENDING and row.last_error == "HTTP 500"
        clock.now = row.next_attempt_at - timedelta(seconds=1)
        assert sender.send_due() == 0  # not before it is due
        clock.now = row.next_attempt_at

    assert tries_at == [0, 10, 30, 70]  # 10 s, then doubling
    receiver.status = 200
    sender.send_due()
    [row] = deliveries(db)
    assert (row.state, row.attempts, row.last_status, row.last_error) == (
        WebhookState.SENT,
        5,
        200,
        None,
    )
    assert len(receiver.accepted) == 1


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_try(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    endpoint(db, receiver.url)
    with db.session() as session:
        new_contract(session)
    receiver.hang = 5.0

    sender_for(db, clock, timeout=0.3).send_due()

    [row] = deliveries(db)
    assert row.state == WebhookState.PENDING and row.attempts == 1
    assert row.last_error is not None and "timed out" in row.last_error
    assert row.next_attempt_at == T0 + timedelta(seconds=10)


def test_a_delivery_is_dead_lettered_after_the_last_try(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    endpoint(db, receiver.url)
    with db.session() as session:
        new_contract(session)
    receiver.status = 503
    sender = sender_for(db, clock, max_attempts=3)

    for _ in range(6):
        sender.send_due()
        clock.advance(3600)

    [row] = deliveries(db)
    assert (row.state, row.attempts, row.last_status) == (WebhookState.DEAD, 3, 503)
    assert len(receiver.requests) == 3
    with db.session() as session:
        [line] = webhooks.log(session)
        assert (line.state, line.attempts, line.last_error) == ("dead", 3, "HTTP 503")
        assert webhooks.retry_dead(session, now=clock.now) == 1
    receiver.status = 200
    sender.send_due()
    assert deliveries(db)[0].state == WebhookState.SENT


def test_a_receiver_down_then_up_gets_every_event_exactly_once(db: Database, clock: Clock) -> None:
    port = free_port()
    endpoint(db, f"http://127.0.0.1:{port}/hooks")
    with db.session() as session:
        new_contract(session)
        new_contract(session)
    sender = sender_for(db, clock)

    assert sender.send_due() == 1  # refused: the other waits with it
    rows = deliveries(db)
    assert [r.attempts for r in rows] == [1, 0]
    assert "Connection" in (rows[0].last_error or "") or "refused" in (rows[0].last_error or "")
    assert {r.next_attempt_at for r in rows} == {T0 + timedelta(seconds=10)}

    with receiving(port=port) as receiver:
        clock.advance(10)
        assert sender.send_due() == 2
        clock.advance(3600)
        assert sender.send_due() == 0

    assert sorted(receiver.counts().values()) == [1, 1]
    assert {r.state for r in deliveries(db)} == {WebhookState.SENT}


def test_a_failing_endpoint_holds_up_no_other_endpoint(
    db: Database, receiver: Receiver, clock: Clock
) -> None:
    endpoint(db, receiver.url)
    endpoint(db, f"http://127.0.0.1:{free_port()}/down")
    with db.session() as session:
        for _ in range(3):
            new_contract(session)

    sender_for(db, clock).send_due()

    assert len(receiver.accepted) == 3
    down = [d for d in deliveries(db) if d.state == WebhookState.PENDING]
    assert [d.attempts for d in down] == [1, 0, 0]  # tried once, the others wait with it


def test_the_sender_thread_delivers_when_nudged(db: Database, receiver: Receiver) -> None:
    endpoint(db, receiver.url)
    sender = WebhookSender(db.sessions, lambda: datetime.now(UTC), poll_seconds=60).start()
    try:
        with db.session() as session:
            new_contract(session)
        sender.nudge()
        receiver.wait_for(lambda: receiver.accepted, timeout=5)
    finally:
        sender.close()
    assert len(receiver.accepted) == 1


def test_two_senders_at_once_deliver_each_event_once(
    pg: Database, receiver: Receiver, clock: Clock
) -> None:
    """Several processes share one database: their claims split the due deliveries."""
    import threading

    endpoint(pg, receiver.url)
    with pg.session() as session:
        for _ in range(30):
            new_contract(session)
    senders = [sender_for(pg, clock, batch=5) for _ in range(3)]
    tried: list[int] = []
    threads = [threading.Thread(target=lambda s=s: tried.append(s.send_due())) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(tried) == 30
    assert sorted(receiver.counts().values()) == [1] * 30
    assert {d.state for d in deliveries(pg)} == {WebhookState.SENT}
