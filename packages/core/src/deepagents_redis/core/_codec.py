"""The value codec: a small versioned envelope around MessagePack or JSON.

Envelope layout (all integers unsigned, big-endian)::

    offset 0   1 byte   magic 0xDA
    offset 1   1 byte   envelope version (1)
    offset 2   1 byte   codec id: 1 = MessagePack, 2 = JSON (UTF-8)
    offset 3   1 byte   flags: bit 0 = an 8-byte key hash follows,
                               bit 1 = the payload holds LangChain objects (revive on decode)
    [offset 4  8 bytes  blake2b-64 of the UTF-8 key, when flag bit 0 is set]
    then       payload

Why this shape (see also ``docs/adr/0002-serialization-and-keys.md``):

* No pickle, ever, and no MessagePack extension types: decoding stored bytes must never run
  code or build arbitrary classes. Ext types are refused by ``max_ext_len=0`` and an
  ``ext_hook`` that raises.
* Decoding is bounded: the envelope is refused above ``max_size``; every MessagePack length
  header is capped by the payload's own size (a forged 2^32-element array header fails
  before anything is allocated); nesting deeper than ``max_depth`` is refused.
* A value written with ``key=...`` carries a hash of that key and is refused when read under
  another key (or without one), so a mixed-up reply can never be served as a hit.
* LangChain objects (``Serializable``: messages, generations, documents) go through
  ``langchain_core.load.dumpd`` and come back through ``langchain_core.load.load`` with an
  explicit allowlist of classes and ``secrets_from_env=False``. Only envelopes whose LC flag is
  set are revived, and plain dicts holding an ``"lc"`` key are escaped the way ``dumpd``
  escapes them, so user data that merely looks like ``{"lc": 1, ...}`` stays a dict.
* JSON (``format="json"``) is for humans and other languages: ``bytes`` become
  ``{"$b": "<base64>"}``; a plain dict whose only key is ``"$b"`` or ``"$d"`` is wrapped as
  ``{"$d": {...}}`` so the tagging is injective. NaN and infinities are refused.

Plain data means ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``, ``bytes``, lists
and tuples (decoded as lists) and dicts with ``str`` keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any, Final, Literal

import msgpack
from deepagents_redis.core._errors import (
    InvalidInputError,
    PayloadTooLargeError,
    SerializationError,
)
from langchain_core._api import suppress_langchain_beta_warning
from langchain_core.documents import Document
from langchain_core.load import dumpd, load
from langchain_core.load.load import Reviver, default_init_validator
from langchain_core.load.serializable import Serializable
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

__all__ = ["DEFAULT_LC_ALLOWED", "Codec"]

MAGIC: Final = 0xDA
ENVELOPE_VERSION: Final = 1
CODEC_MSGPACK: Final = 1
CODEC_JSON: Final = 2
FLAG_KEY_HASH: Final = 0x01
FLAG_LC: Final = 0x02
_KNOWN_FLAGS: Final = FLAG_KEY_HASH | FLAG_LC
_HEADER: Final = 4
_HASH_LEN: Final = 8
_CODEC_IDS: Final = {"msgpack": CODEC_MSGPACK, "json": CODEC_JSON}
# The first byte of every MessagePack array or map: fixmap 0x80-0x8f, fixarray 0x90-0x9f,
# array 16/32 0xdc/0xdd, map 16/32 0xde/0xdf. Each container of a decoded value was read from
# its own header byte, so the count of these bytes in a payload (other bytes may match too:
# it only over-counts) bounds how many containers, hence how many nesting levels, it holds.
_CONTAINER_HEADERS: Final = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
# The first byte of every MessagePack bin value (bin 8/16/32). msgpack's strict_map_key lets
# bin map keys through (as bytes); a payload without any of these bytes cannot hold one.
_BIN8: Final = b"\xc4"
_BIN16: Final = b"\xc5"
_BIN32: Final = b"\xc6"

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

# LangChain's own escape marker (langchain_core.load._validation): dicts wrapped in it come back
# from ``load`` as plain dicts, never as objects.
_LC_ESCAPED: Final = "__lc_escaped__"

DEFAULT_LC_ALLOWED: Final[tuple[type[Serializable], ...]] = (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    Document,
)
"""LangChain classes revived by default: messages, generations and documents.

None of them takes endpoint configuration or runs I/O in its constructor (the threat model in
``langchain_core.load.load``)."""


def _key_hash(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=_HASH_LEN).digest()


def _all_mapped_paths() -> frozenset[tuple[str, ...]]:
    return frozenset(Reviver(allowed_objects="all").allowed_class_paths or set())


def _max_containers(data: bytes) -> int:
    """An upper bound on the arrays and maps in a MessagePack payload (one C pass, ~1 µs/KB)."""
    return len(data) - len(data.translate(None, _CONTAINER_HEADERS))


def _may_hold_bin(data: bytes) -> bool:
    """Whether a MessagePack payload may hold a bin value (over-counts, never misses one)."""
    # Three C scans, spelled out: a generator over the headers cost ~0.4 µs more per decode.
    return _BIN8 in data or _BIN16 in data or _BIN32 in data


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"MessagePack extension type {code} is not allowed")


class _EncodeState:
    __slots__ = ("lc",)

    def __init__(self) -> None:
        self.lc = False


class Codec:
    """Encodes values into the versioned envelope and decodes them back, safely.

    Args:
        format: ``"msgpack"`` (compact, default) or ``"json"`` (human readable).
        max_size: Largest envelope, in bytes, that ``encode`` produces and ``decode`` accepts.
        max_depth: Deepest container nesting accepted in either direction.
        lc_allowed: LangChain classes that ``decode`` may revive
            (default `DEFAULT_LC_ALLOWED`).

    Raises:
        InvalidInputError: On an unknown format or non-positive limits.

    Example:
        >>> codec = Codec()
        >>> codec.decode(codec.encode({"a": [1, b"x"]}, key="k"), key="k")
        {'a': [1, b'x']}
    """

    __slots__ = (
        "_allowed",
        "_allowed_paths",
        "_codec_id",
        "_fast_gate",
        "_format",
        "_max_depth",
        "_max_size",
    )

    def __init__(
        self,
        *,
        format: Literal["msgpack", "json"] = "msgpack",
        max_size: int = 64 * 1024 * 1024,
        max_depth: int = 64,
        lc_allowed: Iterable[type[Serializable]] | None = None,
    ) -> None:
        if format not in _CODEC_IDS:
            raise InvalidInputError(f"unknown codec format {format!r}: use 'msgpack' or 'json'")
        if max_size < 1 or max_depth < 1:
            raise InvalidInputError("max_size and max_depth must be positive")
        self._format = format
        self._codec_id = _CODEC_IDS[format]
        self._max_size = max_size
        self._max_depth = max_depth
        self._allowed = tuple(DEFAULT_LC_ALLOWED if lc_allowed is None else lc_allowed)
        try:
            paths = Reviver(allowed_objects=self._allowed).allowed_class_paths or set()
        except TypeError as exc:
            raise InvalidInputError(f"lc_allowed must hold Serializable classes: {exc}") from exc
        self._allowed_paths = frozenset(paths)
        # load(allowed_objects=[...]) recomputes the class paths on every call by scanning all of
        # langchain's import mappings (~60% of a decode, measured: ~1 ms per 2 KB generation).
        # The "all" gate is cached by langchain; our own validator then enforces the real,
        # narrower allowlist before any import or constructor runs.
        self._fast_gate = self._allowed_paths <= _all_mapped_paths()

    @property
    def format(self) -> Literal["msgpack", "json"]:
        """The payload format this codec writes."""
        return self._format

    @property
    def max_size(self) -> int:
        """Largest envelope accepted, in bytes."""
        return self._max_size

    @property
    def max_depth(self) -> int:
        """Deepest container nesting accepted."""
        return self._max_depth

    # ------------------------------------------------------------------ encode

    def encode(self, value: Any, *, key: str | None = None) -> bytes:
        """Encode a value into an envelope.

        Args:
            value: Plain data (see the module docstring), LangChain ``Serializable`` objects,
                or plain containers holding them.
            key: The Redis key the value is stored under; its hash is embedded and checked by
                `decode`.

        Returns:
            The envelope bytes.

        Raises:
            SerializationError: If the value holds an unsupported type, a non-``str`` dict key,
                an out-of-range int, is nested deeper than ``max_depth`` (or, in JSON, holds NaN).
            PayloadTooLargeError: If the envelope would exceed ``max_size``.
        """
        state = _EncodeState()
        prepared = self._prep(value, 0, state)
        try:
            if self._codec_id == CODEC_MSGPACK:
                payload = msgpack.packb(prepared, use_bin_type=True)
            else:
                # Strict UTF-8, as MessagePack encodes: a lone surrogate written with
                # "surrogatepass" made bytes that are not UTF-8, so `decode` (and every
                # other language's reader) refused the stored value for good.
                payload = json.dumps(
                    prepared, ensure_ascii=False, allow_nan=False, separators=(",", ":")
                ).encode("utf-8")
        except (ValueError, TypeError, OverflowError) as exc:
            raise SerializationError(f"cannot encode value: {exc}") from exc
        flags = FLAG_LC if state.lc else 0
        parts = [b""]
        if key is not None:
            flags |= FLAG_KEY_HASH
            parts.append(_key_hash(key))
        parts[0] = bytes((MAGIC, ENVELOPE_VERSION, self._codec_id, flags))
        parts.append(payload)
        size = sum(len(p) for p in parts)
        if size > self._max_size:
            raise PayloadTooLargeError(size, self._max_size)
        return b"".join(parts)

    def _too_deep(self) -> SerializationError:
        return SerializationError(f"value is nested deeper than max_depth={self._max_depth}")

    def _scalar(self, value: Any) -> Any:
        # Returns the prepared scalar, or raises for unsupported types. bool before int:
        # bool is an int subclass and must stay a bool.
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            if not _INT_MIN <= value <= _INT_MAX:
                raise SerializationError(f"int {value} does not fit in 64 bits")
            return value
        if isinstance(value, float):
            if self._codec_id == CODEC_JSON and not math.isfinite(value):
                raise SerializationError("JSON cannot carry NaN or infinity")
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if self._codec_id == CODEC_JSON:
                return {"$b": base64.b64encode(raw).decode("ascii")}
            return raw
        raise SerializationError(f"cannot encode values of type {type(value).__name__}")

    def _dict_items(self, value: dict[Any, Any]) -> None:
        for k in value:
            if not isinstance(k, str):
                raise SerializationError(f"dict keys must be str, got {type(k).__name__}")

    def _json_wrap(self, out: dict[str, Any]) -> dict[str, Any]:
        # Keep the JSON tagging injective: a user dict shaped like a tag is wrapped.
        if self._codec_id == CODEC_JSON and len(out) == 1 and ("$b" in out or "$d" in out):
            return {"$d": out}
        return out

    def _prep(self, value: Any, depth: int, state: _EncodeState) -> Any:
        """Prepare user data: LangChain objects dumped, LC-looking dicts escaped, types checked."""
        # Fast path for the leaves plain data is mostly made of (exact types only: anything
        # else takes the general path below); ~2x cheaper encode of a chat-completion dict.
        cls = type(value)
        if cls is str or value is None or cls is bool:
            return value
        if cls is int and _INT_MIN <= value <= _INT_MAX:
            return value
        if isinstance(value, Serializable):
            if depth > self._max_depth:
                raise self._too_deep()
            state.lc = True
            try:
                dumped = dumpd(value)
            except (ValueError, TypeError) as exc:
                raise SerializationError(f"cannot dump {type(value).__name__}: {exc}") from exc
            return self._raw(dumped, depth, escaped=False)
        if isinstance(value, dict):
            if depth >= self._max_depth:
                raise self._too_deep()
            self._dict_items(value)
            if "lc" in value or (len(value) == 1 and _LC_ESCAPED in value):
                # Same rule as langchain_core's dumpd: user data that could be mistaken for a
                # serialized object is wrapped, and ``load`` hands it back untouched.
                state.lc = True
                return {_LC_ESCAPED: self._raw(value, depth + 1, escaped=True)}
            prep = self._prep
            return self._json_wrap(
                {k: v if type(v) is str else prep(v, depth + 1, state) for k, v in value.items()}
            )
        if isinstance(value, list | tuple):
            if depth >= self._max_depth:
                raise self._too_deep()
            prep = self._prep
            return [v if type(v) is str else prep(v, depth + 1, state) for v in value]
        return self._scalar(value)

    def _raw(self, value: Any, depth: int, *, escaped: bool) -> Any:
        """Prepare already-dumped (or escaped) data: no LC handling, only checks and tagging."""
        if isinstance(value, dict):
            if depth >= self._max_depth:
                raise self._too_deep()
            self._dict_items(value)
            if not escaped and value.get("lc") == 1 and value.get("type") == "not_implemented":
                raise SerializationError(
                    f"LangChain cannot serialize {value.get('id')!r}; "
                    "only JSON-like fields are supported inside LangChain objects"
                )
            inner_escaped = escaped or (len(value) == 1 and _LC_ESCAPED in value)
            return self._json_wrap(
                {k: self._raw(v, depth + 1, escaped=inner_escaped) for k, v in value.items()}
            )
        if isinstance(value, list | tuple):
            if depth >= self._max_depth:
                raise self._too_deep()
            return [self._raw(v, depth + 1, escaped=escaped) for v in value]
        if isinstance(value, Serializable):
            raise SerializationError(
                "LangChain objects inside a dict with an 'lc' key cannot be encoded"
            )
        return self._scalar(value)

    # ------------------------------------------------------------------ decode

    def decode(self, data: bytes | bytearray | memoryview, *, key: str | None = None) -> Any:
        """Decode an envelope produced by `encode`.

        Args:
            data: The stored bytes.
            key: The key the bytes were read from. Must match the key given to ``encode``
                (both absent, or both the same string).

        Returns:
            The value; tuples come back as lists, LangChain objects as objects.

        Raises:
            SerializationError: On anything but a well-formed envelope within the limits:
                wrong magic/version/codec id/flags, truncated data, key hash mismatch, a
                payload that is malformed, too big, too deep, holds a map key that is not a
                string, or holds a disallowed class.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SerializationError(f"expected bytes, got {type(data).__name__}")
        size = len(data)
        if size > self._max_size:
            raise SerializationError(f"envelope of {size} bytes exceeds max_size={self._max_size}")
        view = memoryview(data)
        if size < _HEADER:
            raise SerializationError("truncated envelope")
        magic, version, codec_id, flags = view[0], view[1], view[2], view[3]
        if magic != MAGIC:
            raise SerializationError("not a deepagents-redis envelope (bad magic byte)")
        if version != ENVELOPE_VERSION:
            raise SerializationError(f"unsupported envelope version {version}")
        if codec_id not in (CODEC_MSGPACK, CODEC_JSON):
            raise SerializationError(f"unknown codec id {codec_id}")
        if flags & ~_KNOWN_FLAGS:
            raise SerializationError(f"unknown envelope flags {flags:#x}")
        offset = _HEADER
        if flags & FLAG_KEY_HASH:
            if size < _HEADER + _HASH_LEN:
                raise SerializationError("truncated envelope")
            stored = bytes(view[_HEADER : _HEADER + _HASH_LEN])
            if key is None:
                raise SerializationError("value is bound to a key: pass key= to decode it")
            if stored != _key_hash(key):
                raise SerializationError("key hash mismatch: value was stored under another key")
            offset += _HASH_LEN
        elif key is not None:
            raise SerializationError("value carries no key hash but key= was given")
        payload = view[offset:]
        if codec_id == CODEC_MSGPACK:
            value = self._unpack(payload)
            raw = payload.tobytes()
            if _max_containers(raw) > self._max_depth or _may_hold_bin(raw):
                # Only then can the value nest deeper than max_depth (the C unpacker's own
                # stack limit is far above any sane max_depth) or hold a bytes map key: walk it.
                self._check_tree(value, 0)
        else:
            value = self._from_json(self._json_loads(payload), 0)
        if flags & FLAG_LC:
            value = self._revive(value)
        return value

    def _unpack(self, payload: memoryview) -> Any:
        n = len(payload)
        if n == 0:
            raise SerializationError("empty payload")
        try:
            # Every length header is capped by the payload size: an honest container of n
            # elements needs at least n bytes, so a larger header is a lie, refused before
            # anything is allocated.
            return msgpack.unpackb(
                payload,
                raw=False,
                strict_map_key=True,
                max_str_len=n,
                max_bin_len=n,
                max_array_len=n,
                max_map_len=n // 2,
                max_ext_len=0,
                ext_hook=_refuse_ext,
                use_list=True,
            )
        except (
            ValueError,
            TypeError,
            OverflowError,
            RecursionError,
            msgpack.UnpackException,
        ) as exc:
            raise SerializationError(f"malformed MessagePack payload: {exc}") from exc

    def _json_loads(self, payload: memoryview) -> Any:
        try:
            text = bytes(payload).decode("utf-8")

            def _no_constant(name: str) -> Any:
                raise ValueError(f"JSON constant {name} is not allowed")

            return json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise SerializationError(f"malformed JSON payload: {exc}") from exc

    def _check_tree(self, value: Any, depth: int) -> None:
        """Refuse a decoded value nested past max_depth or holding a non-``str`` map key."""
        if isinstance(value, dict):
            if depth >= self._max_depth:
                raise self._too_deep()
            for k in value:
                if type(k) is not str:
                    # encode refuses such keys, so these bytes were not written by this codec;
                    # returned, a bytes key would differ from the str key it looks like
                    # ({b"a": 1} != {"a": 1}) and JSON could not carry it at all.
                    raise SerializationError(f"map keys must be str, got {type(k).__name__}")
            for v in value.values():
                if isinstance(v, dict | list):
                    self._check_tree(v, depth + 1)
        elif isinstance(value, list):
            if depth >= self._max_depth:
                raise self._too_deep()
            for v in value:
                if isinstance(v, dict | list):
                    self._check_tree(v, depth + 1)

    def _from_json(self, value: Any, depth: int) -> Any:
        if isinstance(value, dict):
            if depth >= self._max_depth:
                raise self._too_deep()
            if len(value) == 1:
                if "$b" in value:
                    encoded = value["$b"]
                    if not isinstance(encoded, str):
                        raise SerializationError("malformed bytes tag")
                    try:
                        return base64.b64decode(encoded, validate=True)
                    except (binascii.Error, ValueError) as exc:
                        raise SerializationError("malformed bytes tag") from exc
                if "$d" in value:
                    inner = value["$d"]
                    if not isinstance(inner, dict):
                        raise SerializationError("malformed dict tag")
                    return {k: self._from_json(v, depth + 1) for k, v in inner.items()}
            return {k: self._from_json(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            if depth >= self._max_depth:
                raise self._too_deep()
            return [self._from_json(v, depth + 1) for v in value]
        return value

    def _check_class(self, class_path: tuple[str, ...], kwargs: dict[str, Any]) -> None:
        # Called by langchain's Reviver before it imports or instantiates anything.
        if class_path not in self._allowed_paths:
            raise ValueError(f"Deserialization of {class_path!r} is not allowed by this codec")
        default_init_validator(class_path, kwargs)

    def _revive(self, value: Any) -> Any:
        try:
            # load() is marked beta; the context variable silences that warning for this call
            # only (a warnings filter would be process-wide and not thread-safe).
            with suppress_langchain_beta_warning():
                return load(
                    value,
                    allowed_objects="all" if self._fast_gate else self._allowed,
                    secrets_from_env=False,
                    secrets_map={},
                    init_validator=self._check_class,
                )
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            ImportError,
            NotImplementedError,
            RecursionError,
        ) as exc:
            raise SerializationError(f"cannot revive LangChain object: {exc}") from exc
