"""The intents of one `deliver` call travel as a batch: claimed in one statement, the
card the person acted on first and App Home last, one Home per person, marked sent in
one statement — and a batch that outlasts its lease never sends what another sender
has taken over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import event

from bot.delivery import Delivery, render_homes
from domain import outbox, queries, services
from domain.services import MilestoneEdit
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import (
    Clock,
    calls_in,
    deliver_all,
    intent,
    intents,
    posted_ts,
    web_client,
)
from tests.factories import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    MANAGER,
    NOW,
    OUTSIDER,
    active_contract,
    add,
    new_contract,
)

LEASE_SECONDS = 30  # Delivery's default lease


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def pending(db: Database, contract_id: int) -> list[int]:
    """The contract's undelivered intents, oldest first (the order the services wrote)."""
    rows = [
        row
        for kind in ("announce", "request_card", "contract_card", "home")
        for row in intents(db, kind, contract_id)
        if row.state == "pending"
    ]
    return sorted(row.id for row in rows)


def accepted_request(db: Database, delivery: Delivery) -> tuple[int, int, tuple[int, ...]]:
    """A change request proposed and delivered, then accepted: (contract, request, the
    accept's intents)."""
    with db.session() as session:
        contract_id = active_contract(session)
    with db.session() as session:
        proposed = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            changes=[MilestoneEdit(2, amount="2600")],
            now=NOW,
        )
    deliver_all(delivery)
    assert proposed.request_id is not None
    with db.session() as session:
        accepted = services.accept_request(
            session,
            contract_id=contract_id,
            request_id=proposed.request_id,
            actor_id=CLIENT,
            now=NOW,
        )
    return contract_id, proposed.request_id, accepted.outbox_ids


def outbox_updates(seen: list[str]) -> list[str]:
    return [s for s in seen if s.upper().startswith("UPDATE OUTBOX_MESSAGE")]


def test_a_batch_is_claimed_in_one_statement_and_marked_sent_in_one(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    contract_id, _, ids = accepted_request(db, delivery)
    assert len(ids) >= 4

    with statements(db) as seen:
        delivery.deliver(ids)

    assert len(outbox_updates(seen)) == 2  # the claim and the completion, whatever the size
    assert {intent(db, i).state for i in ids} == {"sent"}
    assert {intent(db, i).attempts for i in ids} == {1}
    assert not pending(db, contract_id)


def test_an_accept_is_delivered_in_a_bounded_number_of_statements(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    _, _, ids = accepted_request(db, delivery)

    with statements(db) as seen:
        delivery.deliver(ids)

    # Two cards, an announcement and two Homes: each contract, snapshot, request, event
    # and card placement is read once for the batch (it took about fifty one by one).
    # The Homes add one read per table for both viewers' waiting items (domain.waiting)
    # and one for their page of contracts: still a constant, whatever the sizes.
    assert len(seen) <= 30, "\n".join(seen)


def test_the_card_the_person_acted_on_comes_first_and_app_home_last(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    contract_id, request_id, ids = accepted_request(db, delivery)
    request_ts = posted_ts(db, f"request:{request_id}")
    card_ts = posted_ts(db, f"contract:{contract_id}")
    before = len(slack.calls)

    delivery.deliver(ids)  # written announcement first, Home last

    sent = [
        (call.method, call.params.get("ts") or call.params.get("user_id"))
        for call in slack.calls[before:]
    ]
    methods = [method for method, _ in sent]
    assert sent[:2] == [("chat.update", request_ts), ("chat.update", card_ts)]
    assert methods[2:] == ["chat.postMessage"] * (len(methods) - 4) + ["views.publish"] * 2
    assert sorted(target for method, target in sent if method == "views.publish") == sorted(
        [CLIENT, FREELANCER]
    )


def test_a_new_contracts_card_is_posted_before_its_announcement(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)

    delivery.deliver(pending(db, contract_id))

    posts = [c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == CHANNEL]
    assert [c.response["ts"] for c in posts][0] == posted_ts(db, f"contract:{contract_id}")
    assert len(posts) == 2
    assert slack.calls[-1].method == "views.publish"


def test_several_home_intents_of_one_person_in_a_batch_are_one_publish(
    db: Database, slack: SlackEmulator, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
        add(session, contract_id, "Wireframes", "900")
        add(session, contract_id, "Visual design", "1200")
    homes = [row.id for row in intents(db, "home", contract_id)]
    assert len(homes) == 6  # three changes, two parties each

    delivery.deliver(homes)

    published = [c.params["user_id"] for c in slack.calls_to("views.publish")]
    assert sorted(published) == sorted([CLIENT, FREELANCER])
    assert {intent(db, i).state for i in homes} == {"sent"}
    home = slack.home_view(CLIENT)
    assert home is not None and "Visual design" in str(home)  # the newest state


def test_a_failed_home_publish_is_retried_for_each_of_its_intents(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
        add(session, contract_id, "Wireframes", "900")
    homes = [row.id for row in intents(db, "home", contract_id)]
    slack.fail_next("views.publish", status=500)

    delivery.deliver(homes)

    rows = [intent(db, i) for i in homes]
    failed = [row for row in rows if row.state == "pending"]
    assert len(failed) == 2  # both intents of the person whose publish failed
    assert {row.user_id for row in failed} == {failed[0].user_id}
    assert all(row.last_error == "internal_error" and row.attempts == 1 for row in failed)
    clock.advance(seconds=5)
    deliver_all(delivery)
    assert {intent(db, i).state for i in homes} == {"sent"}


class SlowClient(WebClient):
    """A WebClient whose every call takes `seconds` on the injected clock, and then runs
    `after` (what another sender does meanwhile)."""

    def __init__(self, slack: SlackEmulator, clock: Clock, seconds: float) -> None:
        super().__init__(token="xoxb-test", base_url=slack.api_url)
        self.clock = clock
        self.seconds = seconds
        self.after: Callable[[], None] = lambda: None

    def api_call(self, *args: Any, **kwargs: Any) -> Any:
        response = super().api_call(*args, **kwargs)
        self.clock.advance(seconds=self.seconds)
        self.after()
        return response


def test_a_batch_outlasting_half_its_lease_renews_each_claim_before_sending(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    client = SlowClient(slack, clock, seconds=40)
    delivery = Delivery(db.sessions, client, clock)
    with db.session() as session:
        contract_id = new_contract(session)
    ids = pending(db, contract_id)

    with statements(db) as seen:
        delivery.deliver(ids)

    assert {intent(db, i).state for i in ids} == {"sent"}
    assert {intent(db, i).attempts for i in ids} == {1}
    renewals = [
        s
        for s in outbox_updates(seen)
        if "attempts" not in (sets := s.split(" WHERE ")[0]) and "state" not in sets
    ]
    assert len(renewals) == len(ids) - 1  # before every send but the first


def test_an_intent_whose_lease_ran_out_and_was_taken_over_is_left_to_the_other_sender(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    client = SlowClient(slack, clock, seconds=LEASE_SECONDS + 1)
    delivery = Delivery(db.sessions, client, clock)
    with db.session() as session:
        contract_id = new_contract(session)
    [announce] = intents(db, "announce", contract_id)
    taken: list[outbox.Claimed] = []

    def another_sender_claims_the_announcement() -> None:
        if not taken:
            with db.session() as session:
                [claimed] = outbox.claim_many(
                    session, [announce.id], now=clock.now, lease=delivery.lease
                )  # our lease had run out
            taken.append(claimed)

    client.after = another_sender_claims_the_announcement

    delivery.deliver(pending(db, contract_id))  # the card first, then the announcement

    assert calls_in(slack, "chat.postMessage", CHANNEL) == 1  # the card only
    row = intent(db, announce.id)
    assert (row.state, row.attempts) == ("pending", 2)  # the other sender's claim stands
    assert row.next_attempt_at == taken[0].lease_until
    assert {r.state for r in intents(db, "contract_card", contract_id)} == {"sent"}


def test_an_unexpected_error_keeps_the_claim_it_hit_and_gives_back_the_rest(
    db: Database,
    slack: SlackEmulator,
    delivery: Delivery,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    ids = pending(db, contract_id)
    [announce] = intents(db, "announce", contract_id)

    def broken(*_args: Any) -> None:
        raise RuntimeError("a bug in a renderer")

    monkeypatch.setitem(delivery._renderers, "announce", broken)

    delivery.deliver(ids)  # logged, not raised: the request it follows is acked and done

    assert any(r.exc_info and "a bug in a renderer" in str(r.exc_info[1]) for r in caplog.records)
    row = intent(db, announce.id)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == NOW + delivery.lease  # kept, as a crashed sender's
    others = [intent(db, i) for i in ids if i != announce.id]
    assert all((r.state, r.attempts, r.next_attempt_at) == ("pending", 0, NOW) for r in others)
    assert not slack.calls  # the card was rendered, not sent, and is due again now


def test_homes_rendered_together_are_each_persons_home_rendered_alone(db: Database) -> None:
    with db.session() as session:
        ended = new_contract(session, title="Ended early")
    with db.session() as session:
        services.end_contract(session, contract_id=ended, actor_id=CLIENT, now=NOW)
    with db.session() as session:
        active_contract(session)
        new_contract(session, agency=True, title="Agency work")
        new_contract(session, title="Newest")
    people = [CLIENT, FREELANCER, MANAGER, OUTSIDER]

    with db.session() as session, session.begin():
        together = render_homes(session, people, now=NOW)
        alone = {person: render_homes(session, [person], now=NOW)[person] for person in people}
        limited = queries.contracts_of_users(session, people, limit=2)
        limited_alone = {p: queries.contracts_of_user(session, p, limit=2) for p in people}

    assert {p: v.to_dict() for p, v in together.items()} == {
        p: v.to_dict() for p, v in alone.items()
    }
    assert {p: [c.id for c in cs] for p, cs in limited.items()} == {
        p: [c.id for c in cs] for p, cs in limited_alone.items()
    }
    client_home = str(together[CLIENT].to_dict())
    assert client_home.index("Newest") < client_home.index("Ended early")  # closed last
    assert limited[OUTSIDER] == []


def test_with_a_home_delay_cards_go_at_once_and_a_burst_of_changes_is_one_home_each(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    delivery = Delivery(db.sessions, web_client(slack), clock, home_delay=2.0)
    with db.session() as session:
        contract_id = new_contract(session)
    delivery.deliver(pending(db, contract_id))
    for title, amount in (("Wireframes", "900"), ("Visual design", "1200")):
        with db.session() as session:
            add(session, contract_id, title, amount)
        delivery.deliver(pending(db, contract_id))

    card = slack.message(CHANNEL, posted_ts(db, f"contract:{contract_id}"))
    assert card is not None and "Visual design" in str(card.blocks)  # in the call itself
    homes = [row.id for row in intents(db, "home", contract_id)]
    assert len(homes) == 6 and slack.calls_to("views.publish") == []  # not yet

    slack.wait_for(
        lambda: {intent(db, i).state for i in homes} == {"sent"},
        timeout=10,
        message="the Home intents to be sent",
    )
    published = [c.params["user_id"] for c in slack.calls_to("views.publish")]
    assert sorted(published) == sorted([CLIENT, FREELANCER])  # one each for three changes
    home = slack.home_view(CLIENT)
    assert home is not None and "Visual design" in str(home)


def test_flush_publishes_the_gathered_homes_now_and_close_leaves_none_behind(
    db: Database, slack: SlackEmulator, clock: Clock
) -> None:
    delivery = Delivery(db.sessions, web_client(slack), clock, home_delay=60)
    with db.session() as session:
        contract_id = new_contract(session)
    delivery.deliver(pending(db, contract_id))
    homes = [row.id for row in intents(db, "home", contract_id)]
    assert homes and slack.calls_to("views.publish") == []  # waiting a minute

    delivery.flush()

    assert {intent(db, i).state for i in homes} == {"sent"}  # on return, not eventually
    assert sorted(c.params["user_id"] for c in slack.calls_to("views.publish")) == sorted(
        [CLIENT, FREELANCER]
    )
    with db.session() as session:
        add(session, contract_id, "Wireframes", "900")
    delivery.deliver(pending(db, contract_id))
    delivery.close()
    assert len(slack.calls_to("views.publish")) == 4
    assert {row.state for row in intents(db, "home", contract_id)} == {"sent"}
