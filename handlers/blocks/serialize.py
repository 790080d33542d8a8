"""`to_dict`: what slack_sdk's `JsonObject.to_dict()` returns, validated the same way,
without its reflection on every object.

slack_sdk validates each object by listing every name on it (`dir`) and reading each
one to find the methods marked `@JsonValidator`; for a card or a Home of many blocks
that is most of the time spent serialising it. Here the validators of each class are
found once and run as slack_sdk runs them, and the dict is built by the same rules (the
non-empty attributes, in sorted order). A class that shapes its own dict
(`ConfirmObject`, `Option`, ...) is still asked for it. `tests/blocks` compares the
two on the output of every builder.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.basic_objects import EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST, JsonObject

_EMPTY_ALLOWED = frozenset(
    (item["type"], item["property"]) for item in EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST
)
# Per class: the names of its validators, or None if it serialises itself its own way.
_VALIDATORS: dict[type[JsonObject], tuple[str, ...] | None] = {}


def to_dict(obj: JsonObject) -> dict[str, Any]:
    """`obj.to_dict()`, the same dict and the same `SlackObjectFormationError`s."""
    validators = _validators_of(type(obj))
    if validators is None:
        return obj.to_dict()
    for name in validators:
        getattr(obj, name)()
    kind = getattr(obj, "type", None)
    out: dict[str, Any] = {}
    for key in sorted(obj.attributes):
        value = getattr(obj, key, None)
        if value is None:
            continue
        if (
            (kind, key) not in _EMPTY_ALLOWED
            and getattr(value, "__len__", None) is not None
            and not len(value)
        ):
            continue
        out[key] = _compatible(value)
    return out


def _compatible(value: Any) -> Any:
    """slack_sdk's `to_dict_compatible`: nested objects as dicts, tuples as lists."""
    if isinstance(value, list | tuple):
        return [_compatible(item) for item in value]
    if isinstance(value, JsonObject) and _validators_of(type(value)) is not None:
        return to_dict(value)
    method = getattr(value, "to_dict", None)
    if method is not None and callable(method):
        return {key: _compatible(item) for key, item in method().items()}
    return value


def _validators_of(cls: type[JsonObject]) -> tuple[str, ...] | None:
    try:
        return _VALIDATORS[cls]
    except KeyError:
        pass
    plain = all(
        getattr(cls, name) is getattr(JsonObject, name)
        for name in ("to_dict", "validate_json", "get_non_null_attributes", "get_object_attribute")
    )
    found: tuple[str, ...] | None = None
    if plain:
        # As `JsonObject.validate_json` finds them on an instance, in the same order.
        found = tuple(
            name
            for name in dir(cls)
            if not name.startswith("__")
            and callable(member := getattr(cls, name, None))
            and hasattr(member, "validator")
        )
    _VALIDATORS[cls] = found
    return found
