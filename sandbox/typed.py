"""What Slack makes of a slash command typed in the composer.

The manifest declares `/milestone` with `should_escape: true`, so Slack sends the text
with `&`, `<`, `>` as entities and turns `@name` / `#channel` into `<@U…|name>` /
`<#C…|name>` before the app sees it. The sandbox page is the composer, so it does the
same with the people and channels the local Slack knows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

COMMAND = "/milestone"


class NotACommand(ValueError):
    """The composer only sends `/milestone …` (the sandbox has no plain chat)."""


def split_command(typed: str) -> tuple[str, str]:
    """`"/milestone add x"` → `("/milestone", "add x")`; anything else is refused."""
    stripped = typed.strip()
    word, _, rest = stripped.partition(" ")
    if word.lower() != COMMAND:
        raise NotACommand(
            f"Only {COMMAND} commands work here, for example `{COMMAND} help`. "
            "The sandbox has no plain chat messages."
        )
    return COMMAND, rest.strip()


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
