r"""How values are framed in Redis and revived: LangGraph's serializer, never pickle.

A stored value is ``<type>\\n<bytes>``: the pair `SerializerProtocol.dumps_typed` returns. The
default serializer is LangGraph's `JsonPlusSerializer` with no pickle fallback and the strict
msgpack allowlist (LangGraph's safe types plus what a compiled graph adds for its state
schema via `with_allowlist`). Reading refuses what it cannot trust, with a typed error:

* a value without the frame, or with a type the serializer does not produce (``pickle``);
* bytes the serializer cannot decode;
* a msgpack object of a type outside the allowlist (LangGraph would log and hand back the
  raw payload; we raise, so a poisoned key is an error, never code that runs or state that
  silently changes shape).
"""

from __future__ import annotations

import contextvars
import json
import math
import weakref
from collections.abc import Callable
from typing import Any, Final

import ormsgpack
from deepagents_redis.core import SerializationError, fast_message
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.serde import _msgpack as lg_msgpack
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener
from langgraph.checkpoint.serde.jsonplus import EXT_PYDANTIC_V2, JsonPlusSerializer

__all__ = ["StoredValue", "canonical", "default_serde", "dump", "load"]

# What json.dumps(..., ensure_ascii=False) writes for a str (its encoder calls this very function).
_json_str: Final = json.encoder.encode_basestring

StoredValue = bytes

_SAFE_TYPES: Final = frozenset({"msgpack", "json", "null", "bytes", "bytearray", "empty"})
_blocked: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "deepagents_redis_checkpoint_blocked", default=None
)


def _listen(event: SerdeEvent) -> None:
    seen = _blocked.get()
    if seen is not None and event.get("kind", "").endswith("blocked"):
        seen.append(f"{event.get('module')}.{event.get('name')}")


register_serde_event_listener(_listen)


def default_serde() -> SerializerProtocol:
    """LangGraph's serializer without pickle and with the strict msgpack allowlist."""
    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=None)


def dump(serde: SerializerProtocol, value: Any) -> bytes:
    """Serialize `value` into the stored frame.

    Raises:
        SerializationError: The serializer cannot encode it, or named a type with a newline.
    """
    try:
        type_, data = serde.dumps_typed(value)
    except Exception as exc:  # the serializer's own errors vary (msgpack, TypeError...)
        raise SerializationError(
            f"cannot serialize a {type(value).__name__}: {type(exc).__name__}"
        ) from exc
    if "\n" in type_:
        raise SerializationError(f"serializer type {type_!r} holds a newline")
    return type_.encode() + b"\n" + bytes(data)


def load(serde: SerializerProtocol, raw: Any, *, what: str, strict: bool) -> Any:
    """Revive a stored frame.

    Args:
        serde: The saver's serializer.
        raw: What Redis returned.
        what: Where it came from (for the error; never the bytes themselves).
        strict: Only accept the types the default serializer produces (True unless the
            caller brought their own serializer, e.g. an encrypting one).

    Returns:
        The value.

    Raises:
        SerializationError: Not a frame, a refused type, undecodable bytes, or a type outside
            the msgpack allowlist.
    """
    if not isinstance(raw, bytes):
        raise SerializationError(f"{what}: expected bytes, Redis returned {type(raw).__name__}")
    type_b, sep, data = raw.partition(b"\n")
    if not sep:
        raise SerializationError(f"{what}: not a serialized value (no type frame)")
    type_ = type_b.decode("utf-8", "replace")
    if strict and type_ not in _SAFE_TYPES:
        raise SerializationError(f"{what}: refused serialization type {type_[:40]!r}")
    seen: list[str] = []
    token = _blocked.set(seen)
    try:
        hook = _message_hook(serde) if type_ == "msgpack" else None
        if hook is None:
            value = serde.loads_typed((type_, data))
        else:
            # What JsonPlusSerializer.loads_typed does for msgpack, with messages revived
            # by `_message_hook`.
            value = ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
    except Exception as exc:
        raise SerializationError(f"{what}: undecodable {type_[:40]} value") from exc
    finally:
        _blocked.reset(token)
    if seen:
        raise SerializationError(
            f"{what}: holds {', '.join(sorted(set(seen)))}, which is not in the msgpack "
            "allowlist; if it is yours, set LANGGRAPH_STRICT_MSGPACK=true (compile() then "
            "allowlists your state schema's types) or pass "
            "serde=JsonPlusSerializer(allowed_msgpack_modules=[...])"
        )
    return value


# -- messages revived without a second validation pass ---------------------------------------
#
# A checkpoint's history is a list of chat messages, which LangGraph's serializer stores as
# (module, class, model_dump(), method) and revives with the class's constructor: one full
# validation per message, ~6 µs each here, 70% of a get_tuple's Python time for a 20-message
# thread (performance pass, issue 13). For the four messages a deep agent's history holds,
# core's `fast_message` builds the same object without that pass when the dump has the shape
# that makes the pass a no-op; anything else (and every other type) goes to LangGraph's own
# hook, unchanged. Only for the serializer class we know (a user's own serializer, e.g. an
# encrypting one, is called as it is) and only for types LangGraph allows in every mode (its
# safe list), so the allowlist decides nothing differently. Differential test:
# tests/test_revival.py.

_MESSAGES: Final = {
    (cls.__module__, cls.__name__): cls
    for cls in (AIMessage, HumanMessage, SystemMessage, ToolMessage)
    if (cls.__module__, cls.__name__) in lg_msgpack.SAFE_MSGPACK_TYPES
}
_hooks: weakref.WeakKeyDictionary[Any, Callable[[int, bytes], Any]] = weakref.WeakKeyDictionary()


def _message_hook(serde: SerializerProtocol) -> Callable[[int, bytes], Any] | None:
    """The msgpack ext hook reviving messages fast for `serde`, or None to call it as is."""
    if type(serde) is not JsonPlusSerializer:
        return None
    hook = _hooks.get(serde)
    if hook is None:
        inner = getattr(serde, "_unpack_ext_hook", None)
        if inner is None:  # a LangGraph that keeps its hook elsewhere: its own path
            return None
        hook = _hooks[serde] = _wrap(inner)
    return hook


def _wrap(inner: Callable[[int, bytes], Any]) -> Callable[[int, bytes], Any]:
    def hook(code: int, data: bytes) -> Any:
        if code != EXT_PYDANTIC_V2 or not _MESSAGES:
            return inner(code, data)
        try:
            tup = ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
            cls = _MESSAGES.get((tup[0], tup[1]))
            kwargs = tup[2]
        except Exception:  # noqa: BLE001 - malformed: LangGraph's hook decides what it gives
            return inner(code, data)
        message = None if cls is None else fast_message(cls, kwargs)
        return inner(code, data) if message is None else message

    return hook


def canonical(value: Any) -> str | None:
    """The text a metadata value is filtered by: canonical JSON, or None if not JSON.

    `InMemorySaver` matches a filter with Python's ``==``, so values equal in Python must have
    one text (the server compares texts; what it lets through, Python checks exactly): a bool
    is written as its int (``True == 1``), an integral float as an int (``1.0 == 1``), a tuple
    as a list, at any depth. A mapping with a key that is not a str has no text (``{1: "a"}``
    and ``{True: "a"}`` are equal, and JSON would write their keys apart): Python decides alone.
    """
    # Every put indexes each metadata value: its common exact types skip the encoder object
    # (the same text json.dumps writes; ~3 µs instead of ~12 per value, issue 13).
    kind = type(value)
    if kind is str:
        return _json_str(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "1" if value else "0"
    try:
        return json.dumps(
            _plain(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError, RecursionError):
        return None


def _plain(value: Any) -> Any:
    """`value` with each number as its int when it equals one, and tuples as lists.

    Raises:
        TypeError: A type JSON has no form for, or a mapping key that is not a str.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):  # bool and IntEnum too: the int they equal
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return float(value)  # nan and inf: refused by json.dumps (allow_nan=False)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("a mapping key that is not a str")
            out[key] = _plain(item)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")
