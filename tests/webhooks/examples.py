"""The example bodies of docs/webhooks.md: the first delivery of each type from the
walked contracts (`python -m tests.webhooks.examples` prints them as Markdown)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from domain import webhooks
from domain.db import make_engine, make_session_factory, upgrade_schema
from domain.model import Event
from tests.webhooks.story import walk_every_event


def live_examples() -> dict[str, dict[str, Any]]:
    """type → the body of its first event in the walk (on a throw-away SQLite file)."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'examples.sqlite3'}")
        try:
            upgrade_schema(engine)
            sessions = make_session_factory(engine)
            with sessions() as session:
                walk_every_event(session)
                with session.begin():
                    ids = list(session.scalars(select(Event.id)))
                bodies = webhooks.bodies(session, ids)
        finally:
            engine.dispose()
    found: dict[str, dict[str, Any]] = {}
    for event_id in sorted(bodies):
        body = bodies[event_id]
        found.setdefault(body["type"], body)
    return found


def markdown(examples: dict[str, dict[str, Any]]) -> str:
    out = []
    order = list(dict.fromkeys(webhooks.TYPES.values()))
    for name in order:
        out.append(f"### `{name}`\n\n```json\n{json.dumps(examples[name], indent=2)}\n```\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(live_examples()))
