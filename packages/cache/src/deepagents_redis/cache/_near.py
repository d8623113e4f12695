"""In-process layer for hot entries, kept correct by Redis server-assisted tracking.

Why not redis-py's ``CacheConfig``: redis-py 8 refuses to enable it unless the server
reports Redis >= 7.4 (``CacheProxyConnection.MIN_ALLOWED_VERSION``), and it needs RESP3 on
every pooled connection. Tracking itself exists since Redis 6, so this layer uses it
directly and works on 6.x/7.x and Valkey:

* one dedicated connection runs ``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX
  <namespace prefix>`` and ``SUBSCRIBE __redis__:invalidate``; the server then reports every
  write to a key under the prefix, by anyone;
* a daemon thread reads those messages and drops the named keys (a namespace's generation
  counter changing drops everything: ``clear()`` was called);
* a value read from Redis is only stored if no invalidation arrived while it was being read
  (an epoch counter), so a stale read can never overwrite a newer invalidation;
* the tracking connection is PINGed every ``heartbeat`` seconds; a missing PONG (a
  blackholed network never closes the socket) counts as lost;
* while the tracking connection is down, the layer is bypassed and emptied: it can make a
  hit faster, never staler than the invalidation delay (one network hop after the write)
  or, when the network silently drops, than the heartbeat timeout;
* an entry is kept no longer than its key's TTL (read with it): Redis reports an expired
  key only when it deletes it, on access or when its active expiry cycle samples it, which in
  a large keyspace can be long after the TTL;
* a forked child (gunicorn ``--preload``, a ``multiprocessing`` fork) inherits the entries
  but not the thread that invalidates them: the child empties its copy and starts its own
  tracking connection (`after_fork_in_child`), so a worker process never serves what another
  client has since changed or cleared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import redis

__all__ = [
    "NearCache",
]


log = logging.getLogger("deepagents_redis.cache")

_CHANNEL = "__redis__:invalidate"
_NOT_FOR_TRACKING = (
    "cache",
    "cache_config",
    "maint_notifications_config",
    "maint_notifications_pool_handler",
)
"""Data-client connection settings the tracking connection must not take (see `_connect`)."""


class NearCache:
    """A bounded LRU of decoded entries, invalidated by Redis tracking messages.

    Bounded twice: at most ``max_entries`` entries and at most ``max_bytes`` of them, each
    entry counted by the ``size`` it is `put` with (its stored length in Redis). The least
    recently used go first until both hold; an entry larger than ``max_bytes`` alone is not
    kept. A count bound alone let a few large answers hold any amount of memory.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefixes: list[str],
        flush_keys: set[str],
        max_entries: int,
        max_bytes: int | None = None,
        reconnect_delay: float = 1.0,
        heartbeat: float = 1.0,
    ) -> None:
        self._pool = client.connection_pool
        self._prefixes = prefixes
        self._flush_keys = {k.encode() for k in flush_keys}
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._reconnect_delay = reconnect_delay
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._epoch = 0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(
            target=self._run, name="deepagents-redis-cache-tracking", daemon=True
        )
        thread.start()
        return thread

    def after_fork_in_child(self) -> None:
        """Make the layer a forked child's own (the owning cache calls it after `os.fork`).

        The child has the parent's entries but no tracking thread (threads do not survive a
        fork) while `ready` still reads set, so it served those entries however long after
        another client changed or cleared them. Here the child drops them, takes fresh locks
        (the parent's could have been held by a thread that no longer exists) and starts its
        own tracking connection; until that is up the layer is bypassed. The parent's socket
        is left alone: redis-py never shuts down a connection from another process.
        """
        stopped = self._stop.is_set()
        self._lock = threading.Lock()
        self._data = OrderedDict()
        self._bytes = 0
        self._epoch += 1
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._conn = None
        if stopped:
            self._stop.set()
        else:
            self._thread = self._start()

    # -- data path -------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether invalidations are flowing (otherwise the layer is bypassed)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Block until the tracking connection is up (tests and warm-up)."""
        return self._ready.wait(timeout)

    def epoch(self) -> int:
        """Token to take before reading from Redis and hand back to `put`."""
        with self._lock:
            return self._epoch

    def get(self, key: str) -> Any | None:
        """The cached value, or None (also once its ``expires_at`` has passed)."""
        if not self._ready.is_set():
            return None
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires_at, size = item
            if expires_at is not None and time.monotonic() >= expires_at:
                del self._data[key]
                self._bytes -= size
                return None
            self._data.move_to_end(key)
            return value

    def put(
        self,
        key: str,
        value: Any,
        *,
        epoch: int,
        expires_at: float | None = None,
        size: int = 0,
    ) -> None:
        """Store ``value`` unless an invalidation arrived since ``epoch`` was taken.

        Args:
            key: The Redis key the value was read from.
            value: What to serve for it.
            epoch: `epoch()` as taken before the read.
            expires_at: ``time.monotonic()`` after which it is not served (the key's own
                expiry, as read); None keeps it until invalidated or dropped as least used.
            size: What it counts against ``max_bytes`` (the stored value's length).
        """
        if not self._ready.is_set():
            return
        with self._lock:
            if self._epoch != epoch:
                return
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if self._max_bytes is not None and size > self._max_bytes:
                return  # would push out everything else and still not fit
            self._data[key] = (value, expires_at, size)
            self._bytes += size
            while len(self._data) > self._max or (
                self._max_bytes is not None and self._bytes > self._max_bytes
            ):
                self._bytes -= self._data.popitem(last=False)[1][2]

    def discard(self, key: str) -> None:
        """Drop one key (our own write; the server's message follows)."""
        with self._lock:
            self._epoch += 1
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[2]

    def flush(self) -> None:
        """Drop everything."""
        with self._lock:
            self._epoch += 1
            self._data.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    @property
    def nbytes(self) -> int:
        """The sizes of the entries kept, summed (what ``max_bytes`` bounds)."""
        with self._lock:
            return self._bytes

    # -- tracking connection ---------------------------------------------------------
    def _connect(self) -> Any:
        kwargs = dict(self._pool.connection_kwargs)
        # RESP2 + SUBSCRIBE is the portable way to receive redirected invalidations, read as
        # bytes (what `_listen` compares) whatever the data client decodes. Without the
        # maintenance-notification settings a plain `redis.Redis()` carries: redis-py runs
        # them on RESP3 only and refused to build this connection, so with such a client the
        # layer never came up (and warned every second).
        kwargs["protocol"] = 2
        kwargs["decode_responses"] = False
        for key in _NOT_FOR_TRACKING:
            kwargs.pop(key, None)
        conn = self._pool.connection_class(**kwargs)
        conn.connect()
        conn.send_command("CLIENT", "ID")
        client_id = conn.read_response()
        args: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
        for prefix in self._prefixes:
            args += ["PREFIX", prefix]
        conn.send_command(*args)
        conn.read_response()
        conn.send_command("SUBSCRIBE", _CHANNEL)
        conn.read_response()
        return conn

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self._conn = self._connect()
            except (redis.RedisError, OSError) as exc:
                # One warning per outage, not one per attempt: the thread retries every
                # `reconnect_delay` (1 s), so a server down for an hour logged 3,600 lines
                # per cache object; the rest go to debug until the connection is back.
                (log.debug if failing else log.warning)(
                    "client-side cache: tracking connection failed (retrying every %s s, "
                    "the layer is bypassed meanwhile): %s",
                    self._reconnect_delay,
                    exc,
                )
                failing = True
                self._stop.wait(self._reconnect_delay)
                continue
            if failing:
                log.warning("client-side cache: tracking connection is back")
                failing = False
            self.flush()  # anything could have changed while we were not listening
            self._ready.set()
            try:
                self._listen()
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                if not self._stop.is_set():
                    log.warning("client-side cache: tracking connection lost: %s", exc)
            finally:
                self._ready.clear()
                self.flush()
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.disconnect()
            self._stop.wait(self._reconnect_delay)

    def _listen(self) -> None:
        last_pong = time.monotonic()
        ping_sent = False
        while not self._stop.is_set():
            if self._conn.can_read(timeout=min(0.2, self._heartbeat)):
                message = self._conn.read_response()
                if isinstance(message, list) and message and message[0] == b"pong":
                    last_pong, ping_sent = time.monotonic(), False
                else:
                    self._on_message(message)
                continue
            idle = time.monotonic() - last_pong
            if ping_sent and idle > 2 * self._heartbeat:
                raise redis.ConnectionError("tracking connection missed its heartbeat")
            if not ping_sent and idle > self._heartbeat:
                self._conn.send_command("PING")
                ping_sent = True

    def _on_message(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) != 3 or message[0] != b"message":
            return
        keys = message[2]
        if keys is None or any(k in self._flush_keys for k in keys):
            # None: FLUSHDB/FLUSHALL; a generation counter: the namespace was cleared.
            self.flush()
            return
        with self._lock:
            self._epoch += 1
            for k in keys:
                old = self._data.pop(k.decode("utf-8", "replace"), None)
                if old is not None:
                    self._bytes -= old[2]

    def close(self) -> None:
        """Stop the thread and close the tracking connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
