"""Every key of the checkpoint phase, built through core's `KeySpace` (key schema v2).

A thread is a FIXED set of eight keys under the hash tag ``{<namespace>/<thread id>}``: what
varies (checkpoint namespace, checkpoint id, channel, version, run, task) lives in hash fields
and sorted-set members, never in a key name. So the client names every key a script touches
before it runs it, and every checkpoint script declares them all in KEYS (BRIEF §3 "Lua":
keys only in KEYS, data only in ARGV), in this order::

    KEYS[1] <prefix>:v2:ckpt:{<ns>/<thread>}:idx   zset  'cid<TAB>ecns' (all, time order)
    KEYS[2] <prefix>:v2:ckpt:{<ns>/<thread>}:ns    zset  'ecns<TAB>cid' (a namespace: a range)
    KEYS[3] <prefix>:v2:ckpt:{<ns>/<thread>}:cp    hash  'ecns<TAB>cid' -> body
    KEYS[4] <prefix>:v2:ckpt:{<ns>/<thread>}:cpi   hash  'ecns<TAB>cid' -> index record
    KEYS[5] <prefix>:v2:ckpt:{<ns>/<thread>}:b     hash  'ecns<TAB>ech:ever' -> a channel value
    KEYS[6] <prefix>:v2:ckpt:{<ns>/<thread>}:w     hash  'ecns<TAB>cid<TAB>idx<TAB>task' -> a write
    KEYS[7] <prefix>:v2:ckpt:{<ns>/<thread>}:wl    hash  'ecns<TAB>cid' -> write list
    KEYS[8] <prefix>:v2:ckpt:{<ns>/<thread>}:runs  zset  'erun<TAB>cid<TAB>ecns' (a run: a range)

* The **body** is msgpack ``[checkpoint frame, metadata frame]``: only Python reads it.
* The **index record** is msgpack ``[parent cid, [blob ref...], erun, {filter field: canonical
  JSON}]``, the few bytes a script needs (``cmsgpack.unpack``): which blobs to fetch, the
  parent for history walks, the run for deletes, the metadata `list(filter=...)` compares (a
  text past 64 characters as ``#<sha1>``: the body holds the value already; a value with no
  canonical text as ``?``, which every filter on its key lets through to the exact check). Kept
  apart from the body so a script never copies a checkpoint's kilobytes through Lua to learn
  them (deletes and history walks read many index records and no body).
* A **run member** names a checkpoint its run put, or one with no record yet that the run
  stored pending writes for (`put_writes`: orphans until the put lands), so that
  `delete_for_runs` reaches those writes too. The runs of such members are listed in
  ``:w`` under ``'ecns<TAB>cid<TAB><TAB>runs'`` (a cmsgpack array of ``erun``; no write's
  name starts with a tab), so whatever deletes the checkpoint's writes (a prune, a
  `delete_for_runs`) takes their members with them in the same script: a member left
  naming nothing made a later `delete_for_runs` of its run delete the writes another run
  stored under that id since.
* A **write list** is a cmsgpack array of ``'<idx><TAB><task>'``, the fields of one
  checkpoint's writes in ``:w``: a read fetches them with one HMGET, O(its writes), no HSCAN;
  `put_writes` keeps LangGraph's rule with plain HSETNX (normal writes: the first one per
  (task, idx) stays) and HSET (special writes, idx < 0: replaced).

``ecns``, ``ech``, ``ever`` and ``erun`` are `KeySpace`-encoded (printable, no ``:``, never
empty), so ``<TAB>`` separates unambiguously and ``'<ecns><TAB>'`` .. ``'<ecns><LF>'`` is exactly
one namespace's lex range (likewise one run's in ``:runs``). Checkpoint ids are checked to
need no encoding. All scores are 0 and order is lexicographic: checkpoint ids are UUIDv6, so
that is time order.

TTL (``ttl_seconds``) is per thread: each write (and, with ``refresh_on_read``, each read)
sets the lifetime of all eight keys at once.

Two indexes span threads, each in its own slot, and are written before a thread's first put
in a process (so a crash never leaves a thread out of them)::

    <prefix>:v2:ckpt-idx:{<ns>}:threads            zset  thread id, score 0 (a lex index)
    <prefix>:v2:ckpt-run:{<ns>/<run id>}:threads   set   threads a run wrote to

Schema v2 is the checkpoint phase's own version (`SCHEMA_VERSION`), independent of core's
connector-wide ``v1``: v1 put a checkpoint, its writes and each blob in keys named after them,
which scripts had to build from data. v1 checkpoint keys were only written by unreleased
builds and are not read.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

from deepagents_redis.core import InvalidInputError, KeySpace

__all__ = [
    "SCHEMA_VERSION",
    "CheckpointKeys",
    "ThreadKeys",
    "check_checkpoint_id",
    "thread_id_of",
]

KIND: Final = "ckpt"
SCHEMA_VERSION: Final = 2
"""The checkpoint phase's key-schema version (``<prefix>:v2:ckpt...``)."""
_CID = re.compile(r"[0-9A-Za-z._-]{1,128}")
MAX_THREAD_ID: Final = 1_024
_SUFFIXES: Final = (":idx", ":ns", ":cp", ":cpi", ":b", ":w", ":wl", ":runs")


def thread_id_of(value: Any) -> str:
    """A config's ``thread_id`` as text (str, int or UUID), checked.

    Raises:
        InvalidInputError: Missing, of another type, empty, too long or not printable.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | uuid.UUID):
        raise InvalidInputError(
            f"configurable.thread_id must be a str, int or UUID, not {type(value).__name__}"
        )
    text = str(value)
    if not text or len(text) > MAX_THREAD_ID:
        raise InvalidInputError(f"thread_id must have 1 to {MAX_THREAD_ID} characters")
    if not text.isprintable():
        raise InvalidInputError("thread_id holds control or non-printable characters")
    return text


def check_checkpoint_id(value: Any) -> str:
    """A checkpoint id as stored in fields and members (LangGraph's are UUIDv6 text).

    Raises:
        InvalidInputError: Not 1-128 characters of ``[0-9A-Za-z._-]``.
    """
    if not isinstance(value, str) or not _CID.fullmatch(value):
        raise InvalidInputError(f"checkpoint id {value!r} is not 1-128 chars of [0-9A-Za-z._-]")
    return value


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """The fixed keys of one thread (one hash tag), in the scripts' KEYS order."""

    thread_id: str
    head: str
    """``<prefix>:v2:ckpt:{<ns>/<thread>}``, which each key extends by a fixed suffix."""
    all: tuple[str, ...]
    """Every key of the thread, in the order each checkpoint script takes as KEYS."""

    @property
    def index(self) -> str:
        """Sorted set of every checkpoint of the thread (``cid<TAB>ecns``)."""
        return self.all[0]

    @property
    def ns_index(self) -> str:
        """Sorted set ``ecns<TAB>cid``: each checkpoint namespace is one lex range."""
        return self.all[1]

    @property
    def checkpoints(self) -> str:
        """Hash ``ecns<TAB>cid`` -> body (checkpoint and metadata frames)."""
        return self.all[2]

    @property
    def records(self) -> str:
        """Hash ``ecns<TAB>cid`` -> index record (parent, blob refs, run, filter fields)."""
        return self.all[3]

    @property
    def blobs(self) -> str:
        """Hash ``ecns<TAB><blob ref>`` -> one channel value at one version."""
        return self.all[4]

    @property
    def writes(self) -> str:
        """Hash ``ecns<TAB>cid<TAB>idx<TAB>task`` -> one pending write."""
        return self.all[5]

    @property
    def write_lists(self) -> str:
        """Hash ``ecns<TAB>cid`` -> the ``idx<TAB>task`` of that checkpoint's writes."""
        return self.all[6]

    @property
    def runs(self) -> str:
        """Sorted set ``erun<TAB>cid<TAB>ecns``: each run is one lex range."""
        return self.all[7]

    @staticmethod
    def field(ecns: str, cid: str) -> str:
        """A checkpoint's field in ``:cp``, ``:cpi`` and ``:wl`` (and prefix in ``:w``)."""
        return f"{ecns}\t{cid}"


_CHANNELS_MAX = 4_096
"""Channel names whose encoding a saver keeps (cleared when full: names are untrusted)."""


class CheckpointKeys:
    """Key builder of one checkpoint namespace.

    Args:
        keyspace: The connector's key space (its prefix; the schema version is ours).
        namespace: The saver's namespace (validated by `CheckpointSettings`).
    """

    __slots__ = ("_channels", "_ks", "namespace")

    def __init__(self, keyspace: KeySpace, namespace: str) -> None:
        self._ks = KeySpace(keyspace.prefix, schema_version=SCHEMA_VERSION)
        self.namespace = namespace
        self._channels: dict[str, str] = {}

    @staticmethod
    def enc(value: str) -> str:
        """One untrusted component (of a field or member), encoded."""
        return KeySpace.encode_component(value)

    @staticmethod
    def dec(value: str) -> str:
        """Invert `enc`."""
        return KeySpace.decode_component(value)

    def thread(self, thread_id: str) -> ThreadKeys:
        """The keys of one thread."""
        head = self._ks.key(KIND, f"{self.namespace}/{thread_id}")
        return ThreadKeys(thread_id, head, tuple(head + suffix for suffix in _SUFFIXES))

    @property
    def threads(self) -> str:
        """Sorted set of every thread of the namespace."""
        return self._ks.key("ckpt-idx", self.namespace, "threads")

    def run(self, run_id: str) -> str:
        """Set of the threads one run wrote checkpoints to."""
        return self._ks.key("ckpt-run", f"{self.namespace}/{run_id}", "threads")

    def blob_ref(self, channel: str, version: Any) -> str:
        """One channel version's name in its namespace (``<ech>:<ever>``)."""
        # A graph has few channels, named in every checkpoint (nine refs per put of a deep
        # agent, most of them "branch:to:..." names that need escaping): each is encoded
        # once per saver. Versions change every step, and seldom need escaping.
        if type(channel) is not str:  # read from Redis: the encoder's typed error
            return f"{KeySpace.encode_component(channel)}:{KeySpace.encode_component(str(version))}"
        ech = self._channels.get(channel)
        if ech is None:
            if len(self._channels) >= _CHANNELS_MAX:
                self._channels.clear()
            ech = self._channels[channel] = KeySpace.encode_component(channel)
        return f"{ech}:{KeySpace.encode_component(str(version))}"
