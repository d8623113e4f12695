"""The Lua scripts of `RedisBackend`: one ``.lua`` file each in ``lua/``, headed by its contract.

Every key a script touches is passed in KEYS and lives under the namespace's hash tag, so
each script is one atomic step on one Cluster slot. Times come from the server (`TIME`;
Redis 7 freezes it for the length of a script), so expiry decisions agree with Redis' own
key expiry, which treats a key as gone once `now > deadline`.

Layout of one namespace (all keys share the scope `{namespace}`):

- `m:<path>`   hash: v version, g generation, n chunk count, d inline content, s size,
  e encoding, ca created_at, ma modified_at, t ttl ms, x expire-at ms, b blob ref, p path
- `c:<path>`   hash of chunks, fields `<generation>:<i>`; expires a grace period after its
  meta (a reader streaming a big file for grep can finish the generation it started)
- `idx`        sorted set of every path (score 0) for prefix ranges (`glob`, `grep`, `delete`)
- `files`      hash path -> `size|expire_at|encoding|modified_at`, what listings report
- `exp`        sorted set path -> expire-at ms, for purging index entries of expired files
- `blobs`      sorted set blob ref -> when it may be deleted (`+inf` while its file lives)
- `seq`        version counter: versions only grow, even across delete and re-create
- `blobid`     random id naming this namespace's folder in the blob store (set once; no
  script touches it): deployments sharing a blob directory never share a folder
- `s:<path>:<generation>`  hash of a big write's staged chunks, with a TTL, until the write
  script RENAMEs it over `c:<path>`; a write that fails before that removes it after the
  call (`_Layout._abandon`), a writer that dies leaves it to the TTL
- `d:<dir>`    hash per directory: a file child `name -> 'f'`; a sub-directory
  `name/ -> number of files below it`, so `ls` reads only the directory's own entries
"""

from __future__ import annotations

from typing import Final

from deepagents_redis.core import IdempotentScript, LuaScript

__all__ = [
    "DELETE",
    "EDIT",
    "FENCE",
    "GC_CLAIM",
    "GREP",
    "LIST",
    "LS",
    "PURGE",
    "READ",
    "STAGE",
    "WRITE",
]

_PACKAGE: Final = "deepagents_redis.fs"

# Writes go through core's op-id wrapper: a write whose reply was lost (timeout) is retried
# with the same op id and applied once, so an edit is never applied twice and a conditional
# write never reports a conflict with itself. Their files are bodies that use the wrapper's
# shifted `keys`/`argv` tables.
WRITE: Final = IdempotentScript.from_package("fs_write", _PACKAGE, "write.lua")
EDIT: Final = IdempotentScript.from_package("fs_edit", _PACKAGE, "utf8.lua", "edit.lua")
# Deletes too (issue 8 defect 3): a delete re-sent after a lost reply, once another worker
# had written the same path, deleted that new file; now the retry replays the first reply.
DELETE: Final = IdempotentScript.from_package(
    "fs_delete", _PACKAGE, "unlink_dirs.lua", "prefix_end.lua", "delete.lua"
)
PURGE: Final = LuaScript.from_package("fs_purge", _PACKAGE, "unlink_dirs.lua", "purge.lua")
LS: Final = LuaScript.from_package("fs_ls", _PACKAGE, "ls.lua")
LIST: Final = LuaScript.from_package("fs_list", _PACKAGE, "prefix_end.lua", "list.lua")
READ: Final = LuaScript.from_package("fs_read", _PACKAGE, "read.lua")
GC_CLAIM: Final = LuaScript.from_package("fs_gc_claim", _PACKAGE, "gc_claim.lua")
GREP: Final = LuaScript.from_package("fs_grep", _PACKAGE, "utf8.lua", "grep.lua")
# Big chunked writes stage their chunks first (see _common._STAGE_MIN); this is the stage
# for clients without MULTI. WRITE then commits the stage.
STAGE: Final = LuaScript.from_package("fs_stage", _PACKAGE, "stage.lua")
# A spilled write whose commit failed fences its op id before deleting its blob, unless the
# file's meta or the blobs set names the blob (the commit applied; its record may be gone).
FENCE: Final = LuaScript.from_package("fs_fence", _PACKAGE, "fence.lua")
