r"""Key construction: one ``KeySpace`` builds every Redis key deepagents-redis touches.

Layout::

    <prefix>:v<schema>:<kind>:{<scope>}:<rest 1>:<rest 2>...

* ``prefix`` is chosen by the operator (``RedisSettings.key_prefix``) and validated, never encoded.
* ``v<schema>`` is the key-schema version, so a migration can find keys of an older layout.
* ``kind`` is a trusted identifier chosen by our code (``todo``, ``fs``, ``cache``...):
  ``[a-z0-9_-]+``.
* ``scope`` and the ``rest`` parts are untrusted (thread ids, paths, user names) and go through
  `KeySpace.encode_component`.
* The braces are the Redis Cluster hash tag: every key of one scope hashes to one slot, so one
  Lua script or MULTI may touch all of them.

Encoding of untrusted components is percent-style and injective. Each character that is one of
``% : { } * ? [ ] \\`` or is not printable (control characters, format characters, separators
other than the ASCII space, surrogates, unassigned code points) is replaced by ``%XX`` for every
byte of its UTF-8 form. The empty string becomes the marker ``%_`` (an empty hash tag ``{}``
would make Redis hash the whole key and break the one-slot guarantee). Because ``%`` itself is
escaped, ``:`` never appears inside an encoded component (it separates components unambiguously),
no brace can end the hash tag early, and no ``* ? [ ] \\`` can act as a ``SCAN MATCH`` pattern.

A key's scope and rest components are at most `MAX_KEY_COMPONENT_CHARS` characters each
(before encoding); a longer one is an `InvalidInputError`, so an untrusted namespace or path of
megabytes cannot become a key of megabytes. `encode_component` alone is not bounded: it is a
pure text encoding that callers also apply to other strings.
"""

from __future__ import annotations

import re
from typing import Final

from deepagents_redis.core._errors import InvalidInputError

__all__ = ["MAX_KEY_COMPONENT_CHARS", "KeySpace", "ScopedKeys"]

MAX_KEY_COMPONENT_CHARS: Final = 8192
"""Longest scope or rest component of a key, in characters before encoding.

Generous for real input: twice fs's longest file path (4,096 UTF-8 bytes, Linux PATH_MAX,
so at most 4,096 characters), which fs also uses as a scope joined with its namespace. The
BRIEF's key schema sets no length; Redis accepts keys up to 512 MB, and every command naming
a megabyte key sends, hashes and stores it again. Encoded, a component is at most 12 times
longer (a non-printable 4-byte character becomes ``%XX`` four times).
"""

_SPECIAL: Final = frozenset("%:{}*?[]\\")
_SPECIAL_RE: Final = re.compile(r"[%:{}*?\[\]\\]")
_SPECIAL_ESCAPED: Final = {ch: f"%{ord(ch):02X}" for ch in _SPECIAL}
_EMPTY: Final = "%_"
_KIND_RE: Final = re.compile(r"[a-z0-9_-]+")
# The prefix is operator-chosen and used verbatim: it may hold ':' (e.g. "myapp:dar") but no
# hash-tag braces or glob characters, so the scope's braces are always the first ones.
_PREFIX_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-:]*")
_HEX: Final = frozenset("0123456789ABCDEF")


def prefix_problem(prefix: object) -> str | None:
    """Why `prefix` cannot start our keys, or None (the one rule: settings and `KeySpace`).

    Args:
        prefix: A key prefix.

    Returns:
        The reason, or None when the prefix is valid.
    """
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix) or prefix[-1] == ":":
        return f"key prefix {prefix!r} must match [A-Za-z0-9][A-Za-z0-9_.:-]* and not end with ':'"
    return None


def _escape_char(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def _escape_special(match: re.Match[str]) -> str:
    return _SPECIAL_ESCAPED[match.group()]


def _encode(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"key components must be str, got {type(value).__name__}")
    if not value:
        return _EMPTY
    # Fast paths: most components (ids, simple paths) need no escaping at all, and a printable
    # one escapes only its ASCII specials (LangGraph's "branch:to:node" channels, in every
    # checkpoint: a character-by-character join was ~10 µs per component, issue 13).
    if value.isprintable():
        if _SPECIAL_RE.search(value) is None:
            return value
        return _SPECIAL_RE.sub(_escape_special, value)
    return "".join(
        _escape_char(ch) if ch in _SPECIAL or not ch.isprintable() else ch for ch in value
    )


def _component(value: str) -> str:
    """`_encode` of a key's scope or rest component, refused over the length bound.

    The length is checked first (``len`` is O(1)), so a hostile component is refused before
    any encoding work; the message names its length, never its text.
    """
    if isinstance(value, str) and len(value) > MAX_KEY_COMPONENT_CHARS:
        raise InvalidInputError(
            f"key component is {len(value)} characters long, over the limit of "
            f"{MAX_KEY_COMPONENT_CHARS}"
        )
    return _encode(value)


def _decode(value: str) -> str:
    if value == _EMPTY:
        return ""
    if not value:
        raise InvalidInputError("an encoded key component is never empty")
    out: list[str] = []
    pending = bytearray()
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "%":
            pair = value[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise InvalidInputError(f"bad escape in key component {value!r}")
            pending.append(int(pair, 16))
            i += 3
            continue
        if pending:
            out.append(_utf8(pending, value))
            pending.clear()
        out.append(ch)
        i += 1
    if pending:
        out.append(_utf8(pending, value))
    decoded = "".join(out)
    # Only the canonical spelling is accepted, so decode is the exact inverse of encode.
    if _encode(decoded) != value:
        raise InvalidInputError(f"non-canonical key component {value!r}")
    return decoded


def _utf8(raw: bytearray, whole: str) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"bad escape in key component {whole!r}") from exc


class KeySpace:
    """Builds and parses every key: ``<prefix>:v<schema>:<kind>:{<scope>}:<rest...>``.

    Args:
        prefix: Operator-chosen prefix (``[A-Za-z0-9][A-Za-z0-9_.:-]*``, no trailing ``:``).
        schema_version: Version of the key layout; part of every key.

    Raises:
        InvalidInputError: If the prefix or schema version is malformed.

    Example:
        >>> ks = KeySpace("dar")
        >>> ks.key("todo", "thread:1", "list")
        'dar:v1:todo:{thread%3A1}:list'
    """

    __slots__ = ("_base", "_prefix", "_schema_version")

    def __init__(self, prefix: str = "dar", *, schema_version: int = 1) -> None:
        problem = prefix_problem(prefix)
        if problem is not None:
            raise InvalidInputError(problem)
        if isinstance(schema_version, bool) or not isinstance(schema_version, int):
            raise InvalidInputError("schema_version must be an int")
        if schema_version < 1:
            raise InvalidInputError("schema_version must be >= 1")
        self._prefix = prefix
        self._schema_version = schema_version
        self._base = f"{prefix}:v{schema_version}:"

    @property
    def prefix(self) -> str:
        """The operator-chosen prefix, verbatim."""
        return self._prefix

    @property
    def schema_version(self) -> int:
        """The key-schema version written into every key."""
        return self._schema_version

    def __repr__(self) -> str:
        return f"KeySpace({self._prefix!r}, schema_version={self._schema_version})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeySpace):
            return NotImplemented
        return (self._prefix, self._schema_version) == (other._prefix, other._schema_version)

    def __hash__(self) -> int:
        return hash((self._prefix, self._schema_version))

    @staticmethod
    def encode_component(value: str) -> str:
        r"""Encode one untrusted key component injectively (see the module docstring).

        Args:
            value: Any string.

        Returns:
            A non-empty string without ``: { } * ? [ ] \\``, control or non-printable characters.

        Raises:
            InvalidInputError: If ``value`` is not a ``str``.
        """
        return _encode(value)

    @staticmethod
    def decode_component(value: str) -> str:
        """Invert `encode_component`.

        Args:
            value: An encoded component.

        Returns:
            The original string.

        Raises:
            InvalidInputError: If ``value`` is not the canonical encoding of any string.
        """
        return _decode(value)

    @staticmethod
    def _check_kind(kind: str) -> None:
        if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
            raise InvalidInputError(f"key kind {kind!r} must match [a-z0-9_-]+")

    def scope_tag(self, scope: str) -> str:
        """Return the hash tag of a scope, braces included: ``{<encoded scope>}``.

        Args:
            scope: The untrusted scope (thread id, namespace...).

        Returns:
            The tag; all keys of this scope share it and so share one Cluster slot.

        Raises:
            InvalidInputError: If ``scope`` is not a ``str`` or is over
                `MAX_KEY_COMPONENT_CHARS` characters.
        """
        return "{" + _component(scope) + "}"

    def key(self, kind: str, scope: str, *rest: str) -> str:
        """Build a key.

        Args:
            kind: Trusted identifier of the key's family (``[a-z0-9_-]+``).
            scope: Untrusted scope; becomes the hash tag.
            *rest: Untrusted further components, each encoded and joined by ``:``.

        Returns:
            ``<prefix>:v<schema>:<kind>:{<scope>}`` followed by ``:<part>`` per rest part.

        Raises:
            InvalidInputError: On a malformed kind, a non-``str`` component, or a component
                over `MAX_KEY_COMPONENT_CHARS` characters.
        """
        self._check_kind(kind)
        head = f"{self._base}{kind}:{{{_component(scope)}}}"
        if not rest:
            return head
        return head + ":" + ":".join(_component(part) for part in rest)

    def scoped(self, kind: str, scope: str) -> ScopedKeys:
        """A builder for the keys of one (kind, scope), with the head encoded once.

        For hot paths (a cache lookup builds a key per call): `scoped(k, s).key(*rest)` is
        `key(k, s, *rest)` without re-encoding the kind and scope each time.

        Args:
            kind: Trusted identifier of the key family.
            scope: Untrusted scope (the hash tag).

        Returns:
            The builder.
        """
        return ScopedKeys(self.key(kind, scope))

    def op_key(self, scope: str, op_id: str) -> str:
        """Build the operation-id key of a retry-safe write (see ``run_idempotent``).

        Args:
            scope: The scope of the data keys the operation writes (same hash tag).
            op_id: A unique id for the operation, reused on every retry.

        Returns:
            ``key("op", scope, op_id)``.
        """
        return self.key("op", scope, op_id)

    def parse(self, key: str | bytes) -> tuple[str, str, tuple[str, ...]]:
        """Split a key built by this key space back into ``(kind, scope, rest)``.

        Args:
            key: A key (``bytes`` as returned by Redis are decoded as UTF-8).

        Returns:
            The decoded ``(kind, scope, rest)``.

        Raises:
            InvalidInputError: If the key was not built by this key space.
        """
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError("key is not UTF-8") from exc
        if not key.startswith(self._base):
            raise InvalidInputError(f"key {key!r} is not in {self!r}")
        kind, sep, tail = key[len(self._base) :].partition(":")
        if not sep or not _KIND_RE.fullmatch(kind) or not tail.startswith("{"):
            raise InvalidInputError(f"malformed key {key!r}")
        close = tail.find("}")
        if close < 0:
            raise InvalidInputError(f"malformed key {key!r}")
        scope = _decode(tail[1:close])
        after = tail[close + 1 :]
        if not after:
            return kind, scope, ()
        if not after.startswith(":"):
            raise InvalidInputError(f"malformed key {key!r}")
        return kind, scope, tuple(_decode(part) for part in after[1:].split(":"))

    def scan_pattern(self, kind: str | None = None, scope: str | None = None) -> str:
        """Build a ``SCAN MATCH`` pattern for admin tools and migrations.

        The pattern's literal part holds no glob character (the prefix forbids them and
        components are encoded), so it matches exactly the keys it names. Run it on every
        primary of a cluster; never use SCAN on a hot path (BRIEF §4).

        Args:
            kind: Restrict to one kind.
            scope: Restrict to one scope of ``kind`` (requires ``kind``).

        Returns:
            A glob pattern ending in ``*``.

        Raises:
            InvalidInputError: If ``scope`` is given without ``kind``, or is over
                `MAX_KEY_COMPONENT_CHARS` characters.
        """
        if kind is None:
            if scope is not None:
                raise InvalidInputError("scan_pattern: scope needs a kind")
            return self._base + "*"
        self._check_kind(kind)
        if scope is None:
            return f"{self._base}{kind}:*"
        return f"{self._base}{kind}:{self.scope_tag(scope)}*"

    def schema_marker_key(self) -> str:
        """Return the key holding the deployed key-schema version: ``<prefix>:schema``."""
        return f"{self._prefix}:schema"


class ScopedKeys:
    """The keys of one (kind, scope) of a `KeySpace` (see `KeySpace.scoped`).

    Attributes:
        head: `<prefix>:v<schema>:<kind>:{<scope>}`, the key every other key extends.
    """

    __slots__ = ("head",)

    def __init__(self, head: str) -> None:
        self.head = head

    def key(self, *rest: str) -> str:
        """`KeySpace.key(kind, scope, *rest)`, with only `rest` encoded here.

        Args:
            *rest: Untrusted further components, each encoded and joined by ``:``.

        Returns:
            The key.
        """
        if not rest:
            return self.head
        return self.head + ":" + ":".join(_component(part) for part in rest)

    def __repr__(self) -> str:
        return f"ScopedKeys({self.head!r})"
