"""App Home follows every change only for people who have opened it; anyone else's
Home is rendered when they first open it (nothing to keep up to date before)."""

from __future__ import annotations

import pytest

from bot.delivery import Delivery, publish_home
from domain import outbox
from domain.model import HomeViewer
from sandbox.emulator import SlackEmulator
from tests.conftest import Database
from tests.delivery.support import Clock, deliver_all, intents, web_client
from tests.factories import CLIENT, FREELANCER, NOW, add, new_contract


@pytest.fixture
def everyone_opened_home() -> None:
    """Here nobody has opened their Home yet (overrides the package's fixture)."""


def test_a_change_publishes_no_home_for_someone_who_never_opened_it(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        outbox.home_opened(session, CLIENT, now=NOW)
    with db.session() as session:
        contract_id = new_contract(session)
        add(session, contract_id, "Wireframes", "900")

    deliver_all(delivery)

    published = [c.params["user_id"] for c in slack.calls_to("views.publish")]
    assert published == [CLIENT]  # once for the whole batch, and only for the viewer
    assert {row.state for row in intents(db, "home", contract_id)} == {"sent"}


def test_opening_home_publishes_it_and_from_then_on_it_follows_changes(
    db: Database, slack: SlackEmulator, clock: Clock, delivery: Delivery
) -> None:
    with db.session() as session:
        contract_id = new_contract(session)
    deliver_all(delivery)
    assert slack.calls_to("views.publish") == []

    publish_home(db.sessions, web_client(slack), FREELANCER, now=NOW)
    with db.session() as session:
        assert session.get(HomeViewer, FREELANCER) is not None
    with db.session() as session:
        add(session, contract_id, "Launch", "1200")
    deliver_all(delivery)

    published = [c.params["user_id"] for c in slack.calls_to("views.publish")]
    assert published == [FREELANCER, FREELANCER]
    home = slack.home_view(FREELANCER)
    assert home is not None and "Website redesign" in str(home)
