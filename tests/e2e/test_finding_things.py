"""Finding things, end to end: `/milestone list`, the contract a command means in a
channel with several, the choice offered as buttons, and App Home's pages."""

from __future__ import annotations

from typing import Any

from domain import export, services
from handlers.ids import Action
from handlers.payloads import ContractPick
from tests.e2e.conftest import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    MANAGER,
    OUTSIDER,
    TEAM,
    Bot,
    blocks_text,
)

NEW_SHOP = f'new "Shop" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}|fred>'
NEW_APP = f'new "App" client=<@{CLIENT}|carol> agency="Pixel" manager=<@{MANAGER}|maya>'


def two_contracts(bot: Bot) -> None:
    """Contract 1 "Shop" (client and freelancer) and contract 2 "App" (client and an
    agency manager), both open in the same channel."""
    assert "Contract 1" in bot.say(CLIENT, NEW_SHOP)
    assert "Contract 2" in bot.say(CLIENT, NEW_APP)


def titles(bot: Bot) -> dict[int, list[str]]:
    with bot.runtime.sessions() as session, session.begin():
        data = export.export_contracts(session)
    return {c["id"]: [m["title"] for m in c["milestones"]] for c in data["contracts"]}


def choice_offered_to(bot: Bot, user: str) -> Any:
    """The latest ephemeral message to `user` that offers contracts as buttons."""
    offers = [
        e for e in bot.slack.ephemerals(CHANNEL, user) if "Use contract" in blocks_text(e.blocks)
    ]
    assert offers, f"no choice offered to {user}"
    return offers[-1]


def pick(bot: Bot, user: str, contract_id: int, *, value: str | None = None) -> str:
    """`user` clicks "Use contract N" on the choice they were offered; their answer."""
    offer = choice_offered_to(bot, user)
    response = bot.driver.click(
        user,
        channel_id=CHANNEL,
        message_ts=offer.ts,
        action_id=Action.CHOOSE_CONTRACT.value,
        block_id=f"choice_{contract_id}",
        value=value,
    )
    assert response.status == 200, response.text
    return bot.reply_to(response)


def test_a_party_to_one_of_the_channels_contracts_needs_no_contract_id(bot: Bot) -> None:
    two_contracts(bot)

    freelancer = bot.say(FREELANCER, 'add "Design" 1500 2030-01-01')
    manager = bot.say(MANAGER, 'add "Screens" 900 2030-02-01')

    assert "contract=" not in freelancer and "contract=" not in manager
    assert titles(bot) == {1: ["Design"], 2: ["Screens"]}


def test_a_party_to_several_chooses_with_a_button_that_runs_the_command(bot: Bot) -> None:
    two_contracts(bot)

    offer = bot.say(CLIENT, 'add "Extra" 100 2030-03-01')

    assert "Which one" in offer and "Use contract 1" in offer and "Use contract 2" in offer
    assert titles(bot) == {1: [], 2: []}  # nothing happened yet
    answer = pick(bot, CLIENT, 2)
    assert "Extra" in answer
    assert titles(bot) == {1: [], 2: ["Extra"]}
    assert any("Extra" in text for text in bot.posts())  # announced like any change


def test_someone_party_to_none_chooses_among_every_open_contract(bot: Bot) -> None:
    two_contracts(bot)

    offer = bot.say(OUTSIDER, "status")

    assert "Use contract 1" in offer and "Use contract 2" in offer
    status = pick(bot, OUTSIDER, 1)
    assert "*Shop*" in status and "*App*" not in status


def test_a_choice_runs_only_for_the_person_who_typed_the_command(bot: Bot) -> None:
    two_contracts(bot)
    bot.say(CLIENT, 'add "Design" 1500 2030-01-01 contract=1')
    bot.say(OUTSIDER, "status")
    forged = ContractPick(text='add "Sneaky" 1 2030-01-01', contract_id=1, user_id=CLIENT)

    answer = pick(bot, OUTSIDER, 1, value=forged.dump())

    assert "offered to someone else" in answer
    assert titles(bot) == {1: ["Design"], 2: []}


def test_contract_id_still_names_the_contract(bot: Bot) -> None:
    two_contracts(bot)

    bot.say(CLIENT, 'add "Named" 100 2030-03-01 contract=1')

    assert titles(bot) == {1: ["Named"], 2: []}


def test_list_shows_my_contracts_with_what_waits_and_for_whom(bot: Bot) -> None:
    two_contracts(bot)
    bot.say(FREELANCER, 'add "Design" 1500 2030-01-01')

    mine = bot.say(CLIENT, "list")
    theirs = bot.say(FREELANCER, "list")

    assert "Your contracts" in mine and "2 contracts" in mine
    assert "Shop" in mine and "App" in mine and f"<#{CHANNEL}>" in mine
    assert "Agree to the terms" in mine  # the client's own step on Shop
    assert "Add the first milestone." in mine  # App: nobody added one yet
    assert "*Shop*" in theirs and "*App*" not in theirs and "1 contract" in theirs


def test_home_turns_its_pages_with_next_and_previous(bot: Bot) -> None:
    with bot.runtime.sessions() as session:
        for n in range(1, 23):
            services.create_contract(
                session,
                title=f"Deal {n}",
                team_id=TEAM,
                channel_id=CHANNEL,
                creator_id=CLIENT,
                client_id=CLIENT,
                freelancer_id=FREELANCER,
                agency=None,
                currency="USD",
                now=bot.runtime.clock(),
            )

    home = bot.open_home(CLIENT)
    assert "page 1 of 2" in blocks_text(home["blocks"])
    assert {"home_contract_22", "home_contract_3"} <= block_ids(home)
    assert "home_contract_2" not in block_ids(home)

    before = len(bot.slack.calls_to("views.publish"))
    response = bot.driver.click_home(CLIENT, Action.HOME_NEXT.value)
    assert response.status == 200
    bot.slack.wait_for(lambda: bot.slack.calls_to("views.publish")[before:])
    turned = bot.slack.home_view(CLIENT)
    assert turned is not None
    assert "page 2 of 2" in blocks_text(turned["blocks"])
    assert {"home_contract_2", "home_contract_1"} <= block_ids(turned)
    assert "home_contract_22" not in block_ids(turned)
    assert "Previous" in blocks_text(turned["blocks"])


def block_ids(view: dict[str, Any]) -> set[str]:
    return {str(b.get("block_id")) for b in view["blocks"]}
