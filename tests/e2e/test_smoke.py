from tests.e2e.conftest import CLIENT, FREELANCER, Bot


def test_smoke(bot: Bot) -> None:
    reply = bot.say(CLIENT, f'new "Site" client=<@{CLIENT}|carol> freelancer=<@{FREELANCER}>')
    print(reply)
    print(bot.say(CLIENT, 'add "Design" 1500 2030-01-01'))
    print(bot.card_text("contract:1"))
    print(bot.posts())
