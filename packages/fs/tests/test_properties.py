"""Property tests: differential against StoreBackend, and path fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
from _fs_helpers import assert_same, store_backend
from deepagents.backends.utils import validate_path
from deepagents_redis.fs import RedisBackend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

_NAMES = ["a", "b", "c.txt", "d.py", ".e", "x.png", "é", "sp ace"]
paths = st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))
dirs = st.one_of(st.just("/"), paths, paths.map(lambda p: p + "/"))
texts = st.tuples(
    st.text(alphabet="ab\n\r é☃TODO", max_size=25), st.sampled_from([1, 1, 1, 60, 250])
).map(lambda t: t[0] * t[1])
needles = st.sampled_from(["a", "b", "TODO", "\n", "é☃", "ab", "zz", ""])
globs = st.sampled_from(["*", "**", "*.txt", "**/*.py", "/*", "a/*", "*.{txt,py}", ".e", "../x"])

ops = st.one_of(
    st.tuples(st.just("write"), paths, texts),
    st.tuples(st.just("edit"), paths, needles, st.text(alphabet="xy\n", max_size=4), st.booleans()),
    st.tuples(st.just("read"), paths, st.integers(-2, 40), st.integers(-1, 50)),
    st.tuples(st.just("delete"), dirs),
    st.tuples(st.just("ls"), dirs),
    st.tuples(st.just("glob"), globs, st.one_of(st.none(), dirs)),
    st.tuples(st.just("grep"), needles, st.one_of(st.none(), dirs), st.one_of(st.none(), globs)),
    st.tuples(
        st.just("upload_files"),
        st.lists(st.tuples(paths, st.binary(max_size=40) | texts.map(str.encode)), max_size=3),
    ),
    st.tuples(st.just("download_files"), st.lists(paths, max_size=3)),
)


@settings(
    max_examples=35,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(ops, min_size=1, max_size=25))
def test_differential_against_store_backend(
    make_backend: Any, sequence: list[tuple[Any, ...]]
) -> None:
    ours: RedisBackend = make_backend(chunk_size=1024, spill_threshold=4096)
    reference = store_backend()
    for op in sequence:
        name, args = op[0], op[1:]
        if name == "upload_files":
            # StoreBackend stores a batch one by one: later duplicates win, like ours
            args = (list(args[0]),)
        expected = getattr(reference, name)(*args)
        got = getattr(ours, name)(*args)
        try:
            assert_same(name, got, expected)
        except AssertionError as exc:
            raise AssertionError(f"{name}{args}: {got!r} != {expected!r}") from exc


_FUZZ_ALPHABET = st.sampled_from(
    [*"/.a~\\{}*?[]:\x00\x01\n é☃𝄞", "..", "//", "/./", "/../", "\ud800"]
)
fuzz_paths = st.one_of(
    st.lists(_FUZZ_ALPHABET, max_size=12).map("".join),
    st.lists(_FUZZ_ALPHABET, max_size=12).map(lambda p: "/" + "".join(p)),
    st.integers(min_value=4000, max_value=4200).map(lambda n: "/" + "d/" * (n // 2)),
    st.text(max_size=40).map(lambda t: "/" + t),
)


@pytest.fixture
def fuzz_pair(redis_settings: Any, tmp_path: Any) -> Any:
    a = RedisBackend(settings=redis_settings, namespace="fuzz-a", blob_dir=str(tmp_path))
    b = RedisBackend(settings=redis_settings, namespace="fuzz-b", blob_dir=str(tmp_path))
    yield a, b
    a.close()
    b.close()


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=fuzz_paths)
def test_path_fuzzing_rejected_or_confined(fuzz_pair: Any, path: str) -> None:
    a, b = fuzz_pair
    res = a.write(path, "x")
    if res.error is not None:
        assert res.error.startswith("Error: Invalid path")
        assert a.read(path).error.startswith("Error: Invalid path")
        assert a.edit(path, "x", "y").error.startswith("Error: Invalid path")
        assert a.upload_files([(path, b"x")])[0].error == "invalid_path"
        assert a.download_files([path])[0].error == "invalid_path"
        return
    # accepted: a canonical absolute path, stored only in namespace a, under that exact path
    assert validate_path(path) == path
    assert a.read(path).file_data["content"] == "x"
    assert a.download_files([path])[0].content == b"x"
    assert b.read(path).error == f"File '{path}' not found"
    assert path in {e["path"] for e in a.ls(path.rsplit("/", 1)[0] + "/").entries}
    assert a.delete(path).error is None
    assert a.ls("/").entries == []
    assert a.grep("x").matches == []
