"""``RedisTodoRepository``: versioned plans with atomic per-item operations.

Layout (all keys of a plan share its scope's hash tag, so one Cluster slot):

====================================  =====================================================
``<prefix>:v1:todos:{<scope>}:plan``  hash: ``version``, ``items`` (JSON array),
                                      ``updated_ms``, ``last_op`` (op id of the last
                                      mutation), ``index`` (item ids and JSON lengths)
``<prefix>:v1:todos:{<scope>}:log``   stream: one entry per applied mutation, ``MAXLEN ~``
``<prefix>:v1:op:{<scope>}:<op id>``  ``{version}`` of an applied mutation (not the
                                      plan), kept ``op_ttl_seconds`` so a retry is
                                      recognised
====================================  =====================================================

A plan stored by an older version (no ``index``, or one it made stale) reads the same; its
next mutation indexes it, in the same script call.

Every mutation is one call of one Lua script (``lua/mutate.lua``) run through core's
``IdempotentScript``: validate, check the expected version, apply, bump the version, append
to the log, record the operation id; then, in the same call, the current plan is read back
(see `MUTATE_SCRIPT`). A read is one ``HMGET``. One item's update, claim, complete, add or
remove decodes and encodes that item only, server-side: the index gives its offset in
``items`` (see ``lua/mutate.lua``).

A mutation returns the plan after it. When the repository holds the plan as it stood before
the call (the state its last reply for that scope described, kept for up to 128 scopes of at
most 64 KB each) and nobody wrote since, the script sends back only the change (one item and
its position) and the repository applies it to that state: a 10-item update no longer
transfers and parses the 9 items it did not touch (see `RedisTodoRepository._reply`).

Limits (``TodosSettings``: ``max_items``, ``max_content_bytes``, ``max_plan_bytes``) are
checked on the client before anything is sent, and again by the script before its first
write, for plans that grew through other writers.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Unpack

from deepagents_redis.core import (
    MAX_OP_TTL_MS,
    Command,
    Connection,
    EvictionCheck,
    EvictionGuard,
    Idempotent,
    IdempotentScript,
    InvalidInputError,
    KeySpace,
    LuaScript,
    Operation,
    RedisComponent,
    ScopedKeys,
    SerializationError,
    arun_operation,
    deadline,
    get_instrumentation,
    run_operation,
)
from deepagents_redis.todos._errors import script_words, too_large
from deepagents_redis.todos._models import (
    TODO_STATUSES,
    Todo,
    TodoChange,
    TodoList,
    TodoStatus,
    _stored_time,
    _todo_from_stored,
    _trusted,
    content_is_blank,
    malformed,
    new_item_id,
)
from deepagents_redis.todos._settings import TodosSettings

__all__ = [
    "KIND",
    "MAX_LEASE_SECONDS",
    "MAX_TAG_CHARS",
    "MUTATE_SCRIPT",
    "EvictionCheck",
    "RedisTodoRepository",
    "TodoInput",
    "parse_plan",
]


log = logging.getLogger("deepagents_redis.todos")

"""What a repository does, before its first write, if the server may evict plans."""

KIND = "todos"
"""The key kind of every todos key (``KeySpace.key(KIND, scope, ...)``)."""

MAX_TAG_CHARS = 1_024
"""The longest ``op_id`` and ``actor`` a mutation takes. Neither counts against the plan's
size limits, yet the op id names a key and is kept in the plan (``last_op``), and both go into
every change-log entry: a 1 MB actor grew the log by 1 MB per mutation, up to ``log_maxlen``
entries."""

MAX_LEASE_SECONDS = 10 * 365 * 86_400
"""The longest lease `RedisTodoRepository.claim` grants (ten years; ``mutate.lua`` holds the
same bound in ms). Past it the lease's end is a number cjson writes with too few digits and,
further out, past any datetime: one claim made the plan unreadable for every reader."""

_WITH_PLAN = """\
-- todos_mutate: core's idempotent wrapper around mutate.lua (unchanged, below), then the plan.
-- KEYS/ARGV: the wrapper's; KEYS[2] is the plan hash.
-- returns {op_version, version, items_json, updated_ms, last_op}: the version the operation
-- produced (the body's reply; on a replay: the recorded one), then the plan as it is now;
-- errors: the body's error replies, unchanged; MALFORMED for an op record this package did
-- not write.
-- Why: the wrapper records the body's reply for op_ttl; a reply carrying the plan made every
-- mutation hold a plan-sized record for a day (1,000 updates of a 27 KB plan: +27.5 MB). The
-- body now returns {version} and the plan is read here, after the wrapper, in the
-- same call: a first run and a replay both cost one round trip.
-- `written`: the body sets it to {version, items, updated_ms, last_op}, the fields its HSET
-- just wrote, so a first run returns them without reading them back (an HMGET of the plan
-- was ~2.5 us of server time per mutation); a replay (the body does not run) reads them.
-- A first run whose client knew the plan before it (ARGV `known`) gets {op_version, version,
-- false, updated_ms, last_op, kind, position, item_json, items_length} instead: the change,
-- not the plan (see the end of mutate.lua).
local written
local function idempotent()
{wrapped}
end
local reply = idempotent()
if type(reply) == 'table' and reply['err'] ~= nil then return reply end
-- A replay's reply is the op record as stored, under the plan's hash tag: one this package
-- did not write ({version}, a whole number >= 1) is refused, not handed to the client as a
-- version (it raised TypeError there, or answered a replay for an op never applied).
local v = type(reply) == 'table' and reply[1]
if type(v) ~= 'number' or v < 1 or v ~= math.floor(v) then
  return redis.error_reply('MALFORMED the op record of this op id is not one this package wrote')
end
if written then
  local out = {reply[1]}
  for i = 1, #written do out[i + 1] = written[i] end
  return out
end
local plan = redis.call('HMGET', KEYS[2], 'version', 'items', 'updated_ms', 'last_op')
return {reply[1], plan[1], plan[2], plan[3], plan[4]}
"""


class _MutateScript(IdempotentScript):
    """An ``IdempotentScript`` whose reply also carries the current plan (``_WITH_PLAN``)."""

    def __init__(self, name: str, body: str) -> None:
        super().__init__(name, body)
        LuaScript.__init__(self, name, _WITH_PLAN.replace("{wrapped}", self.source))


MUTATE_SCRIPT: IdempotentScript = _MutateScript.from_package(
    "todos_mutate", "deepagents_redis.todos", "mutate.lua"
)
"""The one script every mutation runs (contract in the header of ``lua/mutate.lua``; the reply
is ``{op_version, version, items_json, updated_ms, last_op}``, see ``_WITH_PLAN``)."""

TodoInput = Todo | Mapping[str, Any]
"""An item for `RedisTodoRepository.replace`: a `Todo` or a mapping with at
least ``content`` (``id`` is generated when absent, ``status`` defaults to ``pending``)."""


def _new_op_id() -> str:
    """A fresh op id: 128 random bits as hex (``uuid4().hex`` cost ~2 µs, this ~0.4 µs)."""
    return os.urandom(16).hex()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _check_status(status: str) -> None:
    if status not in TODO_STATUSES:
        raise InvalidInputError(f"unknown status {status!r}; expected one of {TODO_STATUSES}")


def _check_content(content: str) -> None:
    if not isinstance(content, str) or content_is_blank(content):
        raise InvalidInputError("todo content must be a non-empty string")


def _contents(payload: Mapping[str, Any]) -> Iterator[Any]:
    """Every item content a mutation payload carries (replace, add or update)."""
    for item in payload.get("items") or ():
        yield item.get("content")
    item = payload.get("item")
    if isinstance(item, Mapping):
        yield item.get("content")
    yield payload.get("content")


def _check_keys(metadata: Mapping[str, Any]) -> None:
    """Refuse a mapping key that is not text, at any depth.

    json.dumps writes 1, 1.5, True and None keys as the strings "1", "1.5", "true" and
    "null": the metadata read back was not the metadata written, and ``{1: "a", "1": "b"}``
    became an object with the key "1" twice, of which a reader keeps one. A loop, not
    recursion: a hostile nest reaches json.dumps, whose RecursionError is refused there;
    a container met twice is walked once (a cycle is json.dumps' "Circular reference").
    """
    stack: list[Any] = [metadata]
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if not isinstance(value, (Mapping, list, tuple)) or id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        "todo metadata keys must be strings (JSON object keys), "
                        f"got {type(key).__name__} {key!r:.40}"
                    )
                stack.append(item)
        else:
            stack.extend(value)


def _encode_metadata(metadata: Mapping[str, Any]) -> str:
    _check_keys(metadata)
    # allow_nan=False: json.dumps writes NaN and Infinity by default, which are not JSON, and
    # the stored metadata is documented as JSON that other readers may parse.
    try:
        return json.dumps(
            dict(metadata), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError) as exc:
        # RecursionError: nested past the interpreter's limit (it escaped untyped)
        raise InvalidInputError(f"todo metadata must be JSON-serializable: {exc}") from exc


def _item_payload(item: TodoInput) -> dict[str, Any]:
    """Encode one ``replace`` item; fields the caller did not set are left out (kept)."""
    if isinstance(item, Todo):
        fields = item.model_fields_set
        out: dict[str, Any] = {"id": item.id, "content": item.content, "status": item.status}
        if "owner" in fields:
            out["owner"] = item.owner
        if "metadata" in fields:
            out["metadata"] = _encode_metadata(item.metadata)
        return out
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"a todo is a Todo or a mapping with content, got {type(item).__name__}"
        )
    if "content" not in item:
        raise InvalidInputError("a todo needs content")
    item_id = item.get("id")
    if item_id is not None and not isinstance(item_id, str):
        # str() stored b'abc' as "b'abc'" and 7 as "7".
        raise InvalidInputError(f"a todo id must be a string, got {type(item_id).__name__}")
    out = {
        "id": item_id or new_item_id(),
        "content": item["content"],
        "status": item.get("status", "pending"),
    }
    if "owner" in item:
        out["owner"] = item["owner"]
    if "metadata" in item:
        out["metadata"] = _encode_metadata(item["metadata"])
    return out


_Item = tuple[dict[str, Any], Any]
"""A parsed item as the repository keeps it: its fields (never handed out: each plan gets its
own copy) and its stored ``metadata`` JSON (decoded again for each plan, so no two plans
share a mutable dict)."""

_Known = tuple[str, list[_Item]]
"""A plan state the client holds: the token the script compares (``known`` in mutate.lua)
and the items."""


def _parse_items(items_raw: Any) -> list[Any]:
    try:
        items = json.loads(_text(items_raw)) if items_raw is not None else []
    except (ValueError, TypeError, RecursionError) as exc:
        raise malformed(f"{type(exc).__name__}: {exc}") from exc
    if type(items) is not list:
        raise malformed("items is not a JSON array")
    return items


def _fresh(item: _Item) -> Todo:
    """A new `Todo` from a kept item (checked when it was first parsed)."""
    values, metadata_raw = item
    fields = values.copy()
    fields["metadata"] = {} if metadata_raw is None else json.loads(metadata_raw)
    return _trusted(Todo, fields)


def _kept(todo: Todo, raw: Mapping[str, Any]) -> _Item:
    return todo.__dict__.copy(), raw.get("metadata")


def parse_plan(scope: str, version_raw: Any, items_raw: Any, updated_raw: Any) -> TodoList:
    """Build a `TodoList` from the stored hash fields (or a script reply).

    The fields are untrusted (anything can write to Redis): each item is checked as it is
    built (`Todo.from_stored`), and anything that is not a plan raises `SerializationError`.

    Args:
        scope: The plan's scope.
        version_raw: The ``version`` field (None when the plan was never written).
        items_raw: The ``items`` field (a JSON array).
        updated_raw: The ``updated_ms`` field.

    Returns:
        The plan.

    Raises:
        SerializationError: The stored plan is malformed.
    """
    if version_raw is None:
        return TodoList(scope=scope)
    version, updated = _version_and_time(version_raw, updated_raw)
    # Checked per field by `_todo_from_stored`, then built without a pydantic pass.
    return TodoList.trusted(
        scope=scope,
        version=version,
        items=[_todo_from_stored(raw) for raw in _parse_items(items_raw)],
        updated_at=updated,
    )


def _version(raw: Any) -> int:
    """A stored version: 1 to 15 ASCII digits, as ``mutate.lua`` writes and accepts.

    ``int()`` alone took ``-1``, `` 2`` and ``1_0``, and the script read what it could not
    parse as 0 (see ``mutate.lua``): reads and writes now refuse the same values.
    """
    if type(raw) is int and raw >= 0:
        return raw
    if isinstance(raw, bytes | str) and 0 < len(raw) <= 15 and raw.isascii() and raw.isdigit():
        return int(raw)
    raise malformed(f"the stored version is not a count of at most 15 digits: {raw!r:.40}")


def _version_and_time(version_raw: Any, updated_raw: Any) -> tuple[int, datetime | None]:
    version = _version(version_raw)
    try:
        updated = None if updated_raw is None else _stored_time(int(updated_raw))
    except (ValueError, TypeError) as exc:
        # UnicodeDecodeError is a ValueError.
        raise malformed(f"{type(exc).__name__}: {exc}") from exc
    return version, updated


def _parse_change(entry_id: Any, fields: Mapping[Any, Any]) -> TodoChange:
    """One change-log entry as a `TodoChange`.

    The log is untrusted like the plan (anything can ``XADD`` to it): an entry that is not
    one the mutation script writes raises `SerializationError`, not a KeyError, a
    ValueError or a pydantic error.

    Raises:
        SerializationError: The entry is not a change this package wrote.
    """
    try:
        data = {_text(k): _text(v) for k, v in fields.items()}
        eid = _text(entry_id)
        detail = json.loads(data.get("detail") or "{}")
        if type(detail) is not dict:
            raise ValueError("detail is not a JSON object")
        return TodoChange(
            entry_id=eid,
            version=int(data["v"]),
            op=data["op"],
            actor=data.get("actor", ""),
            op_id=data.get("op_id", ""),
            item_id=data.get("item") or None,
            detail=detail,
            at=datetime.fromtimestamp(int(eid.split("-")[0]) / 1000, tz=UTC),
        )
    except (KeyError, ValueError, TypeError, RecursionError, OverflowError, OSError) as exc:
        # pydantic's ValidationError and UnicodeDecodeError are ValueErrors.
        raise SerializationError(
            f"change log entry {_text(entry_id)!r} is malformed: {type(exc).__name__}: {exc}"
        ) from exc


def _not_unicode(exc: UnicodeEncodeError) -> InvalidInputError:
    """The error for a mutation whose text Redis cannot carry (a lone surrogate).

    A model's JSON escape for U+D800 decodes to a Python ``str`` that no UTF-8 encoder takes;
    the packer refuses it before anything is sent (a mutation is one command), so nothing
    changed. Caught around the call instead of checked up front: encoding every payload a
    second time would cost each mutation, this costs nothing until it happens.
    """
    return InvalidInputError(
        f"todo text must be valid Unicode: {exc.object[exc.start : exc.end]!r} "
        "(a lone surrogate) cannot be stored"
    )


def _check_limit(limit: Any) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInputError(f"history limit must be an int >= 0, got {limit!r}")


class RedisTodoRepository(RedisComponent):
    """Versioned todo plans in Redis, with sync and async methods.

    Every mutation takes an optional ``expected_version`` (raise
    `ConflictError` carrying the actual version if the plan
    moved) and an optional ``op_id`` (reuse it when you retry the same logical operation,
    and it is applied once; by default one is generated per call and reused on the
    client's own retries). Every mutation returns the plan as it stands after it.

    Example:
        >>> repo = RedisTodoRepository(url="redis://localhost:6379/0")  # doctest: +SKIP
        >>> plan = repo.add("thread-1", "write the report")  # doctest: +SKIP
        >>> repo.claim("thread-1", plan.items[0].id, "worker-7", lease_seconds=60)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        todos_settings: TodosSettings | None = None,
        actor: str = "api",
        retries: int = 2,
        eviction_check: EvictionCheck = "warn",
        **connection: Unpack[Connection],
    ) -> None:
        """Create a repository.

        Args:
            todos_settings: Item cap, log length, op-id TTL (default: from the environment).
            actor: Recorded in the change log for mutations that do not pass their own.
            retries: How many times a timed-out mutation is re-sent with the same op id.
            eviction_check: Before the first write, look at the server's eviction policy
                (core's ``check_health``): an ``allkeys-*`` policy can evict plans, which
                have no TTL. ``warn`` logs a warning, ``refuse`` raises
                ``ConfigurationError``, ``off`` skips the check.
            **connection: How to connect (core's `Connection`): `connector=`, a shared
                `RedisConnector` the caller closes, or the conveniences `url=`, `settings=`,
                `client=`, `async_client=`, from which the repository builds one it owns
                and closes (ready clients are never closed by it).
        """
        self._attach(**connection)
        self.settings = todos_settings or TodosSettings()
        """The todos settings in use."""
        self.keyspace = self._connector.keyspace
        """The key space every key is built with."""
        self.actor = actor
        """Default actor recorded in the change log."""
        self._retries = retries
        self._eviction = EvictionGuard(
            "todo plans", eviction_check, logger="deepagents_redis.todos"
        )
        self._scope_keys: dict[str, tuple[str, str, ScopedKeys]] = {}
        self._known: dict[str, _Known] = {}
        self._scope_keys_of: KeySpace | None = None

    # -- keys ---------------------------------------------------------------------------

    def plan_key(self, scope: str) -> str:
        """The key of a plan's hash.

        Args:
            scope: The plan's scope.

        Returns:
            The key.
        """
        return self.keyspace.key(KIND, scope, "plan")

    def log_key(self, scope: str) -> str:
        """The key of a plan's change-log stream.

        Args:
            scope: The plan's scope.

        Returns:
            The key.
        """
        return self.keyspace.key(KIND, scope, "log")

    def _keys(self, scope: str) -> tuple[str, str, ScopedKeys]:
        """A scope's plan key, log key and op-key builder, built once per scope.

        Three keys per mutation cost ~3.5 µs to encode (a tenth of a mutation's client
        time, profiled); the cache is bounded and belongs to the key space it was built
        with. A scope that is not a ``str`` is not cached, so it fails in `KeySpace.key`
        with its usual `InvalidInputError`.
        """
        cache = self._scope_keys
        if self._scope_keys_of is not self.keyspace:
            cache.clear()
            self._scope_keys_of = self.keyspace
        keys = cache.get(scope) if type(scope) is str else None
        if keys is None:
            keys = (self.plan_key(scope), self.log_key(scope), self.keyspace.scoped("op", scope))
            if len(cache) >= 1024:
                cache.clear()
            cache[scope] = keys
        return keys

    # -- durability ---------------------------------------------------------------------

    def _check_eviction(self) -> None:
        self._eviction.check(self._connector.client())

    async def _acheck_eviction(self) -> None:
        await self._eviction.acheck(
            await self._connector.aclient(), gate=self._connector.async_gate()
        )

    # -- the call -----------------------------------------------------------------------

    def _args(
        self,
        op: str,
        expected_version: int | None,
        payload: Mapping[str, Any],
        actor: str | None,
        op_id: str,
        known: str = "",
    ) -> list[str]:
        if expected_version is not None and (
            isinstance(expected_version, bool) or not isinstance(expected_version, int)
        ):
            raise InvalidInputError("expected_version must be an int or None")
        actor = actor or self.actor
        if not isinstance(op_id, str) or not isinstance(actor, str):
            raise InvalidInputError("op_id and actor must be strings")
        if len(op_id) > MAX_TAG_CHARS or len(actor) > MAX_TAG_CHARS:
            raise InvalidInputError(
                f"op_id and actor must be at most {MAX_TAG_CHARS} characters "
                f"(got {len(op_id)} and {len(actor)})"
            )
        # The limits, before anything is sent (the script checks them again for plans that
        # grew through other writers). Counting bytes encodes long text, so a lone surrogate
        # fails here, before the call that maps the packer's UnicodeEncodeError.
        try:
            for content in _contents(payload):
                if isinstance(content, str) and len(content) > self.settings.max_content_bytes // 4:
                    size = len(content.encode("utf-8"))
                    if size > self.settings.max_content_bytes:
                        raise too_large("content", size, self.settings.max_content_bytes)
            try:
                encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                # An id or owner that is not text (bytes, an object) in the payload.
                raise InvalidInputError(f"todo ids and owners must be strings: {exc}") from exc
            if len(encoded) > self.settings.max_plan_bytes // 4:
                size = len(encoded.encode("utf-8"))
                if size > self.settings.max_plan_bytes:
                    raise too_large("payload", size, self.settings.max_plan_bytes)
        except UnicodeEncodeError as exc:
            raise _not_unicode(exc) from exc
        return [
            op,
            "" if expected_version is None else str(expected_version),
            encoded,
            str(self.settings.max_items),
            str(self.settings.log_maxlen),
            actor,
            op_id,
            str(self.settings.max_content_bytes),
            str(self.settings.max_plan_bytes),
            known,
        ]

    def _mutate(
        self,
        scope: str,
        op: str,
        payload: Mapping[str, Any],
        *,
        expected_version: int | None,
        actor: str | None,
        op_id: str | None,
        item_id: str | None = None,
    ) -> TodoList:
        op_id = op_id or _new_op_id()
        known = self._known.get(scope) if type(scope) is str else None
        request = self._request(scope, op, payload, expected_version, actor, op_id, known)
        with self._deadline():
            self._check_eviction()
            try:
                return run_operation(
                    self._connector,
                    f"todos.{op}",
                    self._mutate_op(scope, request, op_id, known),
                    deadline_seconds=self._connector.settings.deadline_seconds,
                    expected=expected_version,
                    words=script_words(item_id),
                    scope=scope,
                )
            except UnicodeEncodeError as exc:
                raise _not_unicode(exc) from exc

    async def _amutate(
        self,
        scope: str,
        op: str,
        payload: Mapping[str, Any],
        *,
        expected_version: int | None,
        actor: str | None,
        op_id: str | None,
        item_id: str | None = None,
    ) -> TodoList:
        op_id = op_id or _new_op_id()
        known = self._known.get(scope) if type(scope) is str else None
        request = self._request(scope, op, payload, expected_version, actor, op_id, known)
        with self._deadline():
            await self._acheck_eviction()
            try:
                return await arun_operation(
                    self._connector,
                    f"todos.{op}",
                    self._mutate_op(scope, request, op_id, known),
                    deadline_seconds=self._connector.settings.deadline_seconds,
                    expected=expected_version,
                    words=script_words(item_id),
                    scope=scope,
                )
            except UnicodeEncodeError as exc:
                raise _not_unicode(exc) from exc

    def _mutate_op(
        self, scope: str, request: Idempotent, op_id: str, known: _Known | None
    ) -> Operation[TodoList]:
        """One mutation: one call of ``MUTATE_SCRIPT`` (run sync or async by core's driver)."""
        reply = yield request
        return self._reply(scope, reply, op_id, known)

    def _request(
        self,
        scope: str,
        op: str,
        payload: Mapping[str, Any],
        expected_version: int | None,
        actor: str | None,
        op_id: str,
        known: _Known | None = None,
    ) -> Idempotent:
        """The request of one mutation (limits checked here, before anything is sent)."""
        plan_key, log_key, op_keys = self._keys(scope)
        return Idempotent(
            MUTATE_SCRIPT,
            op_keys.key(op_id),
            [plan_key, log_key],
            self._args(op, expected_version, payload, actor, op_id, known[0] if known else ""),
            op_ttl_ms=self._op_ttl_ms(),
            retries=self._retries,
        )

    def _op_ttl_ms(self) -> int:
        """How long a mutation's op record lives: at least twice the call's deadline.

        ``op_ttl_seconds``, raised to twice ``RedisSettings.deadline_seconds`` (the call
        re-sends the mutation with the same op id until its deadline). A shorter record
        (``op_ttl_seconds=1`` with the default 2 s socket timeout) expired before the re-send
        of a reply lost to a timeout, and the mutation applied twice.
        """
        retry_window = math.ceil(2_000 * self._connector.settings.deadline_seconds)
        return min(MAX_OP_TTL_MS, max(self.settings.op_ttl_seconds * 1000, retry_window))

    def _deadline(self) -> AbstractContextManager[None]:
        """The time bound of one public call (`RedisSettings.deadline_seconds`)."""
        return deadline(self._connector.settings.deadline_seconds)

    def _reply(self, scope: str, reply: Any, op_id: str, known: _Known | None) -> TodoList:
        """The plan after a mutation, from ``MUTATE_SCRIPT``'s reply.

        The op record holds the version the mutation produced; the plan records the op id
        of its last mutation (``last_op``). The plan returned is the one stored now: on a
        first run (and on a replay when nobody wrote since) it is exactly the mutation's
        result; on a replay after other writes it is the newer plan, whose version is higher
        than the operation's (the operation was applied once, at its own version). That case
        is logged and counted (``todos.replay.moved``).

        A first run whose request named the plan state this client holds (``known``, the
        state the last reply for this scope described) may carry the change instead of the
        plan (see `_applied`). Either way the state the reply describes is kept for the
        next mutation of the scope.
        """
        items: list[_Item] | None
        if len(reply) == 9:
            op_version, version_raw, _, updated_ms, last_op, kind, k, item_json, size = reply
            plan, items = self._applied(scope, known, version_raw, updated_ms, kind, k, item_json)
        else:
            op_version, version_raw, items_json, updated_ms, last_op = reply
            plan, items, size = self._parsed(scope, version_raw, items_json, updated_ms)
        if plan.version != int(_text(op_version)) or (
            last_op is not None and _text(last_op) != op_id
        ):
            log.info(
                "todo plan %r: replayed operation (version %s); the plan moved on to version %s",
                scope,
                _text(op_version),
                plan.version,
            )
            get_instrumentation().count("todos.replay.moved")
        if items is not None and type(scope) is str:
            self._keep(scope, plan, last_op, updated_ms, size, items)
        return plan

    @staticmethod
    def _parsed(
        scope: str, version_raw: Any, items_json: Any, updated_ms: Any
    ) -> tuple[TodoList, list[_Item] | None, int]:
        """`parse_plan`, and the items as kept (None for a plan never written)."""
        if version_raw is None:
            return TodoList(scope=scope), None, 0
        version, updated = _version_and_time(version_raw, updated_ms)
        raws = _parse_items(items_json)
        todos = [_todo_from_stored(raw) for raw in raws]
        plan = TodoList.trusted(scope=scope, version=version, items=todos, updated_at=updated)
        kept = [_kept(todo, raw) for todo, raw in zip(todos, raws, strict=True)]
        # The byte length as the script counts it (a missing field reads as '[]').
        return plan, kept, 2 if items_json is None else len(items_json)

    @staticmethod
    def _applied(
        scope: str,
        known: _Known | None,
        version_raw: Any,
        updated_ms: Any,
        kind: Any,
        k: Any,
        item_json: Any,
    ) -> tuple[TodoList, list[_Item]]:
        """The plan after a change the script sent instead of the plan.

        The script sends it only when the stored plan was, before the change, the state
        ``known`` describes (its version, last op, time and byte length all matched); the
        new item is checked as any stored item is, the others were when first parsed, and
        each comes back as a new `Todo` (no two plans share an object).
        """
        if known is None:
            raise malformed("a change came back for a plan this client does not hold")
        version, updated = _version_and_time(version_raw, updated_ms)
        items = list(known[1])
        pos = int(k) - 1 if type(k) is int else -1
        what = _text(kind)
        new: Todo | None = None
        if what == "r" and 0 <= pos < len(items):
            del items[pos]
        elif what in ("u", "a") and 0 <= pos <= len(items) - (what == "u"):
            raw = _parse_items(b"[" + item_json + b"]" if isinstance(item_json, bytes) else None)
            if len(raw) != 1:
                raise malformed("a changed item is not one JSON object")
            new = _todo_from_stored(raw[0])
            entry = _kept(new, raw[0])
            if what == "u":
                items[pos] = entry
            else:
                items.insert(pos, entry)
        else:
            raise malformed(f"unknown change {what!r} at {k!r}")
        todos = [_fresh(item) for item in items]
        if new is not None:
            todos[pos] = new
        plan = TodoList.trusted(scope=scope, version=version, items=todos, updated_at=updated)
        return plan, items

    def _keep(
        self,
        scope: str,
        plan: TodoList,
        last_op: Any,
        updated_ms: Any,
        size: Any,
        items: list[_Item],
    ) -> None:
        """Keep the state a reply described, for the next mutation of this scope.

        Bounded: at most 128 scopes, and plans of at most 64 KB of JSON (a larger plan is
        sent whole each time, as before).
        """
        n = int(size)
        if n > 65_536:
            self._known.pop(scope, None)
            return
        token = f"{plan.version}:{_text(last_op) if last_op is not None else ''}:"
        token += f"{_text(updated_ms) if updated_ms is not None else ''}:{n}"
        if len(self._known) >= 128 and scope not in self._known:
            self._known.clear()
        self._known[scope] = (token, items)

    # -- payload builders (shared by the sync and async methods) ------------------------

    def _replace_payload(self, items: Iterable[TodoInput]) -> dict[str, Any]:
        if isinstance(items, str | bytes) or not isinstance(items, Iterable):
            raise InvalidInputError(
                f"replace takes a sequence of todos, got {type(items).__name__}"
            )
        encoded = [_item_payload(item) for item in items]
        for item in encoded:
            _check_content(item["content"])
            _check_status(item["status"])
        if len(encoded) > self.settings.max_items:
            from deepagents_redis.todos._errors import TooManyItemsError

            raise TooManyItemsError(len(encoded), self.settings.max_items)
        return {"items": encoded}

    @staticmethod
    def _add_payload(
        content: str,
        status: TodoStatus,
        metadata: Mapping[str, Any] | None,
        index: int | None,
        item_id: str | None,
    ) -> dict[str, Any]:
        _check_content(content)
        _check_status(status)
        if index is not None and (
            isinstance(index, bool) or not isinstance(index, int) or index < 0
        ):
            # The script appends for any index it cannot place: -1 (Python's "before the
            # last") put the item last, silently.
            raise InvalidInputError(f"index must be an int >= 0 or None, got {index!r}")
        if item_id is not None and (not isinstance(item_id, str) or not item_id):
            # item_id=0 and item_id="" generated an id silently: a caller that meant to name
            # its item got another id back, and a retry with the same name added a second one.
            raise InvalidInputError(
                "item_id must be a non-empty string, or None for a generated id; "
                f"got {item_id!r:.40}"
            )
        item: dict[str, Any] = {
            "id": item_id or new_item_id(),
            "content": content,
            "status": status,
        }
        if metadata is not None:
            item["metadata"] = _encode_metadata(metadata)
        return {"item": item, "index": -1 if index is None else index}

    @staticmethod
    def _update_payload(
        item_id: str,
        status: TodoStatus | None,
        content: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if status is None and content is None and metadata is None:
            # It used to bump the version and log a change that changed nothing: every
            # other writer's expected_version went stale for no edit.
            raise InvalidInputError("update needs a status, content or metadata to change")
        payload: dict[str, Any] = {"id": item_id}
        if status is not None:
            _check_status(status)
            payload["status"] = status
        if content is not None:
            _check_content(content)
            payload["content"] = content
        if metadata is not None:
            payload["metadata"] = _encode_metadata(metadata)
        return payload

    @staticmethod
    def _claim_payload(item_id: str, owner: str, lease_seconds: float) -> dict[str, Any]:
        if not owner:
            raise InvalidInputError("claim needs a non-empty owner")
        if (
            isinstance(lease_seconds, bool)
            or not isinstance(lease_seconds, int | float)
            or not math.isfinite(lease_seconds)
            or not 0 < lease_seconds <= MAX_LEASE_SECONDS
        ):
            raise InvalidInputError(
                f"lease_seconds must be a number > 0 and <= {MAX_LEASE_SECONDS}, "
                f"got {lease_seconds!r}"
            )
        return {"id": item_id, "owner": owner, "lease_ms": max(1, int(lease_seconds * 1000))}

    # -- reads --------------------------------------------------------------------------

    def _get_op(self, scope: str) -> Operation[TodoList]:
        raw = yield Command(("HMGET", self.plan_key(scope), "version", "items", "updated_ms"))
        return parse_plan(scope, *raw)

    def _history_op(self, scope: str, limit: int) -> Operation[list[TodoChange]]:
        _check_limit(limit)
        if limit == 0:
            # XREVRANGE ... COUNT 0 answers a null reply, not an empty list.
            return []
        raw = yield Command(("XREVRANGE", self.log_key(scope), "+", "-", "COUNT", limit))
        return [_parse_change(eid, fields) for eid, fields in reversed(raw)]

    def get(self, scope: str) -> TodoList:
        """Read a plan (version 0 and no items when it was never written).

        Args:
            scope: The plan's scope.

        Returns:
            The plan.
        """
        return run_operation(
            self._connector,
            "todos.get",
            self._get_op(scope),
            deadline_seconds=self._connector.settings.deadline_seconds,
            scope=scope,
        )

    async def aget(self, scope: str) -> TodoList:
        """Async `get`.

        Args:
            scope: The plan's scope.

        Returns:
            The plan.
        """
        return await arun_operation(
            self._connector,
            "todos.get",
            self._get_op(scope),
            deadline_seconds=self._connector.settings.deadline_seconds,
            scope=scope,
        )

    def history(self, scope: str, *, limit: int = 100) -> list[TodoChange]:
        """The newest ``limit`` entries of a plan's change log, oldest first.

        Args:
            scope: The plan's scope.
            limit: How many entries at most (0: none).

        Returns:
            The changes.

        Raises:
            InvalidInputError: ``limit`` is not an int >= 0.
            SerializationError: An entry of the log is not one this package writes.
        """
        return run_operation(
            self._connector,
            "todos.history",
            self._history_op(scope, limit),
            deadline_seconds=self._connector.settings.deadline_seconds,
            scope=scope,
        )

    async def ahistory(self, scope: str, *, limit: int = 100) -> list[TodoChange]:
        """Async `history`.

        Args:
            scope: The plan's scope.
            limit: How many entries at most (0: none).

        Returns:
            The changes.

        Raises:
            InvalidInputError: ``limit`` is not an int >= 0.
            SerializationError: An entry of the log is not one this package writes.
        """
        return await arun_operation(
            self._connector,
            "todos.history",
            self._history_op(scope, limit),
            deadline_seconds=self._connector.settings.deadline_seconds,
            scope=scope,
        )

    # -- mutations (sync) ---------------------------------------------------------------

    def replace(
        self,
        scope: str,
        items: Sequence[TodoInput],
        *,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Replace the whole list (ids keep owners, leases and metadata not given).

        Args:
            scope: The plan's scope.
            items: The new items, in order.
            expected_version: Apply only if the plan is at this version.
            op_id: Operation id (a retry with the same id applies once).
            actor: Who makes the change (change log).

        Returns:
            The plan after the change.

        Raises:
            ConflictError: The plan is not at ``expected_version``.
            InvalidInputError: Bad status, empty content, duplicate id, or too many items.
        """
        payload = self._replace_payload(items)
        return self._mutate(
            scope, "replace", payload, expected_version=expected_version, actor=actor, op_id=op_id
        )

    def add(
        self,
        scope: str,
        content: str,
        *,
        status: TodoStatus = "pending",
        metadata: Mapping[str, Any] | None = None,
        index: int | None = None,
        item_id: str | None = None,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Add one item (at the end, or before position ``index``).

        Args:
            scope: The plan's scope.
            content: What to do.
            status: Its status.
            metadata: Free-form JSON-serializable data.
            index: Insert before this position, counted from 0 (None, or past the end:
                append).
            item_id: The new item's id (generated when None).
            expected_version: Apply only if the plan is at this version.
            op_id: Operation id (a retry with the same id applies once).
            actor: Who makes the change (change log).

        Returns:
            The plan after the change.

        Raises:
            ConflictError: The plan is not at ``expected_version``.
            InvalidInputError: Bad input (a negative ``index`` too), duplicate id, or the
                plan is full.
        """
        payload = self._add_payload(content, status, metadata, index, item_id)
        return self._mutate(
            scope, "add", payload, expected_version=expected_version, actor=actor, op_id=op_id
        )

    def update(
        self,
        scope: str,
        item_id: str,
        *,
        status: TodoStatus | None = None,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Change one item's status, content and/or metadata.

        Args:
            scope: The plan's scope.
            item_id: The item.
            status: New status (None: unchanged).
            content: New content (None: unchanged).
            metadata: New metadata, replacing the old (None: unchanged).
            expected_version: Apply only if the plan is at this version.
            op_id: Operation id (a retry with the same id applies once).
            actor: Who makes the change (change log).

        Returns:
            The plan after the change.

        Raises:
            ConflictError: The plan is not at ``expected_version``.
            NotFoundError: No such item.
            InvalidInputError: Bad status, empty content, or nothing to change.
        """
        payload = self._update_payload(item_id, status, content, metadata)
        return self._mutate(
            scope,
            "update",
            payload,
            expected_version=expected_version,
            actor=actor,
            op_id=op_id,
            item_id=item_id,
        )

    def claim(
        self,
        scope: str,
        item_id: str,
        owner: str,
        lease_seconds: float,
        *,
        expected_version: int | None = None,
        op_id: str | None = None,
    ) -> TodoList:
        """Take an item if it is unowned, its lease expired, or ``owner`` already holds it.

        A claimed ``pending`` item becomes ``in_progress``. The lease is measured with the
        server's clock. Claiming again as the same owner renews the lease.

        Args:
            scope: The plan's scope.
            item_id: The item.
            owner: Who takes it.
            lease_seconds: How long the claim holds without renewal.
            expected_version: Apply only if the plan is at this version.
            op_id: Operation id (a retry with the same id applies once).

        Returns:
            The plan after the change.

        Raises:
            ItemClaimedError: Another owner holds a live lease.
            NotFoundError: No such item.
            InvalidInputError: The item is completed, or bad owner/lease (a lease must be
                > 0 and at most `MAX_LEASE_SECONDS`).
        """
        payload = self._claim_payload(item_id, owner, lease_seconds)
        return self._mutate(
            scope,
            "claim",
            payload,
            expected_version=expected_version,
            actor=owner,
            op_id=op_id,
            item_id=item_id,
        )

    def complete(
        self,
        scope: str,
        item_id: str,
        *,
        owner: str | None = None,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Mark an item completed (and end its lease).

        Args:
            scope: The plan's scope.
            item_id: The item.
            owner: If given, refuse when another owner holds a live lease.
            expected_version: Apply only if the plan is at this version.
            op_id: Operation id (a retry with the same id applies once).
            actor: Who makes the change (change log; defaults to ``owner``).

        Returns:
            The plan after the change.

        Raises:
            ItemClaimedError: ``owner`` given and another owner holds a live lease.
            NotFoundError: No such item.
        """
        payload: dict[str, Any] = {"id": item_id}
        if owner is not None:
            payload["owner"] = owner
        return self._mutate(
            scope,
            "complete",
            payload,
            expected_version=expected_version,
            actor=actor or owner,
            op_id=op_id,
            item_id=item_id,
        )

    def remove(
        self,
        scope: str,
        item_id: str,
        *,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Remove an item.

        Args:
            scope: The plan's scope.
            item_id: The item.
            expected_version: Apply only if the plan is at this version.
            op_id: Operation id (a retry with the same id applies once).
            actor: Who makes the change (change log).

        Returns:
            The plan after the change.

        Raises:
            ConflictError: The plan is not at ``expected_version``.
            NotFoundError: No such item.
        """
        return self._mutate(
            scope,
            "remove",
            {"id": item_id},
            expected_version=expected_version,
            actor=actor,
            op_id=op_id,
            item_id=item_id,
        )

    # -- mutations (async) --------------------------------------------------------------

    async def areplace(
        self,
        scope: str,
        items: Sequence[TodoInput],
        *,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Async twin of `replace` (same arguments, result and errors)."""
        payload = self._replace_payload(items)
        return await self._amutate(
            scope, "replace", payload, expected_version=expected_version, actor=actor, op_id=op_id
        )

    async def aadd(
        self,
        scope: str,
        content: str,
        *,
        status: TodoStatus = "pending",
        metadata: Mapping[str, Any] | None = None,
        index: int | None = None,
        item_id: str | None = None,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Async twin of `add` (same arguments, result and errors)."""
        payload = self._add_payload(content, status, metadata, index, item_id)
        return await self._amutate(
            scope, "add", payload, expected_version=expected_version, actor=actor, op_id=op_id
        )

    async def aupdate(
        self,
        scope: str,
        item_id: str,
        *,
        status: TodoStatus | None = None,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Async twin of `update` (same arguments, result and errors)."""
        payload = self._update_payload(item_id, status, content, metadata)
        return await self._amutate(
            scope,
            "update",
            payload,
            expected_version=expected_version,
            actor=actor,
            op_id=op_id,
            item_id=item_id,
        )

    async def aclaim(
        self,
        scope: str,
        item_id: str,
        owner: str,
        lease_seconds: float,
        *,
        expected_version: int | None = None,
        op_id: str | None = None,
    ) -> TodoList:
        """Async twin of `claim` (same arguments, result and errors)."""
        payload = self._claim_payload(item_id, owner, lease_seconds)
        return await self._amutate(
            scope,
            "claim",
            payload,
            expected_version=expected_version,
            actor=owner,
            op_id=op_id,
            item_id=item_id,
        )

    async def acomplete(
        self,
        scope: str,
        item_id: str,
        *,
        owner: str | None = None,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Async twin of `complete` (same arguments, result and errors)."""
        payload: dict[str, Any] = {"id": item_id}
        if owner is not None:
            payload["owner"] = owner
        return await self._amutate(
            scope,
            "complete",
            payload,
            expected_version=expected_version,
            actor=actor or owner,
            op_id=op_id,
            item_id=item_id,
        )

    async def aremove(
        self,
        scope: str,
        item_id: str,
        *,
        expected_version: int | None = None,
        op_id: str | None = None,
        actor: str | None = None,
    ) -> TodoList:
        """Async twin of `remove` (same arguments, result and errors)."""
        return await self._amutate(
            scope,
            "remove",
            {"id": item_id},
            expected_version=expected_version,
            actor=actor,
            op_id=op_id,
            item_id=item_id,
        )
