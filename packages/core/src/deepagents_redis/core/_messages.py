"""Chat messages rebuilt without a validation pass, when the pass would change nothing.

Reviving a message from stored data (an LLM cache hit, a checkpoint's history) with its class's
constructor validates every field again. For data of one exact shape, which is what a
message's own ``model_dump()`` produces for the common messages (text or block content, tool
calls of exactly ``name``/``args``/``id``/``type``, token counts without details, plain dicts
of metadata), that pass and the classes' validators return the same values, in the same
order, with the same fields-set. `fast_message` checks that shape and builds the object the
way pydantic's own ``model_construct`` does: ~1-2 µs per message instead of ~4-6 µs.
Anything else (a value of another type, an extra field, token details, raw provider tool
calls in ``additional_kwargs``, invalid tool calls) returns None, and the caller uses the
constructor. The objects' lists and dicts are the given ones, not copies (validation would
copy them): callers hand over data nothing else holds (freshly unpacked).

Differential tests (``tests/test_messages.py`` here, and the cache's and checkpoint's
revival tests) compare every field, its type, the fields-set and the extras against the
constructors, on hypothesis-generated data within and around the shape. The shape was proven
on langchain-core 1.8; `fast_message` switches itself off (always None) when the message
classes' fields, validators or extra policy differ from the ones it was proven on.
"""

from __future__ import annotations

from typing import Any, Final

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

__all__ = ["fast_message", "messages_as_verified", "model_shape"]

_BASE_FIELDS: Final = ("content", "additional_kwargs", "response_metadata", "type", "name", "id")
_VERIFIED: Final[dict[type[Any], tuple[Any, ...]]] = {
    AIMessage: (
        (*_BASE_FIELDS, "tool_calls", "invalid_tool_calls", "usage_metadata"),
        ("_backwards_compat_tool_calls",),
    ),
    HumanMessage: (_BASE_FIELDS, ()),
    SystemMessage: (_BASE_FIELDS, ()),
    ToolMessage: ((*_BASE_FIELDS, "tool_call_id", "artifact", "status"), ("coerce_args",)),
}
_TOOL_CALL_KEYS: Final = frozenset({"name", "args", "id", "type"})
_USAGE_KEYS: Final = ("input_tokens", "output_tokens", "total_tokens")
_STATUSES: Final = frozenset({"success", "error"})
_new = object.__new__
_set = object.__setattr__


def model_shape(cls: Any) -> tuple[Any, ...]:
    """What validating `cls` depends on: its fields, validators, private attributes, extras.

    Fast paths that build a pydantic model without validating it compare this with the
    shape they were proven on, and switch themselves off when it differs.

    Args:
        cls: A pydantic model class.

    Returns:
        Field names (in order), model, field, v1 and root validators (sorted), private
        attribute names and the ``extra`` policy.

    Raises:
        AttributeError: A pydantic without these internals.
    """
    decorators = cls.__pydantic_decorators__
    return (
        tuple(cls.model_fields),
        tuple(sorted(decorators.model_validators)),
        tuple(sorted(decorators.field_validators)),
        tuple(sorted(decorators.validators)),
        tuple(sorted(decorators.root_validators)),
        tuple(cls.__private_attributes__),
        cls.model_config.get("extra"),
    )


def messages_as_verified() -> bool:
    """Whether the message classes are still the models the fast path was proven on.

    Their fields (in order), validators, private attributes and extra policy as of
    langchain-core 1.8. A langchain-core that changes any of them switches the fast path
    off until the differential tests are re-run against it.
    """
    try:
        return all(
            model_shape(cls) == (fields, validators, (), (), (), (), "allow")
            for cls, (fields, validators) in _VERIFIED.items()
        )
    except AttributeError:  # a pydantic without these internals: take the constructors
        return False


_ON: Final = messages_as_verified()
_FIELDS: Final = {cls: frozenset(cls.model_fields) for cls in _VERIFIED}
_TYPES: Final = {cls: cls.model_fields["type"].default for cls in _VERIFIED}


def _content(value: Any) -> bool:
    """Text, or a list of text and dict blocks (what the ``content`` union keeps as is)."""
    if type(value) is str:
        return True
    if type(value) is not list:
        return False
    for block in value:
        kind = type(block)
        if kind is not str and kind is not dict:
            return False
    return True


def _optional_str(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    return value is None or type(value) is str


def _tool_calls(calls: Any) -> list[dict[str, Any]] | None:
    if type(calls) is not list:
        return None
    out = []
    for call in calls:
        if (
            type(call) is not dict
            or not call.keys() <= _TOOL_CALL_KEYS
            or type(call.get("name")) is not str
            or type(call.get("args")) is not dict
            or "id" not in call
            or (call["id"] is not None and type(call["id"]) is not str)
            or call.get("type", "tool_call") != "tool_call"
        ):
            return None
        # The order and keys AIMessage's validator gives them (create_tool_call).
        out.append(
            {"name": call["name"], "args": call["args"], "id": call["id"], "type": "tool_call"}
        )
    return out


def _usage(usage: Any) -> dict[str, int] | None:
    if type(usage) is not dict or len(usage) != 3:
        return None
    try:
        counts = {k: usage[k] for k in _USAGE_KEYS}
    except KeyError:
        return None
    for value in counts.values():
        if type(value) is not int:
            return None
    return counts


class _Missing:
    __slots__ = ()


_MISSING: Final = _Missing()


def _mapping(data: dict[str, Any], key: str) -> dict[Any, Any] | None:
    value = data.get(key, _MISSING)
    if value is _MISSING:
        return {}
    return value if type(value) is dict else None


def fast_message(cls: type[Any], data: Any) -> BaseMessage | None:
    """The message ``cls(**data)`` would build, built directly; None if not that shape.

    Args:
        cls: AIMessage, HumanMessage, SystemMessage or ToolMessage (exactly; any other class
            returns None).
        data: The keyword arguments the constructor would get (a ``model_dump()``, with or
            without the fields that hold their default).

    Returns:
        The message, or None: the caller then calls the constructor.
    """
    if not _ON or type(data) is not dict:
        return None
    fields = _FIELDS.get(cls)
    if fields is None or not data.keys() <= fields:
        return None
    content = data.get("content", _MISSING)
    if content is _MISSING or not _content(content):
        return None
    kind = data.get("type", _MISSING)
    if kind is _MISSING:
        kind = _TYPES[cls]
    elif type(kind) is not str or kind != _TYPES[cls]:
        return None
    extra_kwargs = _mapping(data, "additional_kwargs")
    metadata = _mapping(data, "response_metadata")
    if extra_kwargs is None or metadata is None:
        return None
    if not (_optional_str(data, "name") and _optional_str(data, "id")):
        return None
    values: dict[str, Any] = {
        "content": content,
        "additional_kwargs": extra_kwargs,
        "response_metadata": metadata,
        "type": kind,
        "name": data.get("name"),
        "id": data.get("id"),
    }
    if cls is AIMessage:
        if "tool_calls" in extra_kwargs:  # raw provider tool calls: the validator parses them
            return None
        calls: list[dict[str, Any]] | None = []
        if "tool_calls" in data:
            calls = _tool_calls(data["tool_calls"])
            if calls is None:
                return None
        invalid = data.get("invalid_tool_calls", _MISSING)
        if invalid is not _MISSING and (type(invalid) is not list or invalid):
            return None
        usage = data.get("usage_metadata")
        if usage is not None:
            usage = _usage(usage)
            if usage is None:
                return None
        values["tool_calls"] = calls
        values["invalid_tool_calls"] = []
        values["usage_metadata"] = usage
    elif cls is ToolMessage:
        call_id = data.get("tool_call_id")
        status = data.get("status", "success")
        if type(call_id) is not str or type(status) is not str or status not in _STATUSES:
            return None
        values["tool_call_id"] = call_id
        values["artifact"] = data.get("artifact")
        values["status"] = status
    message = _new(cls)
    _set(message, "__dict__", values)
    _set(message, "__pydantic_fields_set__", set(data))
    _set(message, "__pydantic_extra__", {})
    _set(message, "__pydantic_private__", None)
    return message  # type: ignore[no-any-return]
