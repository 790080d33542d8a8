"""Block Kit helpers shared by the emulator and the driver.

They find interactive elements in stored blocks and build the value objects Slack puts into
``actions[0]`` and ``view.state.values``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .models import ButtonRef, JsonDict

#: element type -> (field Slack fills in state/actions, kind of value)
_VALUE_FIELDS: dict[str, tuple[str, str]] = {
    "plain_text_input": ("value", "scalar"),
    "email_text_input": ("value", "scalar"),
    "url_text_input": ("value", "scalar"),
    "number_text_input": ("value", "scalar"),
    "rich_text_input": ("rich_text_value", "scalar"),
    "datepicker": ("selected_date", "scalar"),
    "timepicker": ("selected_time", "scalar"),
    "datetimepicker": ("selected_date_time", "scalar"),
    "users_select": ("selected_user", "scalar"),
    "multi_users_select": ("selected_users", "list"),
    "conversations_select": ("selected_conversation", "scalar"),
    "multi_conversations_select": ("selected_conversations", "list"),
    "channels_select": ("selected_channel", "scalar"),
    "multi_channels_select": ("selected_channels", "list"),
    "static_select": ("selected_option", "option"),
    "external_select": ("selected_option", "option"),
    "radio_buttons": ("selected_option", "option"),
    "overflow": ("selected_option", "option"),
    "multi_static_select": ("selected_options", "options"),
    "multi_external_select": ("selected_options", "options"),
    "checkboxes": ("selected_options", "options"),
}

_INITIAL_FIELDS: dict[str, str] = {
    "value": "initial_value",
    "rich_text_value": "initial_value",
    "selected_date": "initial_date",
    "selected_time": "initial_time",
    "selected_date_time": "initial_date_time",
    "selected_user": "initial_user",
    "selected_users": "initial_users",
    "selected_conversation": "initial_conversation",
    "selected_conversations": "initial_conversations",
    "selected_channel": "initial_channel",
    "selected_channels": "initial_channels",
    "selected_option": "initial_option",
    "selected_options": "initial_options",
}


def auto_block_id(index: int) -> str:
    """Stand-in for the random block_id Slack assigns to blocks sent without one."""
    return f"auto-block-{index}"


def auto_action_id(index: int, position: int) -> str:
    """Stand-in for the random action_id Slack assigns to elements sent without one."""
    return f"auto-action-{index}-{position}"


def iter_elements(blocks: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, JsonDict, JsonDict]]:
    """Yield ``(block_id, element, block)`` for every interactive element in ``blocks``.

    Covers ``actions`` elements, section accessories and ``input`` elements. Elements without an
    ``action_id`` get a generated one in the yielded copy.
    """
    for index, block in enumerate(blocks):
        if not isinstance(block, Mapping):
            continue
        block_id = str(block.get("block_id") or auto_block_id(index))
        candidates: list[Any] = []
        btype = block.get("type")
        if btype == "actions":
            candidates = list(block.get("elements") or [])
        elif btype == "section" and isinstance(block.get("accessory"), Mapping):
            candidates = [block["accessory"]]
        elif btype == "input" and isinstance(block.get("element"), Mapping):
            candidates = [block["element"]]
        for position, element in enumerate(candidates):
            if not isinstance(element, Mapping) or "type" not in element:
                continue
            found = dict(element)
            found.setdefault("action_id", auto_action_id(index, position))
            yield block_id, found, dict(block)


def find_element(
    blocks: Sequence[Mapping[str, Any]], action_id: str, block_id: str | None = None
) -> tuple[str, JsonDict] | None:
    """The first element with ``action_id`` (and ``block_id`` if given) as ``(block_id, el)``."""
    for found_block_id, element, _block in iter_elements(blocks):
        if element.get("action_id") != action_id:
            continue
        if block_id is not None and found_block_id != block_id:
            continue
        return found_block_id, element
    return None


def element_label(element: Mapping[str, Any]) -> str:
    """Visible text of a button-like element ("" when it has none)."""
    text = element.get("text")
    if isinstance(text, Mapping):
        return str(text.get("text", ""))
    if isinstance(text, str):
        return text
    return ""


def find_buttons(blocks: Sequence[Mapping[str, Any]]) -> list[tuple[str, ButtonRef]]:
    """All buttons in ``blocks`` as ``(label, ButtonRef)``."""
    out: list[tuple[str, ButtonRef]] = []
    for block_id, element, _block in iter_elements(blocks):
        if element.get("type") != "button":
            continue
        value = element.get("value")
        ref = ButtonRef(
            action_id=str(element["action_id"]),
            value=None if value is None else str(value),
            block_id=block_id,
        )
        out.append((element_label(element), ref))
    return out


def find_button(
    blocks: Sequence[Mapping[str, Any]],
    *,
    label_startswith: str | None = None,
    action_id: str | None = None,
    value: str | None = None,
) -> ButtonRef:
    """The first button matching all given criteria; ``LookupError`` listing buttons if none."""
    buttons = find_buttons(blocks)
    for label, ref in buttons:
        if label_startswith is not None and not label.startswith(label_startswith):
            continue
        if action_id is not None and ref.action_id != action_id:
            continue
        if value is not None and ref.value != value:
            continue
        return ref
    wanted = {"label_startswith": label_startswith, "action_id": action_id, "value": value}
    criteria = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if v is not None)
    available = "; ".join(f"{label!r} ({ref.action_id})" for label, ref in buttons) or "none"
    raise LookupError(f"no button with {criteria or 'any label'}; buttons present: {available}")


def element_options(element: Mapping[str, Any]) -> list[JsonDict]:
    """All options of a select / radio / checkbox / overflow element, groups flattened."""
    options: list[JsonDict] = [dict(o) for o in element.get("options") or []]
    for group in element.get("option_groups") or []:
        options.extend(dict(o) for o in group.get("options") or [])
    return options


def _option_for(element: Mapping[str, Any], value: Any) -> JsonDict:
    if isinstance(value, Mapping):
        return dict(value)
    options = element_options(element)
    for option in options:
        if option.get("value") == value:
            return option
    if element.get("type") in ("external_select", "multi_external_select"):
        return {"text": {"type": "plain_text", "text": str(value)}, "value": str(value)}
    known = ", ".join(repr(o.get("value")) for o in options) or "none"
    raise LookupError(
        f"option {value!r} not in element {element.get('action_id')!r}; options: {known}"
    )


def value_field(element_type: str) -> str:
    """Name of the field carrying the user's input for ``element_type``."""
    return _VALUE_FIELDS.get(element_type, ("value", "scalar"))[0]


def element_value(element: Mapping[str, Any], value: Any) -> JsonDict:
    """The state value object Slack reports for ``element`` holding ``value``.

    ``value`` is the plain input (a string, a user id, a date, an option value, or a list of
    those for multi-selects and checkboxes). ``None`` means "left empty". A mapping that has a
    ``type`` key is taken to be a ready-made state value and returned as is.
    """
    if isinstance(value, Mapping) and "type" in value:
        return dict(value)
    etype = str(element.get("type", ""))
    field, kind = _VALUE_FIELDS.get(etype, ("value", "scalar"))
    out: JsonDict = {"type": etype}
    if kind == "scalar":
        out[field] = value
    elif kind == "list":
        out[field] = [] if value is None else _as_list(value)
    elif kind == "option":
        out[field] = None if value is None else _option_for(element, value)
    else:
        out[field] = [] if value is None else [_option_for(element, v) for v in _as_list(value)]
    return out


def initial_value(element: Mapping[str, Any]) -> JsonDict:
    """The state value of an untouched element: its ``initial_*`` value or empty."""
    etype = str(element.get("type", ""))
    field, kind = _VALUE_FIELDS.get(etype, ("value", "scalar"))
    initial = element.get(_INITIAL_FIELDS.get(field, "initial_value"))
    out: JsonDict = {"type": etype}
    if kind in ("list", "options"):
        out[field] = list(initial) if isinstance(initial, list) else []
    else:
        out[field] = initial
    return out


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def input_elements(blocks: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, JsonDict]]:
    """``(block_id, element)`` for the element of every ``input`` block."""
    for block_id, element, block in iter_elements(blocks):
        if block.get("type") == "input":
            yield block_id, element


def build_state_values(
    blocks: Sequence[Mapping[str, Any]],
    values: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, JsonDict]]:
    """``view.state.values`` as Slack would send it for a view made of ``blocks``.

    Every input block is present (untouched inputs carry their initial value or null).
    ``values`` is keyed ``block_id -> action_id -> value`` (plain value or state value object);
    ``inputs`` is keyed by ``action_id`` (or by ``block_id``) with plain values.
    Keys that match nothing raise ``LookupError``, so a typo fails loudly.
    """
    state: dict[str, dict[str, JsonDict]] = {}
    elements: dict[tuple[str, str], JsonDict] = {}
    for block_id, element in input_elements(blocks):
        action_id = str(element["action_id"])
        elements[(block_id, action_id)] = element
        state.setdefault(block_id, {})[action_id] = initial_value(element)
    # Non-input elements (e.g. a dispatching select in a section) only when given explicitly.
    all_elements = {(b, str(e["action_id"])): e for b, e, _ in iter_elements(blocks)}
    for block_id, per_action in (values or {}).items():
        for action_id, value in per_action.items():
            pair = (block_id, action_id)
            target = elements.get(pair) or all_elements.get(pair)
            if target is None:
                if isinstance(value, Mapping) and "type" in value:
                    state.setdefault(block_id, {})[action_id] = dict(value)
                    continue
                raise LookupError(f"no element {block_id}/{action_id} in the view")
            state.setdefault(block_id, {})[action_id] = element_value(target, value)
    for key, value in (inputs or {}).items():
        matches = [(b, a) for (b, a) in elements if a == key] or [
            (b, a) for (b, a) in elements if b == key
        ]
        if not matches:
            known = ", ".join(f"{b}/{a}" for b, a in elements) or "none"
            raise LookupError(f"no input {key!r} in the view; inputs: {known}")
        for block_id, action_id in matches:
            state[block_id][action_id] = element_value(elements[(block_id, action_id)], value)
    return state
