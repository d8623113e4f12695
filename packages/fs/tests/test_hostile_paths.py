"""Paths that are not valid Unicode text (issue 8 defect 6), on a real server.

A model's JSON `"\\ud800"` becomes a lone surrogate in a Python str. Before the fix `ls`,
`glob(path=)`, `grep(path=)` and `delete` raised `UnicodeEncodeError` for one; every
method must instead return its error result (as `StoreBackend` returns a result) and change
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

HOSTILE = ["/\ud800", "/a/\udfff.txt", "/a/\ud83d/b", "\ud800", "/ok/\x00/x"]

# (name, call, how the result reports an error)
CALLS: list[tuple[str, Callable[[Any, str], Any], Callable[[Any], Any]]] = [
    ("ls", lambda b, p: b.ls(p), lambda r: r.error),
    ("read", lambda b, p: b.read(p), lambda r: r.error),
    ("write", lambda b, p: b.write(p, "x"), lambda r: r.error),
    ("edit", lambda b, p: b.edit(p, "a", "b"), lambda r: r.error),
    ("delete", lambda b, p: b.delete(p), lambda r: r.error),
    ("glob path", lambda b, p: b.glob("*", path=p), lambda r: r.error),
    ("glob pattern", lambda b, p: b.glob(p), lambda r: r.error),
    ("grep path", lambda b, p: b.grep("x", path=p), lambda r: r.error),
    ("grep pattern", lambda b, p: b.grep(p), lambda r: r.error),
    ("grep glob", lambda b, p: b.grep("x", glob=p), lambda r: r.error),
    ("upload", lambda b, p: b.upload_files([(p, b"x")]), lambda r: r[0].error),
    ("download", lambda b, p: b.download_files([p]), lambda r: r[0].error),
]

ACALLS: list[tuple[str, Callable[[Any, str], Any], Callable[[Any], Any]]] = [
    ("als", lambda b, p: b.als(p), lambda r: r.error),
    ("aread", lambda b, p: b.aread(p), lambda r: r.error),
    ("awrite", lambda b, p: b.awrite(p, "x"), lambda r: r.error),
    ("aedit", lambda b, p: b.aedit(p, "a", "b"), lambda r: r.error),
    ("adelete", lambda b, p: b.adelete(p), lambda r: r.error),
    ("aglob path", lambda b, p: b.aglob("*", path=p), lambda r: r.error),
    ("agrep path", lambda b, p: b.agrep("x", path=p), lambda r: r.error),
    ("agrep pattern", lambda b, p: b.agrep(p), lambda r: r.error),
    ("aupload", lambda b, p: b.aupload_files([(p, b"x")]), lambda r: r[0].error),
    ("adownload", lambda b, p: b.adownload_files([p]), lambda r: r[0].error),
]


def _surrogate(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@pytest.mark.parametrize("path", HOSTILE)
@pytest.mark.parametrize(("name", "call", "error"), CALLS, ids=[c[0] for c in CALLS])
def test_every_method_returns_an_error_result(
    make_backend: Any, path: str, name: str, call: Any, error: Any
) -> None:
    backend = make_backend()
    backend.write("/keep.txt", "kept")
    before = backend.ls("/")
    result = call(backend, path)
    if _surrogate(path) or "\x00" in path:
        if name in {"glob pattern", "grep pattern", "grep glob"} and "\x00" in path:
            pass  # a NUL in a pattern is just text that matches nothing
        else:
            assert error(result), f"{name}({path!r}) gave no error: {result!r}"
    assert backend.ls("/") == before  # nothing written, nothing deleted
    assert backend.read("/keep.txt").file_data is not None


@pytest.mark.parametrize("path", ["/\ud800", "/a/\ud83d/b"])
@pytest.mark.parametrize(("name", "call", "error"), ACALLS, ids=[c[0] for c in ACALLS])
async def test_every_async_method_returns_an_error_result(
    make_backend: Any, path: str, name: str, call: Any, error: Any
) -> None:
    backend = make_backend()
    await backend.awrite("/keep.txt", "kept")
    result = await call(backend, path)
    assert error(result), f"{name}({path!r}) gave no error: {result!r}"
    assert [e["path"] for e in (await backend.als("/")).entries or []] == ["/keep.txt"]


_TEXT = st.text(st.characters(codec=None, categories=None), max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tail=_TEXT)
def test_no_path_makes_a_method_raise(make_backend: Any, tail: str) -> None:
    backend = make_backend(namespace="prop")
    path = "/" + tail
    for _name, call, _error in CALLS:
        call(backend, path)  # any result, never an exception


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("ab/:{}*?[]\\%\n\t é\u2028\x7f"), min_size=1),
        min_size=1,
        max_size=6,
    )
)
def test_bulk_meta_keys_are_the_keys_one_by_one(paths: list[str]) -> None:
    """grep's bulk key builder gives exactly `_k(ns, "m", path)` for any path mix."""
    from deepagents_redis.core import RedisSettings
    from deepagents_redis.fs import RedisBackend

    b = RedisBackend(settings=RedisSettings(url="redis://127.0.0.1:1/0"), namespace="n{s}")
    try:
        want = [b._k("n{s}", "m", "/" + p).encode() for p in paths]
        assert b._meta_keys("n{s}", ["/" + p for p in paths]) == want
        plain = ["/x", "/y/z.py"]
        assert b._meta_keys("n{s}", plain) == [b._k("n{s}", "m", p).encode() for p in plain]
    finally:
        b.close()


# A conditional write's expected version rides in the write script's NUL-joined header: a
# string with NULs in it replaced the fields after it (encoding, lifetime, blob reference).
_FORGED_HEADER = "\0".join(
    ["", "g1", "5", "base64", "1999", "0", "2000", "0", "0", "otherns/its/blob", "0", "", "13"]
)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("version", [_FORGED_HEADER, "1", True, -1, 1.0])
async def test_a_bad_expected_version_is_refused_and_changes_nothing(
    make_backend: Any, mode: str, version: Any
) -> None:
    from deepagents_redis.core import InvalidInputError
    from deepagents_redis.testing.backends import Operation

    async def call(b: Any, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
        op = Operation(name, args, kwargs)
        return op(b) if mode == "sync" else await op.acall(b)

    backend = make_backend()
    backend.write("/x.txt", "hello")
    before = backend.stat("/x.txt")
    with pytest.raises(InvalidInputError, match="expected_version"):
        await call(backend, mode, "write", "/x.txt", "hello", expected_version=version)
    assert backend.stat("/x.txt") == before
    assert backend.read("/x.txt").file_data["content"] == "hello"


async def test_a_namespace_that_is_not_unicode_text_is_refused(
    make_backend: Any, redis_target: Any
) -> None:
    """A lone surrogate in a namespace (a JSON `\\ud800` in a user id) stored small files but
    raised a bare UnicodeEncodeError on a spilled write or `gc` (the blob folder hashes the
    namespace): it is refused as bad input, before anything is sent."""
    from deepagents_redis.core import InvalidInputError
    from deepagents_redis.fs import RedisBackend

    with pytest.raises(InvalidInputError, match="namespace"):
        RedisBackend(settings=redis_target.settings, namespace="user-\ud800")
    backend = make_backend(namespace=lambda _runtime: "user-\ud800", spill_threshold=1024)
    for call in (
        lambda: backend.write("/big.txt", "x" * 2048),
        lambda: backend.write("/small.txt", "x"),
        lambda: backend.gc(),
    ):
        with pytest.raises(InvalidInputError, match="namespace"):
            call()
    with pytest.raises(InvalidInputError, match="namespace"):
        await backend.awrite("/small.txt", "x")
    ok = make_backend(namespace=lambda _runtime: "user-\u00e9")
    assert ok.write("/small.txt", "x").error is None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_write_refuses_a_path_deeper_than_the_limit_and_changes_nothing(
    make_backend: Any, mode: str
) -> None:
    """Each directory above a file is a Redis hash keyed by its whole path, so key names grow
    with the square of the depth: one 4,096-byte path of 2,047 directories stored 4.7 MB in
    2,048 keys and held the server 49 ms. A path over `MAX_PATH_DEPTH` directories is refused
    by `write` and `upload_files` (an `invalid_path` among the batch's other files, which are
    stored); a read of such a path is still a plain lookup."""
    from deepagents_redis.fs._paths import MAX_PATH_DEPTH
    from deepagents_redis.testing.backends import Operation

    async def call(b: Any, name: str, *args: Any) -> Any:
        op = Operation(name, args, {})
        return op(b) if mode == "sync" else await op.acall(b)

    backend = make_backend()
    deep = "/d" * (MAX_PATH_DEPTH + 1) + "/f.txt"
    written = await call(backend, "write", deep, "x")
    assert written.error is not None
    assert "directories deep" in written.error
    up = await call(backend, "upload_files", [(deep + "2", b"x"), ("/other.txt", b"y")])
    assert [r.error for r in up] == ["invalid_path", None]
    assert [e["path"] for e in (await call(backend, "ls", "/")).entries] == ["/other.txt"]
    assert (await call(backend, "read", deep)).error == f"File '{deep}' not found"
    at_limit = "/d" * MAX_PATH_DEPTH + "/f.txt"
    assert (await call(backend, "write", at_limit, "ok")).error is None
    assert (await call(backend, "read", at_limit)).file_data["content"] == "ok"
    assert [r.error for r in await call(backend, "upload_files", [(at_limit, b"up")])] == [None]
    assert (await call(backend, "delete", "/d")).error is None
    assert [e["path"] for e in (await call(backend, "ls", "/")).entries] == ["/other.txt"]
