"""What the domain says to people, as facts the chat side renders.

A refusal or an outcome is a `Said`: plain words, and the facts in them as parts —
a person (`Person`, by user id), a command to type (`Command`). The domain never writes
chat markup: the handlers render a `Said` for the surface it is shown on (a mention
and `code` in a message, a name and plain words in a form), and escape every word,
so a title someone typed can't become a link or a broadcast.

    said("Only ", Person(client), " can accept request ", 3, ".")
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from babel import Locale

_ENGLISH = Locale.parse("en")


@dataclass(frozen=True)
class Person:
    """Someone, by their chat user id."""

    user_id: str

    def __str__(self) -> str:
        return f"@{self.user_id}"


@dataclass(frozen=True)
class Command:
    """What to type, after the bot's command: `start`, `add`, `new "<title>" …`."""

    words: str

    def __str__(self) -> str:
        return f"/milestone {self.words}"


Part = str | Person | Command


@dataclass(frozen=True)
class Said:
    parts: tuple[Part, ...]

    def __str__(self) -> str:
        """Plain words, people as @ids: for logs, and for tests of the domain."""
        return "".join(str(part) for part in self.parts)

    def __add__(self, other: Said | str) -> Said:
        return said(self, other)

    def __radd__(self, other: str) -> Said:
        return said(other, self)

    def __bool__(self) -> bool:
        return any(str(part) for part in self.parts)

    def people(self) -> list[str]:
        return [part.user_id for part in self.parts if isinstance(part, Person)]

    def to_json(self) -> str:
        return json.dumps([_dump(part) for part in self.parts], ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Said:
        """A `Said` stored with `to_json`; any other text is read as plain words."""
        try:
            data = json.loads(text)
        except ValueError:
            return cls((text,))
        if not isinstance(data, list):
            return cls((text,))
        return cls(tuple(_load(item) for item in data))


def said(*pieces: Said | Part | int) -> Said:
    """A `Said` of words (numbers become words), facts and other `Said`s, in order."""
    parts: list[Part] = []
    for piece in pieces:
        if isinstance(piece, Said):
            parts.extend(piece.parts)
        elif isinstance(piece, int):
            parts.append(str(piece))
        else:
            parts.append(piece)
    merged: list[Part] = []
    for part in parts:  # adjacent words as one
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return Said(tuple(merged))


def joined(items: Iterable[Said | Part], separator: str = ", ", last: str = " and ") -> Said:
    """'a, b and c' of `Said`s or parts."""
    listed = list(items)
    if len(listed) <= 1:
        return said(*listed)
    pieces: list[Said | Part] = []
    for index, item in enumerate(listed):
        if index:
            pieces.append(last if index == len(listed) - 1 else separator)
        pieces.append(item)
    return said(*pieces)


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """ "1 milestone", "3 milestones", "1,000 entries": the number with the word in the
    form CLDR's plural rules pick for it (`plural` for irregular words)."""
    word = singular if _ENGLISH.plural_form(count) == "one" else (plural or f"{singular}s")
    return f"{count:,} {word}"


def _dump(part: Part) -> Any:
    if isinstance(part, Person):
        return {"person": part.user_id}
    if isinstance(part, Command):
        return {"command": part.words}
    return part


def _load(item: Any) -> Part:
    if isinstance(item, dict):
        if "person" in item:
            return Person(str(item["person"]))
        if "command" in item:
            return Command(str(item["command"]))
    return str(item)
