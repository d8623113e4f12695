"""Property tests: differential against StoreBackend (RedisBackend, and DualWriteBackend in
front of it), and path fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents.backends.utils import validate_path
from deepagents_redis.fs import DualWriteBackend, RedisBackend
from deepagents_redis.testing.backends import check_backend_against, reference_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration


def test_differential_against_store_backend(make_backend: Any) -> None:
    # Small chunks and spill threshold: generated files cross both.
    check_backend_against(lambda: make_backend(chunk_size=1024, spill_threshold=4096))


def test_dual_write_backend_differential_and_never_diverges(make_backend: Any) -> None:
    # Redis as the primary (what callers get), StoreBackend as the mirrored secondary with
    # shadow reads: the results must match a plain StoreBackend's, and the dual backend must
    # never have seen its two backends disagree.
    def dual() -> DualWriteBackend:
        primary: RedisBackend = make_backend(chunk_size=1024, spill_threshold=4096)
        return DualWriteBackend(primary, reference_backend(), shadow_reads=True)

    def agreed(backend: Any) -> None:
        assert backend.divergences == []

    check_backend_against(dual, max_examples=20, invariant=agreed)


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
