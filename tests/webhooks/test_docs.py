"""docs/webhooks.md is what the bot does: its verification snippet verifies a real
delivery, and its example of each type has the shape the bot sends."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.webhooks import WebhookSender, signature
from domain import webhooks
from tests.conftest import Database
from tests.factories import new_contract
from tests.webhooks.examples import live_examples
from tests.webhooks.receiver import SECRET, receiving

DOC = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = DOC.index(f"## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else len(DOC)]


def documented_verify() -> Any:
    [code] = re.findall(r"```python\n(.*?)```", section("Verifying a delivery (Python)"), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own doc
    return namespace["verify"]


def documented_examples() -> dict[str, dict[str, Any]]:
    found = re.findall(
        r"### `([a-z_.]+)`\n\n```json\n(.*?)```", section("One example of each type"), re.S
    )
    return {name: json.loads(body) for name, body in found}


def test_the_documented_snippet_verifies_a_delivered_request(db: Database) -> None:
    verify = documented_verify()
    with receiving() as receiver:
        with db.session() as session:
            webhooks.add_endpoint(session, url=receiver.url, secret=SECRET, now=datetime.now(UTC))
            new_contract(session)
        WebhookSender(db.sessions, lambda: datetime.now(UTC)).send_due()
    [delivered] = receiver.requests
    header = delivered.headers["Milestone-Signature"]

    assert verify(SECRET, header, delivered.body)
    assert not verify(SECRET, header, delivered.body.replace(b"contract", b"kontract"))
    assert not verify("another secret", header, delivered.body)
    assert not verify(SECRET, "t=1,v1=00", delivered.body)
    assert not verify(SECRET, "nonsense", delivered.body)
    stale = signature(SECRET, int(time.time()) - 600, delivered.body)
    assert not verify(SECRET, stale, delivered.body)


def test_the_documented_header_example_is_a_real_signature_format() -> None:
    [line] = re.findall(r"Milestone-Signature: (t=\d+,v1=[0-9a-f]{64})\n", DOC)
    assert line.startswith("t=")


def shape(value: Any) -> Any:
    """Keys all the way down (dicts), the first item's shape for lists."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def test_there_is_one_example_per_type_shaped_as_the_bot_sends_it() -> None:
    documented = documented_examples()
    live = live_examples()

    assert set(documented) == set(webhooks.TYPES.values())
    for name, example in documented.items():
        assert example["type"] == name
        assert shape(example) == shape(live[name]), name
