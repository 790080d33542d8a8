"""`serialize.to_dict` is slack_sdk's `to_dict()`: the same dicts and the same refusals.

Every builder's output is compared as well, by `check_message` and `check_view`.
"""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    InputBlock,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from handlers.blocks.kit import button, confirm, mrkdwn, plain, section
from handlers.blocks.serialize import to_dict


def same(obj: JsonObject) -> None:
    assert to_dict(obj) == obj.to_dict()


def test_blocks_with_nested_elements_and_self_shaped_objects_serialise_alike() -> None:
    ok = button(
        "Accept",
        "accept",
        "v1",
        style="primary",
        confirm_with=confirm("Accept?", "All changes apply.", ok="Accept"),
    )
    select = StaticSelectElement(
        action_id="pick",
        placeholder=plain("Pick one"),
        options=[Option(value="a", label="A"), Option(value="b", label="B", description="b")],
        initial_option=Option(value="a", label="A"),
    )
    for obj in (
        section("*Title*", fields=["one", "two"], block_id="s1"),
        SectionBlock(text=mrkdwn("with a button"), accessory=ok),
        ActionsBlock(block_id="a1", elements=[ok, select]),
        ContextBlock(elements=[mrkdwn("a"), plain("b")]),
        InputBlock(
            block_id="i1",
            label=plain("Note"),
            element=PlainTextInputElement(action_id="note", multiline=True, max_length=300),
            optional=True,
        ),
    ):
        same(obj)
    same(View(type="modal", title=plain("Hi"), blocks=[section("x")], private_metadata=""))


def test_an_invalid_object_is_refused_with_slack_sdks_message() -> None:
    too_long = ButtonElement(text="x" * 76, action_id="a", value="v")
    with pytest.raises(SlackObjectFormationError) as expected:
        too_long.to_dict()
    with pytest.raises(SlackObjectFormationError) as got:
        to_dict(too_long)
    assert str(got.value) == str(expected.value)

    nested = ActionsBlock(elements=[too_long])
    with pytest.raises(SlackObjectFormationError):
        to_dict(nested)
