"""Every key of the checkpoint phase, built through core's `KeySpace`.

All keys of one thread share the hash tag ``{<namespace>/<thread id>}``, so a checkpoint, its
blobs, its writes and its index entries are written by one script in one Cluster slot::

    <prefix>:v1:ckpt:{<ns>/<thread>}:idx              zset  'cid<TAB>ecns' (every namespace)
    <prefix>:v1:ckpt:{<ns>/<thread>}:ns:<ecns>        zset  'cid' (one checkpoint namespace)
    <prefix>:v1:ckpt:{<ns>/<thread>}:cp:<ecns>:<cid>  hash  checkpoint, metadata, parent, ...
    <prefix>:v1:ckpt:{<ns>/<thread>}:w:<ecns>:<cid>   hash  pending writes, '<idx><TAB><task>'
    <prefix>:v1:ckpt:{<ns>/<thread>}:b:<ecns>:<ech>:<ever>  string  one channel version
    <prefix>:v1:ckpt:{<ns>/<thread>}:run:<erun>       set   'cid<TAB>ecns' written by one run

``ecns``, ``ech``, ``ever`` and ``erun`` are `KeySpace`-encoded (no ``:``, no control
characters); checkpoint ids are checked to need no encoding. Members are sorted by
lexicographic order (all scores 0): checkpoint ids are UUIDv6, so that is time order.

Two indexes span threads, each in its own slot, and are written before a thread's first put
in a process (so a crash never leaves a thread out of them):

    <prefix>:v1:ckpt-idx:{<ns>}:threads               zset  thread id -> first put (ms)
    <prefix>:v1:ckpt-run:{<ns>/<run id>}:threads      set   threads a run wrote to
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

from deepagents_redis.core import InvalidInputError, KeySpace

__all__ = ["CheckpointKeys", "ThreadKeys", "check_checkpoint_id", "thread_id_of"]

KIND: Final = "ckpt"
_CID = re.compile(r"[0-9A-Za-z._-]{1,128}")
MAX_THREAD_ID: Final = 1_024


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
    """A checkpoint id as stored in keys (LangGraph's are UUIDv6 text).

    Raises:
        InvalidInputError: Not 1-128 characters of ``[0-9A-Za-z._-]``.
    """
    if not isinstance(value, str) or not _CID.fullmatch(value):
        raise InvalidInputError(f"checkpoint id {value!r} is not 1-128 chars of [0-9A-Za-z._-]")
    return value


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """The keys of one thread (one hash tag)."""

    thread_id: str
    head: str
    """``<prefix>:v1:ckpt:{<ns>/<thread>}``: scripts append the suffixes above."""

    @property
    def index(self) -> str:
        """Sorted set of every checkpoint of the thread (``cid<TAB>ecns``)."""
        return self.head + ":idx"

    def ns_index(self, ecns: str) -> str:
        """Sorted set of the checkpoint ids of one checkpoint namespace."""
        return f"{self.head}:ns:{ecns}"

    def writes(self, ecns: str, cid: str) -> str:
        """Hash of one checkpoint's pending writes."""
        return f"{self.head}:w:{ecns}:{cid}"

    def checkpoint(self, ecns: str, cid: str) -> str:
        """Hash of one checkpoint."""
        return f"{self.head}:cp:{ecns}:{cid}"


class CheckpointKeys:
    """Key builder of one checkpoint namespace.

    Args:
        keyspace: The connector's key space.
        namespace: The saver's namespace (validated by `CheckpointSettings`).
    """

    __slots__ = ("_ks", "namespace")

    def __init__(self, keyspace: KeySpace, namespace: str) -> None:
        self._ks = keyspace
        self.namespace = namespace

    @staticmethod
    def enc(value: str) -> str:
        """One untrusted key component, encoded."""
        return KeySpace.encode_component(value)

    @staticmethod
    def dec(value: str) -> str:
        """Invert `enc`."""
        return KeySpace.decode_component(value)

    def thread(self, thread_id: str) -> ThreadKeys:
        """The keys of one thread."""
        return ThreadKeys(thread_id, self._ks.key(KIND, f"{self.namespace}/{thread_id}"))

    @property
    def threads(self) -> str:
        """Sorted set of every thread of the namespace."""
        return self._ks.key("ckpt-idx", self.namespace, "threads")

    def run(self, run_id: str) -> str:
        """Set of the threads one run wrote checkpoints to."""
        return self._ks.key("ckpt-run", f"{self.namespace}/{run_id}", "threads")

    @staticmethod
    def blob_ref(channel: str, version: Any) -> str:
        """The suffix of one channel version's blob key (``<ech>:<ever>``)."""
        return f"{KeySpace.encode_component(channel)}:{KeySpace.encode_component(str(version))}"
