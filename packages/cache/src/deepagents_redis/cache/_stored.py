"""The stored form of a cached LLM response, and the key hash: pure functions, no I/O.

`entry_hash(canonical_prompt(prompt), llm_string)` names an entry; `to_stored` turns
generations into plain data the codec can pack (no pickle) and `from_stored` rebuilds them,
refusing anything that is not exactly that shape.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from deepagents_redis.core import fast_message, messages_as_verified, model_shape
from langchain_core.caches import RETURN_VAL_TYPE
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

__all__ = ["canonical_prompt", "entry_hash", "from_stored", "to_stored"]

# Versioned so a change of the hashing scheme can never read an older entry as a hit.
_HASH_DOMAIN = b"deepagents-redis llm-cache v1\x00"


def canonical_prompt(prompt: str) -> str:
    """The prompt as it counts for the key: ``usage_metadata`` of earlier turns removed.

    Why: on every cache hit LangChain's chat model adds ``total_cost: 0`` to the returned
    message's ``usage_metadata`` (``BaseChatModel._convert_cached_generations``). That
    message becomes part of the next turn's prompt, so without this a replayed multi-turn
    conversation (an agent loop) would hit on its first turn and miss on every later one.
    Token counts are never sent to a provider, so they cannot change the answer.

    Only the usage metadata of serialised AI messages is dropped (``{"lc": 1, "type":
    "constructor", "id": [..., "AIMessage"], "kwargs": {...}}``, what ``dumps`` writes): a
    ``BaseLLM`` prompt is the user's raw text, and a text that merely looked like a list of
    ``{"kwargs": {"usage_metadata": ...}}`` (a trace pasted for analysis) lost those values
    from its key, so two different prompts shared one entry and the second was served the
    first one's answer.

    Args:
        prompt: The serialised prompt (LangChain's ``dumps`` of the messages).

    Returns:
        The prompt with usage metadata dropped (unchanged when there is none, or when it
        is not a serialised message list, or is nested too deep to parse).
    """
    if '"usage_metadata"' not in prompt:
        return prompt
    try:
        data = json.loads(prompt)
    except (ValueError, RecursionError):
        # RecursionError: a text nested deeper than the parser goes ('[' * 100_000, any
        # raw prompt): it escaped lookup and update (strict or not), failing the model call
        # where InMemoryCache serves it; such a text is no serialised message list.
        return prompt
    if not isinstance(data, list):
        return prompt
    changed = False
    for item in data:
        kwargs = item.get("kwargs") if _is_ai_message(item) else None
        if isinstance(kwargs, dict) and "usage_metadata" in kwargs:
            del kwargs["usage_metadata"]
            changed = True
    # Written back the way LangChain's `dumps` wrote it (json.dumps' defaults), so a prompt
    # that loses its usage metadata here is the very text of the same prompt that never had
    # any: the original run of a model that reports no usage (a provider without it, OpenAI
    # streaming without stream_usage) stored turn 2 under the prompt as dumped, while the
    # replay's turn 2 carries LangChain's `total_cost: 0` from the turn-1 hit. Written
    # compactly, the two keys differed and every replayed turn after the first missed.
    return json.dumps(data) if changed else prompt


_AI_MESSAGES = frozenset({"AIMessage", "AIMessageChunk"})


def _is_ai_message(item: Any) -> bool:
    """Whether `item` is an AI message as ``langchain_core.load.dumps`` serialises it."""
    if not isinstance(item, dict) or item.get("lc") != 1 or item.get("type") != "constructor":
        return False
    path = item.get("id")
    return isinstance(path, list) and bool(path) and path[-1] in _AI_MESSAGES


def entry_hash(prompt: str, llm_string: str) -> str:
    """Canonical hash of ``(prompt, llm_string)``.

    The prompt's byte length is written before it, so no choice of separator characters
    inside either string can make two different pairs hash alike (``("a|b", "c")`` vs
    ``("a", "b|c")``).

    Args:
        prompt: The prompt as LangChain serialises it.
        llm_string: The model's configuration string.

    Returns:
        A 64-character hex SHA-256 digest.
    """
    p = prompt.encode("utf-8", "surrogatepass")
    h = hashlib.sha256(_HASH_DOMAIN)
    h.update(len(p).to_bytes(8, "big"))
    h.update(p)
    h.update(llm_string.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


# Stored form. The common case (exactly Generation, or exactly ChatGeneration holding exactly
# an AIMessage: what every chat model returns) is plain data revived with the classes'
# own constructors: ~15 µs per generation against ~80 µs for langchain_core.load (measured
# here), which matters because a hit should cost about one GET. Anything else (subclasses,
# chunks) goes through the codec's LangChain path (dumpd/load with an allowlist).
#
# The message is stored without the fields that hold their default (``exclude_defaults``;
# ``type`` is kept, so the entry says what it is): less to unpack and less to validate, ~30%
# cheaper to revive for a typical tool-calling answer (empty ``additional_kwargs`` and
# ``invalid_tool_calls``, no ``name``/``id``), and the same message back, since validation
# fills in the very defaults that were left out. Entries holding the full ``model_dump()``
# (written before) read the same way.
_FAST = "g1"
_LC = "lc1"


def to_stored(generations: RETURN_VAL_TYPE) -> dict[str, Any]:
    """The plain-data form of a list of generations (see the comment above).

    Args:
        generations: What the model returned.

    Returns:
        A dict the codec can encode.
    """
    items: list[Any] = []
    for g in generations:
        if type(g) is ChatGeneration and type(g.message) is AIMessage:
            message = g.message.model_dump(exclude_defaults=True)
            message["type"] = "ai"
            items.append({"m": message, "i": g.generation_info})
        elif type(g) is Generation:
            items.append({"t": g.text, "i": g.generation_info})
        else:
            return {"f": _LC, "g": list(generations)}
    return {"f": _FAST, "g": items}


def from_stored(stored: Any) -> list[Generation]:
    """Invert `to_stored`; raise on anything malformed.

    Args:
        stored: The decoded dict.

    Returns:
        The generations.

    Raises:
        TypeError: The value is not a stored generation list.
    """
    if not isinstance(stored, dict) or not isinstance(stored.get("g"), list):
        raise TypeError("not a stored generation list")
    fmt, items = stored.get("f"), stored["g"]
    if fmt == _LC:
        if not all(isinstance(g, Generation) for g in items):
            raise TypeError("not a generation")
        return list(items)
    if fmt != _FAST:
        raise TypeError(f"unknown stored format {fmt!r}")
    out: list[Generation] = []
    for item in items:
        if not isinstance(item, dict):
            raise TypeError("not a stored generation")
        info = item.get("i")
        if "m" in item:
            data = item["m"]
            if not isinstance(data, dict) or data.get("type") != "ai":
                raise TypeError("not an AI message")
            # AIMessage's own constructor, i.e. one full validation with its validators; a
            # field left out because it held its default gets that default back.
            # `model_validate(data)` is the same (AIMessage has a custom __init__, so pydantic
            # hands the dict to it as keywords) plus an outer validation pass of its own:
            # ~0.3 µs more per hit (performance pass). Keys are str (the codec refuses other
            # map keys; a non-str key would make this raise TypeError, a counted miss).
            fast = _fast_generation(data, info)
            if fast is not None:
                out.append(fast)
                continue
            message = AIMessage(**data)
            out.append(ChatGeneration(message=message, generation_info=info))
        else:
            out.append(Generation(text=item["t"], generation_info=info))
    return out


# -- the exact-shape fast path ---------------------------------------------------------------
#
# Most cached answers have one shape: text content, tool calls of exactly name/args/id, token
# counts without details, plain dicts of metadata. For that shape AIMessage's validation and
# ChatGeneration's change nothing, so core's `fast_message` builds the message the way
# pydantic's own `model_construct` does (after checking the shape) and this builds the
# generation around it; anything else goes through the constructors above. ~2 µs instead of
# ~9 µs per generation (performance pass, profile: the two constructors were ~60% of a hit's
# Python time). A differential test (tests/test_stored_form.py) checks every field, its type
# and the fields-set against the constructors, on hypothesis-generated messages within and
# around this shape.

_GENERATION_FIELDS_SET: Final = frozenset({"text", "generation_info", "message"})
_new = object.__new__
_set = object.__setattr__


def _models_as_verified() -> bool:
    """Whether AIMessage and ChatGeneration are still the models the fast path was proven on.

    AIMessage is core's check (`messages_as_verified`); ChatGeneration's fields, validators
    and extra policy are langchain-core 1.8's. A langchain-core that changes either switches
    the fast path off, and every entry goes through the constructors again, until the test is
    re-run.
    """
    try:
        generation = model_shape(ChatGeneration)
    except AttributeError:  # a pydantic without these internals: take the constructors
        return False
    return messages_as_verified() and generation == (
        ("text", "generation_info", "type", "message"),
        ("set_text",),
        (),
        (),
        (),
        (),
        "ignore",
    )


_FAST_PATH_ON: Final = _models_as_verified()


def _fast_generation(data: dict[str, Any], info: Any) -> ChatGeneration | None:
    """The ChatGeneration `AIMessage(**data)` would give, built directly; None if not that shape."""
    if not _FAST_PATH_ON or (info is not None and type(info) is not dict):
        return None
    message = fast_message(AIMessage, data)
    if message is None:
        return None
    generation = _new(ChatGeneration)
    _set(
        generation,
        "__dict__",
        {
            # ChatGeneration's own validator: the message's `text` (a str subclass).
            "text": message.text,
            "generation_info": info,
            "type": "ChatGeneration",
            "message": message,
        },
    )
    _set(generation, "__pydantic_fields_set__", set(_GENERATION_FIELDS_SET))
    _set(generation, "__pydantic_extra__", None)
    _set(generation, "__pydantic_private__", None)
    return generation
