"""`milestone-bot sandbox`: try the bot in a browser, with no Slack workspace and no tokens.

One process runs the unmodified bot (same bolt `App`, handlers, domain and database
code, on SQLite), the local Slack from `sandbox.emulator` that the tests use, and a small
page on 127.0.0.1 that plays a Slack channel for every party.

Import the parts from their modules (`sandbox.sandbox.Sandbox`, `sandbox.web`,
`sandbox.demo`); the package itself only offers the command, which imports them
after quieting the start-up logs (so `sandbox.emulator` loads none of the bot).
`sandbox.http` is the one HTTP front end of both servers, the emulator's and the page's;
`sandbox.browser` drives the page in headless Chromium, for `scripts/picture`
(`sandbox.picture`, the README's picture) and the browser tests.
Nothing in bot/, handlers/, domain/ or scheduler/ imports this room, except the
`milestone-bot sandbox` command, inside the command.
"""

from .main import run_sandbox

__all__ = ["run_sandbox"]
