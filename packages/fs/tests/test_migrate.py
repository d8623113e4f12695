"""DualWriteBackend, copy_files between any two backends, and the S3 blob store's API use."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from deepagents.backends import FilesystemBackend
from deepagents_redis.fs import (
    CopyReport,
    DualWriteBackend,
    RedisBackend,
    S3BlobStore,
    acopy_files,
    copy_files,
)
from deepagents_redis.testing.backends import reference_backend

pytestmark = pytest.mark.integration


def test_dual_write_mirrors_writes_and_reports_divergence(make_backend: Any) -> None:
    primary = reference_backend()
    secondary: RedisBackend = make_backend(max_file_size=50)
    seen: list[Any] = []
    dual = DualWriteBackend(primary, secondary, on_divergence=seen.append)
    assert dual.write("/a.txt", "hello").error is None
    assert dual.edit("/a.txt", "hello", "bye").occurrences == 1
    assert dual.upload_files([("/b.bin", b"\xff\x00")])[0].error is None
    assert secondary.read("/a.txt").file_data["content"] == "bye"
    assert secondary.download_files(["/b.bin"])[0].content == b"\xff\x00"
    assert dual.divergences == []
    # the secondary refuses a large file: the caller gets the primary's success, we get a report
    assert dual.write("/big.txt", "x" * 100).error is None
    assert [d.op for d in dual.divergences] == ["write"]
    assert seen == dual.divergences
    assert "maximum file size" in dual.divergences[0].secondary.error
    # reads come from the primary only
    assert dual.read("/big.txt").file_data["content"] == "x" * 100
    assert dual.delete("/a.txt").error is None
    assert secondary.stat("/a.txt") is None
    assert dual.divergence_count == 1


async def test_dual_write_async_with_shadow_reads(make_backend: Any) -> None:
    primary = reference_backend()
    secondary: RedisBackend = make_backend()
    dual = DualWriteBackend(primary, secondary, shadow_reads=True)
    await dual.awrite("/d/one.py", "print(1)  # TODO\n")
    await dual.aedit("/d/one.py", "1", "2")
    assert (await dual.aread("/d/one.py")).file_data["content"] == "print(2)  # TODO\n"
    assert [e["path"] for e in (await dual.als("/d")).entries] == ["/d/one.py"]
    assert len((await dual.aglob("*.py")).matches) == 1
    assert len((await dual.agrep("TODO")).matches) == 1
    assert (await dual.adownload_files(["/d/one.py"]))[0].content == b"print(2)  # TODO\n"
    assert dual.divergences == []
    primary.write("/only-primary.txt", "p")  # written behind the dual backend's back
    await dual.aread("/only-primary.txt")
    await dual.als("/")
    assert [d.op for d in dual.divergences] == ["read", "ls"]
    await dual.adelete("/d")
    assert await secondary.astat("/d/one.py") is None


def _tree(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "README.md").write_text("# hi\n")
    (root / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (root / "big.txt").write_text("line\n" * 30_000)


def test_copy_between_filesystem_redis_and_store(make_backend: Any, tmp_path: Path) -> None:
    _tree(tmp_path / "src-dir")
    fs = FilesystemBackend(root_dir=tmp_path / "src-dir", virtual_mode=True)
    redis_fs: RedisBackend = make_backend()
    report = copy_files(fs, redis_fs, batch_size=2)
    assert report.failed == []
    assert sorted(report.copied) == ["/README.md", "/big.txt", "/img.png", "/src/pkg/mod.py"]
    assert redis_fs.download_files(["/img.png"])[0].content == b"\x89PNG\r\n\x1a\n\x00\xff"
    assert redis_fs.read("/src/pkg/mod.py").file_data["content"] == "x = 1\n"
    # and on to a StoreBackend, then a sub-tree back to a fresh directory
    store = reference_backend()
    assert len(copy_files(redis_fs, store).copied) == 4
    out = FilesystemBackend(root_dir=tmp_path / "out", virtual_mode=True)
    (tmp_path / "out").mkdir()
    assert copy_files(store, out, path="/src").copied == ["/src/pkg/mod.py"]
    assert (tmp_path / "out" / "src" / "pkg" / "mod.py").read_text() == "x = 1\n"


async def test_acopy_files(make_backend: Any) -> None:
    a: RedisBackend = make_backend()
    b: RedisBackend = make_backend()
    await a.aupload_files([("/x/1.txt", b"one"), ("/x/y/2.bin", b"\x00\xff"), ("/3", b"")])
    report = await acopy_files(a, b)
    assert sorted(report.copied) == ["/3", "/x/1.txt", "/x/y/2.bin"]
    got = await b.adownload_files(["/x/1.txt", "/x/y/2.bin", "/3"])
    assert [g.content for g in got] == [b"one", b"\x00\xff", b""]


def test_s3_blob_store_speaks_the_boto3_s3_api() -> None:
    """Against botocore's Stubber (no S3 endpoint here): the exact calls and parameters."""
    boto3 = pytest.importorskip("boto3")
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    store = S3BlobStore("bkt", prefix="p/", client=client)
    with Stubber(client) as stub:
        stub.add_response("put_object", {}, {"Bucket": "bkt", "Key": "p/a/b", "Body": b"data"})
        body = StreamingBody(io.BytesIO(b"data"), 4)
        stub.add_response("get_object", {"Body": body}, {"Bucket": "bkt", "Key": "p/a/b"})
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
        stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": "p/a/b"})
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "p/a/b"}], "IsTruncated": True, "NextContinuationToken": "t"},
            {"Bucket": "bkt", "Prefix": "p/a/"},
        )
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "p/a/c"}], "IsTruncated": False},
            {"Bucket": "bkt", "Prefix": "p/a/", "ContinuationToken": "t"},
        )
        store.put("a/b", b"data")
        assert store.get("a/b") == b"data"
        assert store.get("a/b") is None
        store.delete("a/b")
        assert [ref for ref, _ in store.list("a/")] == ["a/b", "a/c"]
        stub.assert_no_pending_responses()


class _Unlistable(FilesystemBackend):
    """A source whose `ls` of one directory fails (permissions, a remote store's error)."""

    def __init__(self, broken: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broken = broken

    def ls(self, path: str) -> Any:
        from deepagents.backends.protocol import LsResult

        if path.rstrip("/") == self.broken:
            return LsResult(error=f"permission denied: {path}")
        return super().ls(path)

    async def als(self, path: str) -> Any:
        return self.ls(path)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_directory_the_source_cannot_list_is_a_failure(
    make_backend: Any, tmp_path: Path, mode: str
) -> None:
    """The walk ignored `ls` errors: the files under a directory it could not list were
    skipped without a word and the copy reported no failure."""
    _tree(tmp_path / "src-dir")
    source = _Unlistable("/src/pkg", root_dir=tmp_path / "src-dir", virtual_mode=True)
    target: RedisBackend = make_backend()
    if mode == "sync":
        report = copy_files(source, target)
    else:
        report = await acopy_files(source, target)
    assert sorted(report.copied) == ["/README.md", "/big.txt", "/img.png"]
    [(where, why)] = report.failed
    assert where.rstrip("/") == "/src/pkg"
    assert why.startswith("cannot list: permission denied")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_path_naming_a_file_or_nothing_is_not_a_silent_empty_copy(
    make_backend: Any, tmp_path: Path, mode: str
) -> None:
    """`ls` of a file or of a missing path is an empty listing on Redis (as on StoreBackend):
    path="/notes.md" copied nothing and path="/typo" reported nothing copied, nothing failed."""
    source: RedisBackend = make_backend()
    target: RedisBackend = make_backend()
    source.upload_files([("/notes.md", b"hello"), ("/dir/a.txt", b"a")])
    (tmp_path / "fs" / "empty").mkdir(parents=True)
    empty_dir = FilesystemBackend(root_dir=tmp_path / "fs", virtual_mode=True)

    async def copy(src: Any, path: str) -> CopyReport:
        if mode == "sync":
            return copy_files(src, target, path=path)
        return await acopy_files(src, target, path=path)

    one = await copy(source, "/notes.md")
    assert (one.copied, one.failed) == (["/notes.md"], [])
    assert target.read("/notes.md").file_data["content"] == "hello"
    typo = await copy(source, "/typo/")
    assert typo.copied == []
    assert typo.failed == [("/typo/", "nothing to copy: no file at or under it (file_not_found)")]
    empty = await copy(empty_dir, "/empty")
    assert (empty.copied, empty.failed) == ([], [])  # an empty directory is nothing to copy
    tree = await copy(source, "/dir")
    assert (tree.copied, tree.failed) == (["/dir/a.txt"], [])


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_file_and_a_directory_of_one_name_are_both_copied(
    make_backend: Any, mode: str
) -> None:
    """Key-value backends hold `/a` and `/a/b` at once; `path="/a"` names both (as `delete`
    reads it), but only the walk under `/a/` was copied: `/a` was left behind while the
    report said the copy was complete."""
    source: RedisBackend = make_backend()
    target: RedisBackend = make_backend()
    source.upload_files([("/a", b"file a"), ("/a/b", b"file b"), ("/ab", b"not under /a")])
    for path in ("/a", "/a/"):
        if mode == "sync":
            report = copy_files(source, target, path=path)
        else:
            report = await acopy_files(source, target, path=path)
        assert (report.copied, report.failed) == (["/a", "/a/b"], [])
    assert target.read("/a").file_data["content"] == "file a"
    assert target.read("/ab").error is not None  # a sibling with the same prefix is not under it


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("batch_size", [-1, 0, True, 2.0])
async def test_a_bad_batch_size_is_refused_not_a_silent_empty_copy(
    make_backend: Any, mode: str, batch_size: Any
) -> None:
    """`batch_size=-1` made the batch loop empty: nothing copied, nothing failed, as if the
    source held no file; 0 raised a bare ValueError from `range`."""
    from deepagents_redis.core import InvalidInputError

    source: RedisBackend = make_backend()
    target: RedisBackend = make_backend()
    source.upload_files([("/a.txt", b"a")])

    async def copy() -> CopyReport:
        if mode == "sync":
            return copy_files(source, target, batch_size=batch_size)
        return await acopy_files(source, target, batch_size=batch_size)

    with pytest.raises(InvalidInputError, match="batch_size"):
        await copy()
    assert target.ls("/").entries == []
