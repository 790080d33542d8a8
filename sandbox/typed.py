"""What Slack makes of a slash command typed in the composer.

The manifest declares `/milestone` with `should_escape: true`, so Slack sends the text
with `&`, `<`, `>` as entities and turns `@name` / `#channel` into `<@U…|name>` /
`<#C…|name>` before the app sees it. The sandbox page is the composer, so it does the
same with the people and channels the local Slack knows.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

COMMAND = "/milestone"
COMMANDS = (COMMAND,)  # the slash commands the workspace knows: the manifest's
HELP = f"{COMMAND} help"


class NotACommand(ValueError):
    """The composer only sends the app's slash commands (the sandbox has no plain chat).

    The message is plain text (the page shows it as it is), and `suggestion` is the
    exact text to send instead, when the first word looks like a misspelt command.
    """

    def __init__(self, message: str, *, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


def split_command(typed: str) -> tuple[str, str]:
    """`"/milestone add x"` → `("/milestone", "add x")`; anything else is refused.

    An unknown command is answered as Slack answers it, plus the closest known command
    with the rest of what was typed: `/milestne help` → "Did you mean /milestone help?".
    """
    stripped = typed.strip()
    word, _, rest = stripped.partition(" ")
    rest = rest.strip()
    if word.lower() in COMMANDS:
        return word.lower(), rest
    slash = word if word.startswith("/") else "/" + word
    closest = difflib.get_close_matches(slash.lower(), COMMANDS, n=1, cutoff=0.6)
    retype = f"{closest[0]} {rest}".strip() if closest else None
    if not word.startswith("/"):
        said = "The sandbox has no plain chat messages, only the app's slash command."
    else:
        said = f"{word} is not a valid command."
    if retype is not None:
        raise NotACommand(f"{said} Did you mean {retype}?", suggestion=retype)
    raise NotACommand(f"{said} This workspace has {COMMAND}: try {HELP}.")


def escape_like_slack(text: str, *, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    """Entities for `&<>`, then `@name` → `<@ID|name>` and `#name` → `<#ID|name>`.

    `users` and `channels` map lower-case names to ids; unknown names stay as typed.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def mention(prefix: str, names: Mapping[str, str]) -> re.Pattern[str] | None:
        if not names:
            return None
        alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        return re.compile(rf"(?<![\w@#]){prefix}({alternatives})(?![\w-])", re.IGNORECASE)

    people = mention("@", users)
    if people is not None:
        escaped = people.sub(
            lambda m: f"<@{users[m[1].lower()]}|{m[1].lower()}>",
            escaped,
        )
    rooms = mention("#", channels)
    if rooms is not None:
        escaped = rooms.sub(
            lambda m: f"<#{channels[m[1].lower()]}|{m[1].lower()}>",
            escaped,
        )
    return escaped
