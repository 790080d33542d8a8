"""`milestone-bot sandbox`: try the bot in a browser, with no Slack workspace and no tokens.

One process runs the unmodified bot (same bolt `App`, handlers, domain and database
code, on SQLite), the local Slack from `bot.emulator` that the tests use, and a small
page on 127.0.0.1 that plays a Slack channel for every party.

Import the parts from their modules (`bot.sandbox.sandbox.Sandbox`, `bot.sandbox.web`,
`bot.sandbox.demo`); the package itself only offers the command, which imports them
after quieting the start-up logs.
"""

from .main import run_sandbox

__all__ = ["run_sandbox"]
