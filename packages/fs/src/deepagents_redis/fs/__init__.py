"""deepagents_redis.fs: a deepagents filesystem backend on Redis.

`RedisBackend` implements deepagents' `BackendProtocol` with the semantics of
`StoreBackend`, plus an index, chunking, atomic conflict-free edits, TTLs, spillover of
large files to a blob store and a size limit. `DualWriteBackend` and `copy_files` help
migrate an existing backend onto it.
"""

from deepagents_redis.fs._backend import FileStat, NamespaceFactory, RedisBackend
from deepagents_redis.fs._blobs import BlobStore, LocalBlobStore, S3BlobStore
from deepagents_redis.fs._migrate import (
    CopyReport,
    Divergence,
    DualWriteBackend,
    acopy_files,
    copy_files,
)
from deepagents_redis.fs._settings import FsSettings

__all__ = [
    "BlobStore",
    "CopyReport",
    "Divergence",
    "DualWriteBackend",
    "FileStat",
    "FsSettings",
    "LocalBlobStore",
    "NamespaceFactory",
    "RedisBackend",
    "S3BlobStore",
    "acopy_files",
    "copy_files",
]
