"""``RedisLLMCache``: a shared LLM response cache for LangChain chat models and LLMs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, Unpack

import redis
from deepagents_redis.cache._common import (
    GENERATION_MAX,
    UNSET,
    _Unset,
    as_bytes,
    async_owner,
    counter_refusal,
    fits_entry,
    is_generation,
    make_guard,
    refuse_decoding_clients,
    skip_unencodable,
    sync_owner,
    ttl_ms,
)
from deepagents_redis.cache._failopen import FAILED, ready_client
from deepagents_redis.cache._near import NearCache
from deepagents_redis.cache._scripts import ACQUIRE, CLEAR, LOOKUP, READ, WRITE
from deepagents_redis.cache._settings import CacheSettings
from deepagents_redis.cache._stored import canonical_prompt, entry_hash, from_stored, to_stored
from deepagents_redis.core import (
    CircuitBreaker,
    Codec,
    ConfigurationError,
    Connection,
    DeepAgentsRedisError,
    Operation,
    Pipeline,
    RedisComponent,
    RedisUnavailableError,
    ScopedKeys,
    Script,
    Sleep,
    active_instrumentation,
    adrive_operation,
    drive_operation,
    redis_errors,
)
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.outputs import Generation

__all__ = ["RedisLLMCache"]

log = logging.getLogger("deepagents_redis.cache")

_KIND = "llm"
_FIRST_POLL = 0.005
# The most of an entry the plain-read hit path asks for (GETRANGE 0..n-1): nearly every
# chat generation fits; a bigger entry goes on to the script, and an oversize value planted
# under a key is never transferred beyond this much.
_FAST_READ_BYTES = 32_768
_READ_OUTCOMES = {0: "stale", 1: "corrupt", 2: "oversize"}
"""READ's miss reasons, as lookup outcomes."""
_MAX_SEEN = 4096
"""Most generations remembered between a miss and its update (per cache object)."""


class _Keys(NamedTuple):
    # A NamedTuple: built on every lookup, ~6x cheaper than a frozen dataclass (~0.4 µs
    # against ~2.9 µs, measured here).
    gen: str
    entry: str
    scoped: ScopedKeys
    digest: str

    @property
    def lease(self) -> str:
        # Only needed on a miss.
        return self.scoped.key("lease", self.digest)


class RedisLLMCache(RedisComponent, BaseCache):
    """A LangChain ``BaseCache`` in Redis, shared by every worker that uses the same keys.

    Put it on a model (``init_chat_model("...", cache=cache)``, ``ChatX(cache=cache)``) or
    globally (``set_llm_cache(cache)``). Entries live in a namespace; ``clear()`` empties
    one namespace in O(1) by bumping its generation counter (stale entries become
    unreachable at once and expire by their TTL).

    Failure policy: unless ``strict``, a Redis problem is a miss (plus a rate-limited
    warning and an ``error`` counter) and trips a circuit breaker, so while Redis is down
    a lookup costs microseconds and the model is called as if there were no cache.

    Single-flight: when several callers (threads, tasks, processes, machines) miss the
    same key at once, the first takes a lease and calls the model; the others wait,
    bounded by ``wait_timeout``, and are served its result. ``update()`` releases the
    lease (only its own: one another caller took over after it expired stays). A leader
    that dies or whose model call raises never calls ``update()``: its lease expires after
    ``lease_ttl`` and one waiter takes over. The same thread or task
    asking again (a retry after an error) re-enters its own lease instead of waiting on it.

    Lifecycle: ``RedisLLMCache.from_url(url)`` (or the constructor) returns the cache;
    ``close()``/``aclose()`` or a ``with``/``async with`` block closes what it built. A
    ``connector`` you pass stays yours.

    Args:
        namespace: Namespace of the entries (default from ``cache_settings``: ``"default"``).
        ttl: Seconds an entry lives; None keeps it until evicted or cleared.
        cache_settings: Cache options; defaults read ``DEEPAGENTS_REDIS_CACHE_*``.
        single_flight: Overrides ``cache_settings.single_flight``.
        strict: Overrides ``cache_settings.strict``.
        refresh_on_hit: Overrides ``cache_settings.refresh_on_hit``.
        lease_ttl: Overrides ``cache_settings.lease_ttl_seconds``.
        wait_timeout: Overrides ``cache_settings.wait_timeout_seconds``.
        client_side_cache: Overrides ``cache_settings.client_side_cache``.
        breaker: A circuit breaker to share (default: one per cache object).
        codec: The value codec (default: ``Codec()``, MessagePack).
        **connection: How to connect (core's `Connection`): `connector=`, a shared
            `RedisConnector` the caller closes, or the conveniences `url=`, `settings=`,
            `client=`, `async_client=`, from which this cache builds one it owns and closes
            (ready clients are never closed by it).

    Raises:
        ConfigurationError: No connection configured, or client-side caching on a Cluster.
            With ``cluster="auto"`` and Redis unreachable at construction, the cache is
            built anyway (it fails open) and the client-side layer starts with the first
            lookup after Redis answers (on a Cluster it then stays off, with an error log).

    Example:
        >>> cache = RedisLLMCache(url="redis://localhost:6379/0", ttl=3600)  # doctest: +SKIP
        >>> model = init_chat_model("openai:gpt-4o-mini", cache=cache)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        namespace: str | None = None,
        ttl: float | _Unset | None = UNSET,
        cache_settings: CacheSettings | None = None,
        single_flight: bool | None = None,
        strict: bool | None = None,
        refresh_on_hit: bool | None = None,
        lease_ttl: float | None = None,
        wait_timeout: float | None = None,
        client_side_cache: bool | None = None,
        breaker: CircuitBreaker | None = None,
        codec: Codec | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        overrides: dict[str, Any] = {
            "namespace": namespace,
            "single_flight": single_flight,
            "strict": strict,
            "refresh_on_hit": refresh_on_hit,
            "lease_ttl_seconds": lease_ttl,
            "wait_timeout_seconds": wait_timeout,
            "client_side_cache": client_side_cache,
        }
        base = cache_settings if cache_settings is not None else CacheSettings()
        update = {k: v for k, v in overrides.items() if v is not None}
        if not isinstance(ttl, _Unset):
            update["ttl_seconds"] = ttl
        # validated like the environment (model_copy stores values as given: a lease_ttl of
        # -5 or a ttl of -3 reached Redis as a negative PX, failing every miss or write)
        self.settings: CacheSettings = base.with_overrides(**update) if update else base
        """The effective cache options."""
        cs = self.settings
        self.namespace: str = cs.namespace
        """The namespace of this cache's entries."""
        refuse_decoding_clients("RedisLLMCache", connection)
        self._attach(**connection)
        self._ks = self._connector.keyspace
        self._codec = codec or Codec()
        self._guard = make_guard(cs, metric_prefix="cache", breaker=breaker)
        self._ttl_ms = ttl_ms(cs.ttl_seconds)
        self._lease_ms = ttl_ms(cs.lease_ttl_seconds)
        self._max_bytes = str(cs.max_entry_bytes)
        self._scoped = self._ks.scoped(_KIND, self.namespace)
        self._gen_key = self._scoped.key("gen")
        # `_scoped.key("e", digest)` without encoding per lookup: "e" and a hex digest are
        # their own encoding (no character KeySpace escapes), so this is the same key
        # (test_keys_are_keyspace_keys checks it against KeySpace).
        self._entry_head = self._scoped.key("e") + ":"
        # READ's keys and arguments as bytes, built once: redis-py then sends them as they are
        # instead of checking and encoding each str on every hit (~0.05x of a GET per hit in
        # the performance pass: EVALSHA with bytes vs str arguments, side by side). Only when
        # the keys are ASCII, which every client encoding writes the same way; otherwise the
        # str keys go to the client like every other request's.
        ascii_keys = self._gen_key.isascii() and self._entry_head.isascii()
        self._read_gen: str | bytes = self._gen_key.encode() if ascii_keys else self._gen_key
        self._read_head: bytes | None = self._entry_head.encode() if ascii_keys else None
        # The lease key of a miss, as `_Keys.lease` builds it, the same way.
        lease_head = self._scoped.key("lease") + ":"
        self._lease_head: bytes | None = (
            lease_head.encode() if ascii_keys and lease_head.isascii() else None
        )
        self._read_args = (b"0", self._max_bytes.encode())
        # Below max_entry_bytes, so a value that fits the plain read is never oversize.
        self._fast_read = min(_FAST_READ_BYTES, cs.max_entry_bytes)
        # Whether the last lookup from Redis was a hit: then the next one tries the plain
        # reads first (see `_lookup_op`). A plain attribute: a stale read between threads
        # only picks the other path once.
        self._hits_likely = False
        self._read_args_refresh = (self._ttl_ms.encode(), self._max_bytes.encode())
        self._token_prefix = _token_prefix()
        # The generation each (owner, entry) missed under, and how many updates of its misses
        # are still to come: each update stores under it or not at all (see `_remember`).
        self._seen: dict[tuple[tuple[str, int], str], tuple[bytes, int]] = {}
        self._seen_lock = threading.Lock()
        self._near: NearCache | None = None
        # True while the client-side layer waits for the connector to learn whether the
        # target is a Cluster (see `_start_near_cache`).
        self._near_pending = False
        self._near_lock = threading.Lock()
        _LIVE.add(self)
        if cs.client_side_cache:
            try:
                self._start_near_cache()
            except BaseException:
                self.close()
                raise

    def _start_near_cache(self) -> None:
        if self._connector.cluster_hint is None:
            # cluster="auto": finding out is a round trip. With the server down at start,
            # its RedisUnavailableError raised out of the constructor, so a worker with the
            # layer on could not start while Redis was down, where the same cache without
            # it starts and serves misses (the cache fails open). The layer starts instead
            # with the first lookup after a call has reached the server (`_pending_near`).
            try:
                self._connector.is_cluster  # noqa: B018 - detects the mode (one round trip)
            except RedisUnavailableError as exc:
                self._near_pending = True
                self._guard.count("client_side_cache", "deferred")
                log.warning(
                    "client-side cache: Redis is unreachable (%s); the layer starts once a "
                    "lookup reaches it, lookups fail open meanwhile",
                    type(exc).__name__,
                )
                return
        self._near = self._new_near_cache()

    def _new_near_cache(self) -> NearCache:
        if self._connector.is_cluster:
            raise ConfigurationError(
                "client_side_cache needs a standalone server: Redis Cluster sends tracking "
                "invalidations per node"
            )
        client = self._connector.client()
        assert isinstance(client, redis.Redis)
        prefix = self._scoped.head + ":"
        return NearCache(
            client,
            prefixes=[prefix],
            flush_keys={self._gen_key},
            max_entries=self.settings.client_side_cache_max_entries,
            max_bytes=self.settings.client_side_cache_max_bytes,
        )

    def _pending_near(self) -> NearCache | None:
        """Start the deferred client-side layer once the connector knows the server's mode.

        Known without I/O once any call reached the server (the sync or the asyncio client
        detected it), so a lookup here never waits on the network: the layer's tracking
        connection is made by its own thread, and creating a standalone client does not
        connect. A Cluster, which the constructor would have refused, gets no layer (logged
        and counted; raising out of a lookup would break fail-open).
        """
        if self._connector.cluster_hint is None:
            return None
        with self._near_lock:
            if self._near_pending:
                self._near_pending = False
                try:
                    self._near = self._new_near_cache()
                except ConfigurationError as exc:
                    self._guard.count("client_side_cache", "refused")
                    log.error("client-side cache not started: %s", exc)
                else:
                    self._guard.count("client_side_cache", "started")
                    log.info("client-side cache started: Redis is reachable")
        return self._near

    def _after_fork_in_child(self) -> None:
        # A forked worker is another lease owner: with the parent's token prefix its main
        # thread (same ident as the parent's) re-entered the parent's leases instead of
        # waiting, and single-flight across prefork workers called the model once per worker.
        self._token_prefix = _token_prefix()
        self._seen = {}
        self._seen_lock = threading.Lock()
        self._near_lock = threading.Lock()
        if self._near is not None:
            self._near.after_fork_in_child()

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this cache's Redis calls."""
        return self._guard.breaker

    @property
    def client_side_cache(self) -> NearCache | None:
        """The in-process layer, when ``client_side_cache`` is on."""
        return self._near

    def _close_resources(self) -> None:
        # The client-side layer's tracking connection and thread; the connector (and the
        # clients it created) are closed by RedisComponent when this cache built them.
        with self._near_lock:
            self._near_pending = False  # a layer still waiting never starts after a close
        if self._near is not None:
            self._near.close()

    async def aclose(self) -> None:
        """Async `close`: what `close` does, without blocking the event loop.

        Stopping the client-side layer joins its thread, which wakes up to 200 ms later
        (longer while it is connecting): that wait ran on the event loop (~150 ms per
        `aclose`, measured), so it runs in a worker thread.
        """
        if self._near is not None:
            await asyncio.to_thread(self._near.close)  # close() is idempotent
        await super().aclose()

    # -- keys and values -----------------------------------------------------------------
    def redis_keys(self, prompt: str, llm_string: str) -> dict[str, str]:
        """The Redis keys behind one entry, to inspect with `redis-cli` (TTL, size...).

        Args:
            prompt: The prompt, as LangChain passes it to `lookup`.
            llm_string: The model's parameters string, as LangChain passes it.

        Returns:
            `{"entry": ..., "lease": ..., "generation": ...}`: the entry, the single-flight
            lease of a miss being computed, and the namespace's generation counter that
            `clear()` bumps (key schema: the cache page of the docs).
        """
        keys = self._keys(prompt, llm_string)
        return {"entry": keys.entry, "lease": keys.lease, "generation": keys.gen}

    def _keys(self, prompt: str, llm_string: str) -> _Keys:
        digest = entry_hash(canonical_prompt(prompt), llm_string)
        # The namespace is encoded once (KeySpace's scoped builder), the digest never needs it.
        return _Keys(self._gen_key, self._entry_head + digest, self._scoped, digest)

    def _decode(self, keys: _Keys, gen_raw: Any, value_raw: Any) -> list[Generation] | None:
        """A fresh, well-formed entry's generations, else None (counted, never raised)."""
        value = as_bytes(value_raw)
        if value is None:
            return None
        prefix = (as_bytes(gen_raw) or b"0") + b":"
        if not value.startswith(prefix):
            head = value.split(b":", 1)[0]
            self._guard.count("lookup", "stale" if head.isdigit() else "corrupt")
            return None
        try:
            # A view, not a copy of the value (the codec reads views).
            payload = memoryview(value)[len(prefix) :]
            obj = from_stored(self._codec.decode(payload, key=keys.entry))
        except Exception as exc:  # noqa: BLE001 - garbage in Redis must never reach the agent
            self._guard.count("lookup", "corrupt")
            log.debug("cache entry %s unreadable: %s", keys.entry, type(exc).__name__)
            return None
        return obj

    def _encode(self, keys: _Keys, return_val: RETURN_VAL_TYPE) -> bytes | None:
        try:
            payload = self._codec.encode(to_stored(return_val), key=keys.entry)
        except Exception as exc:  # noqa: BLE001 - an uncachable value is not an agent error
            skip_unencodable(self._guard, "update", exc, "cache update")
            return None
        if not fits_entry(
            self._guard, "update", len(payload), self.settings.max_entry_bytes, "cache update"
        ):
            return None
        return payload

    def _hit(self, generations: list[Generation], source: str) -> list[Generation]:
        self._guard.count("lookup", "hit")
        if source != "redis":
            inst = active_instrumentation()
            if inst is not None:
                inst.count("cache.lookup_source", source=source)
        return generations

    # -- lease tokens ----------------------------------------------------------------------
    def _token(self, owner: tuple[str, int]) -> str:
        """The lease token of `owner` (a thread or task) on this cache object.

        It names the owner: this object's random prefix and the thread or task id. The same
        owner asking again (its model call raised, LangChain retried) finds its own token on
        the lease and re-enters it; anyone else waits. Unique, not secret; built without a
        lock or the OS's random source, since every single-flight lookup sends one.
        """
        return f"{self._token_prefix}{owner[0]}-{owner[1]}"

    # -- operations (written once, run sync or async) ------------------------------------
    #
    # Each Redis request of an operation runs under the fail-open guard (breaker, short
    # deadline, counted errors) through core's drive/adrive; a request that failed replies
    # FAILED and the operation serves a miss. The single-flight wait is part of the
    # operation: its pauses are Sleep requests, so the sync and async paths are one code.

    def _lookup_op(
        self, keys: _Keys, owner_of: Callable[[], tuple[str, int]]
    ) -> Operation[tuple[list[Generation] | None, bool, int | None, int, Any]]:
        """Look up `keys`; returns (generations, read_by_the_first_request, pttl, size, gen).

        `owner_of` names the lease holder (thread or task) when single-flight is on. `pttl`
        is the entry's remaining lifetime in ms as ``PTTL`` answered it (-1: none), asked
        only by the plain reads and only for the client-side layer; None otherwise. `size`
        is the stored entry's length in bytes on a plain-read hit (the client-side layer's
        byte bound counts it), else 0. `gen` is, on a miss, the generation the scripts read
        (None: unknown or corrupt), which the update passes on (`_remember`).
        """
        head = self._read_head
        entry = keys.entry if head is None else head + keys.digest.encode()
        read_args = self._read_args_refresh if self.settings.refresh_on_hit else self._read_args
        # The bytes of a fresh entry that did not decode, if the plain reads found one.
        fresh_but_unreadable: bytes | None = None
        if self._hits_likely and not self.settings.refresh_on_hit:
            # The hit path, taken while lookups hit: the generation and the entry's first
            # `_fast_read` bytes in one round trip of two plain reads. Redis spends ~1 µs on
            # them against ~10 µs on the lookup script (INFO commandstats); through the
            # driver the round trip is ~0.1x of a GET cheaper. A fresh entry that fits is
            # served from it; anything else (none, stale, bigger, not ours) goes on to the
            # script, which decides it exactly and takes the lease. That costs a miss one
            # round trip more, so after a lookup that did not hit the script goes first
            # again (`_hits_likely`): a run of misses (a new conversation) pays nothing
            # extra. The TTL push of `refresh_on_hit` needs the script (fresh entries only).
            # The counter's first 21 bytes: a longer one is corrupt (see `is_generation`),
            # and a planted 4 MiB one was transferred whole on every lookup.
            reads: tuple[tuple[Any, ...], ...] = (
                ("GETRANGE", self._read_gen, 0, GENERATION_MAX),
                ("GETRANGE", entry, 0, self._fast_read - 1),
            )
            if self._near is not None:
                # The client-side layer must know when the entry expires: Redis reports an
                # expired key only once it deletes it (on access, or when its active expiry
                # samples it, which in a large keyspace can be long after the TTL). Same
                # round trip; only with the layer on.
                reads += (("PTTL", entry),)
            reply = yield Pipeline(reads)
            if reply is FAILED:
                return None, False, None, 0, None
            # GETRANGE answers '' for an absent counter; an empty one is generation 0 too.
            gen, value = as_bytes(reply[0]) or b"0", as_bytes(reply[1])
            if (
                value
                and len(value) < self._fast_read
                and is_generation(gen)
                and value.startswith(gen + b":")
            ):
                found = self._decode(keys, gen, value)
                if found is not None:
                    pttl = int(reply[2]) if len(reply) > 2 else None
                    return found, True, pttl, len(value), None
                # Fresh but unreadable (counted as corrupt): the script would answer the
                # same bytes again, so a miss is decided here.
                fresh_but_unreadable = value
            self._hits_likely = False
        if fresh_but_unreadable is not None and not self.settings.single_flight:
            self._guard.count("lookup", "miss")
            # `gen` as the plain reads saw it: the value is fresh, so the counter is sound.
            return None, True, None, 0, gen
        if not self.settings.single_flight:
            reply = yield Script(READ, (self._read_gen, entry), read_args)
            if reply is FAILED:
                return None, False, None, 0, None
            found = self._decode_read(keys, reply)
            if found is None:
                self._guard.count("lookup", "miss")
                return None, True, None, 0, reply[1] if isinstance(reply, list) else None
            return found, True, None, 0, None
        # Single-flight: one call reads the entry and, on a miss, takes the lease (LOOKUP);
        # waiting for another caller's lease polls with ACQUIRE.
        owner = owner_of()
        token = self._token(owner)
        deadline = time.monotonic() + self.settings.wait_timeout_seconds
        # A fresh value that did not decode (counted): the loop below takes the lease or
        # waits for the holder's new value, with ACQUIRE skipping exactly these bytes (their
        # SHA1). Handed back, they were counted corrupt again and, for a waiter, 'served' as
        # a miss without the lease: every waiter called the model too.
        waited = False
        seen: Any = None
        unreadable = None if fresh_but_unreadable is None else _sha1(fresh_but_unreadable)
        if unreadable is None:
            lease = (
                keys.lease if self._lease_head is None else self._lease_head + keys.digest.encode()
            )
            reply = yield Script(
                LOOKUP, (self._read_gen, entry, lease), (*read_args, token, self._lease_ms)
            )
            if reply is FAILED:
                return None, False, None, 0, None
            deadline = time.monotonic() + self.settings.wait_timeout_seconds
            if isinstance(reply, list):
                why = int(reply[0])
                if why >= 0:
                    self._guard.count("lookup", _READ_OUTCOMES.get(why, "corrupt"))
                # reply[1:] is {2, gen} or {3, pttl, gen}: a lease, never an entry.
                seen = reply[-1]
                outcome = self._after_acquire(keys, reply[1:], False, deadline)
                if not isinstance(outcome, _Wait | bytes):
                    return outcome, False, None, 0, seen
                waited = True
            else:
                found = self._decode_read(keys, reply)
                if found is not None:
                    return found, True, None, 0, None
                unreadable = _sha1(as_bytes(reply) or b"")
        delay = _FIRST_POLL
        while True:
            if waited:
                yield Sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, self.settings.poll_interval_seconds)
            args = [token, self._lease_ms, self._max_bytes]
            if unreadable is not None:
                args.append(unreadable)
            reply = yield Script(ACQUIRE, [keys.gen, keys.entry, keys.lease], args)
            if reply is FAILED:
                return None, False, None, 0, None
            if int(reply[0]) != 1:
                seen = reply[-1]  # {2, gen} or {3, pttl, gen}
            outcome = self._after_acquire(keys, reply, waited, deadline)
            if isinstance(outcome, bytes):
                # Other bytes that do not decode either (counted): skip those from now on,
                # within the same bound as any wait (writers that keep storing such bytes
                # would otherwise keep this caller here).
                unreadable = _sha1(outcome)
                if time.monotonic() >= deadline:
                    self._guard.count("lookup", "miss")
                    self._guard.count("single_flight", "wait_timeout")
                    return None, False, None, 0, seen
            elif not isinstance(outcome, _Wait):
                return outcome, False, None, 0, seen
            waited = True

    def _update_op(
        self, keys: _Keys, payload: bytes | None, owner: tuple[str, int], seen: bytes
    ) -> Operation[None]:
        # WRITE drops the lease only if it holds this caller's token: after our lease expired
        # (a model call longer than lease_ttl) another caller may hold the key, and its
        # waiters wait for its value. Without single flight this cache took no lease ('').
        # `seen` is the generation this caller's lookup missed under (b'': none known).
        token = self._token(owner) if self.settings.single_flight else ""
        if payload is None:
            # Nothing will be stored: let a waiter take over now instead of at lease expiry.
            if token:
                yield Script(WRITE, [keys.gen, keys.entry, keys.lease], ["", "0", token])
            return
        result = yield Script(
            WRITE, [keys.gen, keys.entry, keys.lease], [payload, self._ttl_ms, token, seen]
        )
        if result == 0:
            # A clear() since this caller's lookup missed: its answer was computed before
            # the clear, so it is dropped rather than served after it.
            self._guard.count("update", "stale")
            log.debug("cache update dropped: %s was cleared while the model ran", keys.gen)
        elif result is None:
            self._guard.count("update", "corrupt")
            self._guard.warn_skipped(
                "update/corrupt",
                "cache update skipped: the generation counter %s holds what INCR never writes"
                " (more than 20 bytes, or not an integer); every entry of the namespace is a"
                " miss until it is repaired",
                keys.gen,
            )
        elif result is not FAILED:
            self._guard.count("update", "ok")

    def _local(self, keys: _Keys) -> tuple[list[Generation] | None, int, float]:
        """A hit from the client-side layer; else the epoch and the time a read starts."""
        near = self._near
        # Waiting for Redis to start the layer (`_pending_near`): one flag test otherwise.
        if near is None and (not self._near_pending or (near := self._pending_near()) is None):
            return None, 0, 0.0
        local = near.get(keys.entry)
        if local is not None:
            return self._hit([g.model_copy() for g in local], "local"), 0, 0.0
        return None, near.epoch(), time.monotonic()

    def _served(
        self,
        keys: _Keys,
        found: list[Generation] | None,
        read: bool,
        pttl: int | None,
        size: int,
        epoch: int,
        started: float,
    ) -> list[Generation] | None:
        """What a lookup returns; a hit read by the plain reads fills the client-side layer.

        Only those reads say when the entry expires (``PTTL``); the layer keeps it no longer
        than that, counted from before the read. A hit by the script is not stored: the next
        lookup takes the plain reads (``_hits_likely``) and stores it.
        """
        self._hits_likely = found is not None and read
        if found is None or not read:
            return found
        if self._near is not None:
            if pttl is not None and pttl != -2:  # -2: gone since it was read
                expires_at = None if pttl < 0 else started + pttl / 1000
                self._near.put(keys.entry, found, epoch=epoch, expires_at=expires_at, size=size)
            return self._hit([g.model_copy() for g in found], "redis")
        return self._hit(found, "redis")

    def _raised(self) -> None:
        # A lookup that raised (strict=True) said nothing about hits: the next one takes the
        # script first. Left as it was, a strict cache whose plain reads raised for one key
        # (WRONGTYPE of an entry of another type) took them again on every lookup of that key
        # while others hit, and raised each time; the script treats such an entry as a miss
        # and takes the lease, and the update overwrites it. (A try costs nothing unraised.)
        self._hits_likely = False

    def _remember(self, owner: tuple[str, int], keys: _Keys, gen: Any) -> None:
        """Note the generation a miss read, for the same owner's updates of the same entry.

        LangChain calls ``update`` after the model answers a miss; a ``clear()`` in between
        made the answer one computed before the clear, and the update stored it under the
        generation after it, so the clear did not drop it. The update hands this generation
        to the write script, which then stores nothing if it has moved. Misses only, so the
        hit path does no work for it; a hit leaves the note alone (an earlier miss of the
        owner's may still await its update).

        A note counts the updates still to come: ``BaseLLM.generate`` looks up every prompt
        of a batch first, then updates once per missing index, so a prompt twice in one
        batch misses twice and is updated twice, and both updates are checked against the
        latest miss's generation (a clear between the two lookups happened before the model
        ran). The last update drops the note (`_recalled`), so the notes held are those of
        misses still waiting for their model (or whose model raised), not of every miss
        ever: kept after their update, completed misses pushed the notes of calls still
        running out at the cap, and those calls' updates stored a pre-clear answer. A miss
        whose generation is unknown drops the note (its updates store under the current
        one). Bounded: at the cap a new entry drops the oldest (whose update stores under
        the current generation, as an update without a lookup does).
        """
        key = (owner, keys.digest)
        with self._seen_lock:
            # Popped first so a re-noted entry moves to the end (the cap drops the oldest),
            # and only a new entry makes room: re-noting one present dropped another.
            old = self._seen.pop(key, None)
            if gen is None:
                return
            if old is None and len(self._seen) >= _MAX_SEEN:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = (as_bytes(gen) or b"", 1 if old is None else old[1] + 1)

    def _recalled(self, owner: tuple[str, int], keys: _Keys) -> bytes:
        """The generation `_remember` noted for this owner and entry (b'': none).

        Each call takes one of the updates the note awaits; the last one drops the note, so
        a later update of the entry without a miss before it (a cache warmed by hand)
        stores under the current generation instead of being checked against a miss long
        past.
        """
        if not self._seen:
            return b""
        key = (owner, keys.digest)
        with self._seen_lock:
            note = self._seen.get(key)
            if note is None:
                return b""
            gen, pending = note
            if pending <= 1:
                del self._seen[key]
            else:
                self._seen[key] = (gen, pending - 1)
            return gen

    # -- sync API ------------------------------------------------------------------------
    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Look up ``(prompt, llm_string)``; on a miss, maybe wait for a concurrent caller.

        Args:
            prompt: The serialised prompt.
            llm_string: The model's configuration string.

        Returns:
            The cached generations, or None on a miss. A None means "call the model and
            then ``update()``"; with single-flight on, this caller holds the key's lease.

        Raises:
            RedisUnavailableError: Only with ``strict=True``.
        """
        keys = self._keys(prompt, llm_string)
        local, epoch, started = self._local(keys)
        if local is not None:
            return local
        try:
            found, read, pttl, size, gen = drive_operation(
                self._lookup_op(keys, sync_owner), self._guard.step("lookup", self._connector)
            )
        except Exception:
            self._raised()
            raise
        if found is None:
            self._remember(sync_owner(), keys, gen)
        return self._served(keys, found, read, pttl, size, epoch, started)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the model's generations (with the TTL, atomically) and release its lease.

        The lease is released only if it is still this caller's (same thread, or task for
        `aupdate`, as the lookup): once a lease outlived ``lease_ttl`` and another caller
        took the key over, that caller's lease stays and its waiters keep waiting for it.
        After a miss, the value is stored only if the namespace was not cleared since that
        lookup (counted ``cache.update``, ``outcome=stale``, otherwise): an answer computed
        before a ``clear()`` is never served after it. Every update by the same caller
        after its latest miss of the entry is checked so (a prompt twice in one batch is
        updated twice).

        Args:
            prompt: The serialised prompt.
            llm_string: The model's configuration string.
            return_val: The generations to cache.

        Raises:
            RedisUnavailableError: Only with ``strict=True``.
        """
        keys = self._keys(prompt, llm_string)
        owner = sync_owner()
        seen = self._recalled(owner, keys)
        payload = self._encode(keys, return_val)
        if self._near is not None:
            self._near.discard(keys.entry)
        drive_operation(
            self._update_op(keys, payload, owner, seen),
            self._guard.step("update", self._connector),
        )

    def clear(self, **kwargs: Any) -> None:
        """Empty this cache's namespace (one ``INCR`` in a script, O(1), Cluster-safe).

        Unlike lookups, ``clear`` never fails open: a clear that silently did nothing
        would leave entries the caller believes gone. An empty generation counter (left by
        a restore or another tool) is repaired: it becomes a fresh generation (the server's
        clock in microseconds, above any generation counted from 0), atomically.

        Args:
            **kwargs: Ignored (accepted for ``BaseCache`` compatibility).

        Raises:
            RedisUnavailableError: When Redis cannot be reached.
            SerializationError: The namespace's generation counter holds another data type
                or a non-empty value INCR never writes (someone else wrote it); nothing was
                changed.
        """
        try:
            with redis_errors():
                CLEAR(self._connector.client(), keys=[self._gen_key])
        except DeepAgentsRedisError as exc:
            raise self._refused(exc) from exc.__cause__
        if self._near is not None:
            self._near.flush()
        self._guard.count("clear", "ok")

    # -- async API (the same operations, awaited) ----------------------------------------
    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async twin of `lookup` (awaits the asyncio client; same result)."""
        keys = self._keys(prompt, llm_string)
        local, epoch, started = self._local(keys)
        if local is not None:
            return local
        try:
            found, read, pttl, size, gen = await adrive_operation(
                self._lookup_op(keys, async_owner), self._guard.astep("lookup", self._connector)
            )
        except Exception:
            self._raised()
            raise
        if found is None:
            self._remember(async_owner(), keys, gen)
        return self._served(keys, found, read, pttl, size, epoch, started)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async twin of `update`."""
        keys = self._keys(prompt, llm_string)
        owner = async_owner()
        seen = self._recalled(owner, keys)
        payload = self._encode(keys, return_val)
        if self._near is not None:
            self._near.discard(keys.entry)
        await adrive_operation(
            self._update_op(keys, payload, owner, seen),
            self._guard.astep("update", self._connector),
        )

    async def aclear(self, **kwargs: Any) -> None:
        """Async twin of `clear`.

        Args:
            **kwargs: Ignored (accepted for ``BaseCache`` compatibility).

        Raises:
            RedisUnavailableError: When Redis cannot be reached.
            SerializationError: The namespace's generation counter holds another data type
                or a non-empty value INCR never writes (someone else wrote it); nothing was
                changed.
        """
        try:
            with redis_errors():
                await CLEAR.acall(await ready_client(self._connector), keys=[self._gen_key])
        except DeepAgentsRedisError as exc:
            raise self._refused(exc) from exc.__cause__
        if self._near is not None:
            self._near.flush()
        self._guard.count("clear", "ok")

    def _refused(self, exc: DeepAgentsRedisError) -> DeepAgentsRedisError:
        """What a failed ``clear`` raises: a refused counter typed, anything else as it is."""
        return counter_refusal(exc, [self._gen_key]) or exc

    @property
    def _refresh_ms(self) -> str:
        """The TTL a hit pushes forward ('0': none), as READ's ARGV[1]."""
        return self._ttl_ms if self.settings.refresh_on_hit else "0"

    def _decode_read(self, keys: _Keys, reply: Any) -> list[Generation] | None:
        """Generations from READ's reply, else None (stale and corrupt entries counted)."""
        if isinstance(reply, list):  # a miss: {why, gen}
            why = int(reply[0])
            if why >= 0:
                self._guard.count("lookup", _READ_OUTCOMES.get(why, "corrupt"))
            return None
        value = as_bytes(reply)
        if value is None:
            return None
        # The generation READ checked is the value's own prefix (found without copying the
        # rest, as `split` would).
        colon = value.find(b":")
        return self._decode(keys, value[:colon] if colon >= 0 else value, value)

    def _after_acquire(
        self,
        keys: _Keys,
        reply: Any,
        waited: bool,
        deadline: float,
    ) -> list[Generation] | _Wait | bytes | None:
        """What one ACQUIRE reply means: a hit, a miss (None), or wait on.

        Wait on is `_WAIT`, or the bytes of a fresh entry that did not decode (counted
        corrupt), which the caller skips from then on.
        """
        status = int(reply[0])
        if status == 1:
            value = as_bytes(reply[1]) or b""
            found = self._decode(keys, value.split(b":", 1)[0], value)
            if found is None:
                return value
            self._guard.count("single_flight", "served" if waited else "late_hit")
            return self._hit(found, "redis")
        if status == 2:
            self._guard.count("lookup", "miss")
            self._guard.count("single_flight", "takeover" if waited else "leader")
            return None
        if time.monotonic() >= deadline:
            self._guard.count("lookup", "miss")
            self._guard.count("single_flight", "wait_timeout")
            return None
        if not waited:
            self._guard.count("single_flight", "waiter")
        return _WAIT

    def __repr__(self) -> str:
        return (
            f"RedisLLMCache(namespace={self.namespace!r}, ttl={self.settings.ttl_seconds!r}, "
            f"single_flight={self.settings.single_flight}, strict={self.settings.strict})"
        )


class _Wait:
    __slots__ = ()


_WAIT = _Wait()


def _sha1(value: bytes) -> str:
    """SHA1 hex of a stored value, as ACQUIRE's ``redis.sha1hex`` writes it (not a secret)."""
    return hashlib.sha1(value, usedforsecurity=False).hexdigest()


def _token_prefix() -> str:
    """A random prefix for one cache object's lease tokens (one per process, see below)."""
    return uuid.uuid4().hex[:16] + "-"


_LIVE: weakref.WeakSet[RedisLLMCache] = weakref.WeakSet()
"""Every cache object alive in this process, for the fork hook (held weakly)."""


def _after_fork_in_child() -> None:
    # One hook for the module, not one per cache object: os.register_at_fork cannot
    # unregister, so a per-object hook would pin every cache ever built.
    for cache in list(_LIVE):
        cache._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
