"""``RedisNodeCache``: LangGraph's node cache (``graph.compile(cache=...)``) in Redis."""

from __future__ import annotations

import contextvars
import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from deepagents_redis.cache._common import (
    GENERATION_MAX,
    UNSET,
    _Unset,
    as_bytes,
    corrupt_counters,
    counter_refusal,
    fits_entry,
    incr_accepts,
    is_generation,
    make_guard,
    refuse_decoding_clients,
    skip_unencodable,
    ttl_ms,
)
from deepagents_redis.cache._failopen import FAILED
from deepagents_redis.cache._scripts import CLEAR, WRITE_MANY
from deepagents_redis.cache._settings import MAX_TTL_SECONDS, CacheSettings
from deepagents_redis.core import (
    CircuitBreaker,
    Codec,
    Command,
    ConfigurationError,
    Connection,
    DeepAgentsRedisError,
    InvalidInputError,
    Operation,
    Pipeline,
    RedisComponent,
    ScopedKeys,
    Script,
    adrive_operation,
    arun_operation,
    drive_operation,
    run_operation,
)
from langgraph.cache.base import BaseCache, FullKey, Namespace, ValueT
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from redis.crc import key_slot

__all__ = ["RedisNodeCache", "namespace_scope"]

log = logging.getLogger("deepagents_redis.cache")

_KIND = "node"
_REGISTRY_KIND = "nodereg"
_MAX_HEADS = 4096
_MAX_WARNED = 256

# Types LangGraph's serializer refused to build while this thread decoded an entry (its
# allowlist events; the strict hook hands back the raw payload instead of raising).
_blocked: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "deepagents_redis_node_cache_blocked", default=None
)


def _listen(event: SerdeEvent) -> None:
    seen = _blocked.get()
    if seen is not None and event.get("kind", "").endswith("blocked"):
        seen.append(f"{event.get('module')}.{event.get('name')}")


register_serde_event_listener(_listen)


def default_serde() -> SerializerProtocol:
    """LangGraph's serializer without pickle and with its strict msgpack allowlist.

    The base class's default (``JsonPlusSerializer(pickle_fallback=False)``) allows every
    msgpack type unless ``LANGGRAPH_STRICT_MSGPACK`` is set: a stored entry then names any
    module and callable and decoding calls it (``os.system`` with an argument of the
    writer's choice ran here from a value planted under a node-cache key). Strict, only
    LangGraph's safe types (messages, documents, ``Send``, ``Command``, dates, uuids...) are
    built; a graph whose node writes hold other types passes its own ``serde`` with
    ``allowed_msgpack_modules``.
    """
    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=None)


def namespace_scope(ns: Namespace) -> str:
    r"""An injective text form of a namespace tuple (the key's hash-tag scope).

    JSON keeps the tuple's structure, so ``("a:b",)`` and ``("a", "b")`` stay apart (they
    collide in langgraph's ``RedisCache``, which joins with ``':'``); ``KeySpace`` then
    escapes ``: * ? [ ] { }`` so no namespace can act as a pattern or move the hash tag.

    A namespace holding a lone surrogate (a node name decoded from a broken ``\ud800``
    escape) is written with JSON's ASCII escapes instead: as raw text it could not be sent
    (the registry member is this text), so every ``set`` of such a node raised
    UnicodeEncodeError inside the fail-open guard, which counted it as connection trouble:
    three of them opened the breaker and every other node of the graph missed for
    ``breaker_reset_seconds``, again and again. Every other namespace keeps its text (and
    its keys); still injective, as both forms are JSON of the tuple.

    Args:
        ns: The namespace tuple.

    Returns:
        The scope string.
    """
    text = json.dumps(list(ns), ensure_ascii=False, separators=(",", ":"))
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(list(ns), separators=(",", ":"))
    return text


class RedisNodeCache(RedisComponent, BaseCache[ValueT]):
    """LangGraph ``BaseCache`` in Redis: shared node results for every worker.

    Use it as ``graph.compile(cache=RedisNodeCache(url=...))`` together with a
    ``CachePolicy`` on the nodes to cache. Values go through the graph's ``serde``
    (LangGraph's ``JsonPlusSerializer`` without pickle by default) inside a codec
    envelope that carries a hash of the key.

    Values a node wrote may only hold LangGraph's safe msgpack types (messages, documents,
    ``Send``, ``Command``, dates, uuids...) unless you pass a ``serde`` that allows more
    (``JsonPlusSerializer(allowed_msgpack_modules=[("my.module", "MyType")])``): an entry
    naming any other type is a counted miss (``outcome=corrupt``) with a warning naming the
    type, never a call into that type.

    Each namespace (the tuple LangGraph passes, e.g. ``("__pregel_ns_writes", "module.fn",
    "node")``) is one hash tag: a batch read is one ``MGET`` per namespace (so a batch
    spanning namespaces works on Cluster, grouped by slot), and clearing a namespace is one
    ``INCR`` of its generation counter. ``clear()`` without namespaces clears every
    namespace this key prefix has written to (a registry set; no ``KEYS``).

    Failure policy as `RedisLLMCache`: reads and writes fail open (a miss, a
    counter, the breaker) unless ``strict``; ``clear`` raises.

    Lifecycle as `RedisLLMCache`: ``from_url``/the constructor return the cache;
    ``close()``/``aclose()``/``with`` close what it built; a ``connector`` you pass stays
    yours.

    Args:
        serde: LangGraph serializer (default: `JsonPlusSerializer` without pickle and with
            LangGraph's strict msgpack allowlist).
        default_ttl: Seconds for entries whose ``CachePolicy`` has no TTL; None keeps them.
        cache_settings: Cache options (``strict``, breaker, ``max_entry_bytes``: a larger
            entry of a ``set`` is skipped, counted and logged); defaults read the environment.
        strict: Overrides ``cache_settings.strict``.
        breaker: A circuit breaker to share.
        codec: The envelope codec (default ``Codec()``).
        **connection: How to connect (core's `Connection`): `connector=`, a shared
            `RedisConnector` the caller closes, or the conveniences `url=`, `settings=`,
            `client=`, `async_client=`, from which this cache builds one it owns and closes
            (ready clients are never closed by it).
    """

    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        default_ttl: float | _Unset | None = UNSET,
        cache_settings: CacheSettings | None = None,
        strict: bool | None = None,
        breaker: CircuitBreaker | None = None,
        codec: Codec | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        super().__init__(serde=serde or default_serde())
        cs = cache_settings if cache_settings is not None else CacheSettings()
        if strict is not None:
            cs = cs.with_overrides(strict=strict)
        self.settings: CacheSettings = cs
        """The effective cache options."""
        self.default_ttl: float | None = _checked_ttl(
            None if isinstance(default_ttl, _Unset) else default_ttl
        )
        """TTL for entries whose cache policy sets none (None: no expiry)."""
        refuse_decoding_clients("RedisNodeCache", connection)
        self._attach(**connection)
        self._ks = self._connector.keyspace
        self._codec = codec or Codec()
        self._guard = make_guard(cs, metric_prefix="node_cache", breaker=breaker)
        self._registry = self._ks.key(_REGISTRY_KIND, "namespaces")
        self._heads: dict[Namespace, ScopedKeys] = {}
        self._warned: set[str] = set()

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this cache's Redis calls."""
        return self._guard.breaker

    def _keys_of(self, ns: Namespace) -> ScopedKeys:
        # Encoding a namespace (JSON, then KeySpace escaping of its brackets) costs ~20 µs;
        # a graph has a handful of namespaces, so remember their builders (bounded).
        scoped = self._heads.get(ns)
        if scoped is None:
            scoped = self._ks.scoped(_KIND, namespace_scope(ns))
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[ns] = scoped
        return scoped

    def redis_keys(self, namespace: Namespace, key: str) -> dict[str, str]:
        """The Redis keys behind one node's cached value, to inspect with `redis-cli`.

        Args:
            namespace: The LangGraph cache namespace (a tuple of strings).
            key: The entry's key within it.

        Returns:
            `{"entry": ..., "generation": ...}`: the value, and the namespace's generation
            counter that `clear(namespaces)` bumps.
        """
        ns = tuple(namespace)
        return {"entry": self._entry_key(ns, key), "generation": self._gen_key(ns)}

    def _gen_key(self, ns: Namespace) -> str:
        return self._keys_of(ns).key("gen")

    def _entry_key(self, ns: Namespace, key: str) -> str:
        return self._keys_of(ns).key("e", key)

    def _group(self, keys: Sequence[FullKey]) -> dict[Namespace, list[FullKey]]:
        groups: dict[Namespace, list[FullKey]] = defaultdict(list)
        for ns, key in keys:
            groups[tuple(ns)].append((tuple(ns), key))
        return groups

    def _decode(self, entry: str, gen_raw: Any, raw: Any) -> tuple[bool, Any]:
        value = as_bytes(raw)
        if value is None:
            return False, None
        if len(value) > self.settings.max_entry_bytes:
            # `max_entry_bytes` bounds what the cache serves, not only what it stores: an
            # entry a writer with a larger bound (or anyone) put under a node's key was
            # decoded and served whatever its size. A miss, counted like the LLM cache's.
            self._guard.count("get", "oversize")
            return False, None
        gen = as_bytes(gen_raw) or b"0"
        if not is_generation(gen):
            # Checked by length first: a corrupt counter is never copied or parsed. The
            # scripts store nothing under it (lua/gen.lua), so whatever is here is not ours.
            self._guard.count("get", "corrupt")
            return False, None
        prefix = gen + b":"
        if not value.startswith(prefix):
            head = value.split(b":", 1)[0]
            self._guard.count("get", "stale" if head.isdigit() else "corrupt")
            return False, None
        seen: list[str] = []
        token = _blocked.set(seen)
        try:
            env = self._codec.decode(value[len(prefix) :], key=entry)
            if not isinstance(env, dict) or set(env) != {"t", "d"}:
                raise TypeError("not a node-cache envelope")
            kind, data = env["t"], env["d"]
            if type(kind) is not str or type(data) is not bytes:
                # `bytes(n)` of a planted integer allocated n zero bytes per read.
                raise TypeError("not a node-cache envelope")
            decoded = self.serde.loads_typed((kind, data))
        except Exception as exc:  # noqa: BLE001 - garbage in Redis must never reach the graph
            self._guard.count("get", "corrupt")
            log.debug("node cache entry unreadable: %s", type(exc).__name__)
            return False, None
        finally:
            _blocked.reset(token)
        if seen:
            # The strict hook handed back the raw payload of a type it would not build:
            # serving that would change the node's writes, so it is a miss.
            self._guard.count("get", "corrupt")
            self._warn_blocked(seen)
            return False, None
        return True, decoded

    def _warn_blocked(self, types: list[str]) -> None:
        # Once per type and cache object (bounded): a graph that writes such a type would
        # otherwise log on every read of every such entry.
        new = sorted(set(types) - self._warned)
        if not new or len(self._warned) >= _MAX_WARNED:
            return
        self._warned.update(new)
        log.warning(
            "node cache entry holds %s, outside the serializer's msgpack allowlist: served "
            "as a miss; if the type is yours, pass "
            "serde=JsonPlusSerializer(allowed_msgpack_modules=[...])",
            ", ".join(new),
        )

    def _get_op(self, groups: dict[Namespace, list[FullKey]]) -> Operation[dict[FullKey, Any]]:
        # One round trip: per namespace one MGET of its generation and its entries (one hash
        # tag, so one slot: an MGET works on Cluster too); one namespace (the common case: a
        # graph's node) is a plain MGET, more are MGETs in one non-transactional pipeline,
        # which redis-py groups by node on Cluster. Cluster used to read with GETs, whose
        # first error reply (WRONGTYPE, a hash planted under one entry's key) failed the
        # whole batch, while standalone's MGET answered nil for that key and served the
        # others. Each entry's key is built once, for the request and the codec's key check.
        entries = [[self._entry_key(*f) for f in fulls] for fulls in groups.values()]
        if len(groups) == 1:
            (ns,) = groups
            reply = yield Command(("MGET", self._gen_key(ns), *entries[0]))
            if reply is FAILED:
                return {}
            replies = [reply]
        else:
            cmds = [
                ("MGET", self._gen_key(ns), *keys) for ns, keys in zip(groups, entries, strict=True)
            ]
            replies = yield Pipeline(cmds)
            if replies is FAILED:
                return {}
        absent: list[str] = []
        unsure: list[tuple[str, list[FullKey], list[str], list[Any]]] = []
        out = self._collect(groups, entries, replies, absent, unsure)
        if absent or unsure:
            yield from self._foreign_op(absent, unsure, out)
        self._count_get(groups, out)
        return out

    def _foreign_op(
        self,
        absent: list[str],
        unsure: list[tuple[str, list[FullKey], list[str], list[Any]]],
        out: dict[FullKey, Any],
    ) -> Operation[None]:
        # MGET answers nil for a key of another type too (a hash someone put under an entry's
        # key), which read as a plain miss, uncounted and unlogged. Only a batch with misses
        # asks (one pipeline of TYPEs, the keys of misses only), so a hit costs nothing more;
        # the miss runs the node, whose set overwrites such a key anyway. A key that became
        # a string since the MGET was written by a concurrent set: not foreign.
        # The same nil for a generation counter of another type (a list or hash someone put
        # there) served the namespace's generation-0 entries as if it were absent, where the
        # LLM cache serves nothing under it. Entries under a nil counter (`unsure`) are
        # served only once TYPE says the counter is absent: since sets create the counter
        # (cache_write_many), that is only data written before they did, or a deleted
        # counter; a counter of another type makes them misses counted corrupt, logged.
        gens = [gen for gen, _, _, _ in unsure]
        types = yield Pipeline([("TYPE", key) for key in (*gens, *absent)])
        if types is FAILED:
            return
        for (gen, fulls, keys, values), kind in zip(unsure, types, strict=False):
            kind = as_bytes(kind)
            if kind == b"none":
                for full, entry, raw in zip(fulls, keys, values, strict=True):
                    if raw is not None:
                        ok, value = self._decode(entry, None, raw)
                        if ok:
                            out[full] = value
            elif kind != b"string":  # a string: written since the MGET; a miss this once
                found = sum(raw is not None for raw in values)
                self._guard.count("get", "corrupt", found)
                self._guard.warn_skipped(
                    "get/counter-type",
                    "node cache get: the generation counter %s holds another data type (%s);"
                    " %d entries served as misses, and sets store nothing until it is"
                    " deleted or set to an integer above every generation used before",
                    gen,
                    (kind or b"?").decode("ascii", "replace"),
                    found,
                )
        types = types[len(gens) :]
        foreign = [
            key
            for key, kind in zip(absent, types, strict=True)
            if as_bytes(kind) not in (b"none", b"string")
        ]
        if foreign:
            self._guard.count("get", "corrupt", len(foreign))
            self._guard.warn_skipped(
                "get/wrongtype",
                "node cache get: %d entries hold another data type than a string (%s...),"
                " served as misses; the next set of each overwrites it",
                len(foreign),
                foreign[0],
            )

    def _set_op(self, by_ns: dict[Namespace, tuple[list[str], list[Any]]]) -> Operation[None]:
        # The registry lets clear() find every namespace; then one script per namespace
        # writes its entries, each with its TTL, checked against the generation.
        reg = [namespace_scope(ns) for ns in by_ns]
        if (yield Command(("SADD", self._registry, *reg))) is FAILED:
            return
        stored = 0
        for keys, args in by_ns.values():
            written = yield Script(WRITE_MANY, keys, args)
            if written is FAILED:
                return
            if written == -1:
                self._guard.count("set", "corrupt", len(keys) - 1)
                self._guard.warn_skipped(
                    "set/corrupt",
                    "node cache set skipped: the generation counter %s holds what INCR never"
                    " writes (more than 20 bytes, or not an integer); every entry of the"
                    " namespace is a miss until it is repaired",
                    keys[0],
                )
                continue
            stored += len(keys) - 1
        if stored:
            self._guard.count("set", "ok", stored)

    def _collect(
        self,
        groups: dict[Namespace, list[FullKey]],
        entries: list[list[str]],
        replies: list[Any],
        absent: list[str],
        unsure: list[tuple[str, list[FullKey], list[str], list[Any]]],
    ) -> dict[FullKey, ValueT]:
        # `absent` gets the keys MGET answered nil for (none there, or another data type);
        # `unsure` the namespaces whose counter MGET answered nil for while it found entries
        # (absent, or another data type: `_foreign_op` asks which before serving them).
        out: dict[FullKey, ValueT] = {}
        for ns, fulls, keys, reply in zip(groups, groups.values(), entries, replies, strict=True):
            gen_raw, *values = reply
            if gen_raw is None and any(raw is not None for raw in values):
                unsure.append((self._gen_key(ns), fulls, keys, values))
                absent.extend(e for e, raw in zip(keys, values, strict=True) if raw is None)
                continue
            for full, entry, raw in zip(fulls, keys, values, strict=True):
                if raw is None:
                    absent.append(entry)
                    continue
                ok, value = self._decode(entry, gen_raw, raw)
                if ok:
                    out[full] = value
        return out

    def _count_get(self, groups: dict[Namespace, list[FullKey]], out: dict[FullKey, Any]) -> None:
        # Per key asked for, not per distinct key served: a batch naming one key twice (two
        # tasks with the same cache key) counted the second one as a miss.
        total = sum(len(f) for f in groups.values())
        hits = total if len(out) == total else sum(f in out for g in groups.values() for f in g)
        if hits:
            self._guard.count("get", "hit", hits)
        if total - hits:
            self._guard.count("get", "miss", total - hits)

    def _encode_pairs(
        self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]
    ) -> dict[Namespace, tuple[list[str], list[Any]]]:
        # Every TTL first: a bad one refuses the whole batch before anything is written.
        ttls = [_checked_ttl(ttl, what="ttl", error=InvalidInputError) for _, ttl in pairs.values()]
        by_ns: dict[Namespace, tuple[list[str], list[Any]]] = {}
        for ((ns, key), (value, _)), ttl in zip(pairs.items(), ttls, strict=True):
            nst = tuple(ns)
            entry = self._entry_key(nst, key)
            try:
                t, d = self.serde.dumps_typed(value)
                env = self._codec.encode({"t": t, "d": d}, key=entry)
            except Exception as exc:  # noqa: BLE001 - an uncachable value is not a graph error
                skip_unencodable(self._guard, "set", exc, "node cache set")
                continue
            # An entry over the bound is skipped alone; the batch's other entries are stored.
            if not fits_entry(
                self._guard, "set", len(env), self.settings.max_entry_bytes, "node cache set"
            ):
                continue
            keys, args = by_ns.setdefault(nst, ([self._gen_key(nst)], []))
            keys.append(entry)
            args += [ttl_ms(ttl if ttl is not None else self.default_ttl), env]
        return by_ns

    def _clear_op(self, namespaces: Sequence[Namespace] | None) -> Operation[None]:
        # Fail-closed (core's driver raises): a clear that silently did nothing would leave
        # entries the caller believes gone. One INCR per namespace makes its entries stale.
        if namespaces is None:
            members = yield Command(("SMEMBERS", self._registry))
            found = [_scope_ns(s) for s in members]
            gens = [self._gen_key(ns) for ns in found if ns is not None]
            self._skip_foreign(len(found) - len(gens))
        else:
            gens = [self._gen_key(tuple(ns)) for ns in namespaces]
        if not gens:
            return
        # Every counter INCR will refuse (what INCR never writes: someone else wrote it) is
        # found before any is bumped, so a clear refused for one namespace changes nothing,
        # not the namespaces before it in the pipeline. A counter of another type raises
        # WRONGTYPE here, also before anything changed. At most the first 21 bytes of each.
        # The bump is `cache_clear`, which checks every counter it is given before it bumps
        # any (and repairs an empty one): one call for all of them on one server, one per
        # slot on Cluster, where the check below runs first over every slot.
        groups: dict[int, list[str]] = defaultdict(list)
        for gen in gens:
            groups[key_slot(gen.encode()) if self._connector.is_cluster else 0].append(gen)
        if len(groups) > 1:
            heads = yield Pipeline(
                [
                    cmd
                    for gen in gens
                    for cmd in (("EXISTS", gen), ("GETRANGE", gen, 0, GENERATION_MAX))
                ]
            )
            bad = [
                gen
                for i, gen in enumerate(gens)
                if heads[2 * i]
                and heads[2 * i + 1] != b""  # empty: cache_clear repairs it
                and not incr_accepts(as_bytes(heads[2 * i + 1]) or b"")
            ]
            if bad:
                raise corrupt_counters(bad)
        for group in groups.values():
            yield Script(CLEAR, group)

    def _skip_foreign(self, n: int) -> None:
        # A registry member this cache did not write (bytes someone else put in the set):
        # it names no namespace of ours, so there is nothing of it to clear. Skipped and
        # counted; raising would have left every real namespace uncleared.
        if n:
            self._guard.count("clear", "corrupt", n)
            log.warning("node cache clear skipped %d unreadable namespace registry members", n)

    # -- sync ------------------------------------------------------------------------------
    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """Read a batch of keys in one round trip (an MGET per namespace, any mix of them).

        Args:
            keys: ``(namespace, key)`` pairs.

        Returns:
            The fresh entries found (misses are absent).
        """
        if not keys:
            return {}
        return drive_operation(
            self._get_op(self._group(keys)), self._guard.step("get", self._connector)
        )

    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Write entries, each with its TTL in the same ``SET`` (one script per namespace).

        Args:
            pairs: ``(namespace, key) -> (value, ttl seconds or None)``.

        Raises:
            InvalidInputError: A TTL is not None or seconds > 0 (at most ten years); nothing
                of the batch is written.
        """
        by_ns = self._encode_pairs(pairs)
        if not by_ns:
            return

        drive_operation(self._set_op(by_ns), self._guard.step("set", self._connector))

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Empty the given namespaces (one ``INCR`` each), or every registered one.

        Args:
            namespaces: Namespaces to clear; None clears all of this key prefix.

        Raises:
            RedisUnavailableError: When Redis cannot be reached.
            SerializationError: A generation counter holds another data type or a non-empty
                value INCR never writes (someone else wrote it); nothing was changed. An
                empty counter is repaired instead (a fresh generation, as `RedisLLMCache`).
        """
        try:
            run_operation(
                self._connector,
                "node_cache.clear",
                self._clear_op(namespaces),
                deadline_seconds=self._connector.settings.deadline_seconds,
            )
        except DeepAgentsRedisError as exc:
            raise _refused(exc, namespaces) from exc.__cause__

    # -- async -----------------------------------------------------------------------------
    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """Async twin of `get` (awaits the asyncio client).

        Args:
            keys: ``(namespace, key)`` pairs.

        Returns:
            The fresh entries found.
        """
        if not keys:
            return {}
        return await adrive_operation(
            self._get_op(self._group(keys)), self._guard.astep("get", self._connector)
        )

    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Async twin of `set`.

        Args:
            pairs: ``(namespace, key) -> (value, ttl seconds or None)``.

        Raises:
            InvalidInputError: A TTL is not None or seconds > 0 (at most ten years); nothing
                of the batch is written.
        """
        by_ns = self._encode_pairs(pairs)
        if not by_ns:
            return

        await adrive_operation(self._set_op(by_ns), self._guard.astep("set", self._connector))

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Async twin of `clear`.

        Args:
            namespaces: Namespaces to clear; None clears all of this key prefix.

        Raises:
            RedisUnavailableError: When Redis cannot be reached.
            SerializationError: A generation counter holds another data type or a non-empty
                value INCR never writes (someone else wrote it); nothing was changed. An
                empty counter is repaired instead (a fresh generation, as `RedisLLMCache`).
        """
        try:
            await arun_operation(
                self._connector,
                "node_cache.clear",
                self._clear_op(namespaces),
                deadline_seconds=self._connector.settings.deadline_seconds,
            )
        except DeepAgentsRedisError as exc:
            raise _refused(exc, namespaces) from exc.__cause__


def _refused(
    exc: DeepAgentsRedisError, namespaces: Sequence[Namespace] | None
) -> DeepAgentsRedisError:
    # A counter made unacceptable between the check and the INCR (the check found none):
    # typed like the check's refusal; the other namespaces of the pipeline were cleared.
    what = "of a registered namespace" if namespaces is None else f"of {list(namespaces)!r}"
    return counter_refusal(exc, [what]) or exc


def _scope_ns(scope: Any) -> Namespace | None:
    """The namespace a registry member names (`namespace_scope` inverted), else None."""
    try:
        ns = json.loads((as_bytes(scope) or b"").decode("utf-8"))
    except (ValueError, RecursionError, TypeError):  # not UTF-8, not JSON, nested too deep
        return None
    if not isinstance(ns, list) or not all(type(part) is str for part in ns):
        return None
    return tuple(ns)


def _checked_ttl(
    ttl: object,
    *,
    what: str = "default_ttl",
    error: type[DeepAgentsRedisError] = ConfigurationError,
) -> float | None:
    """Check a TTL: None, or seconds > 0 and at most `MAX_TTL_SECONDS`.

    0 or less kept entries 1 ms (nothing cached, silently); infinity or NaN raised
    OverflowError or ValueError out of `set`, and a huge value made an EX Redis refuses.
    `default_ttl` is configuration; a `CachePolicy`'s TTL reaches `set` per entry (input).
    """
    if ttl is None:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not 0 < ttl <= MAX_TTL_SECONDS  # NaN compares false
    ):
        raise error(
            f"{what} must be None or seconds > 0 and at most {MAX_TTL_SECONDS}, not {ttl!r}"
        )
    return float(ttl)
