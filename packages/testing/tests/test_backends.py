"""`deepagents_redis.testing.backends`: the differential check for any `BackendProtocol`."""

from __future__ import annotations

from typing import Any

import pytest
from deepagents.backends import StoreBackend
from deepagents.backends.protocol import GrepResult, LsResult
from deepagents_redis.testing.backends import (
    Operation,
    arun_operations,
    assert_same_result,
    check_backend_against,
    operations,
    reference_backend,
    run_operations,
)
from hypothesis import settings
from langgraph.store.memory import InMemoryStore


class ForgetfulBackend(StoreBackend):
    """A subtly wrong backend: `ls` drops the last entry of a directory."""

    def ls(self, path: str) -> LsResult:
        result = super().ls(path)
        return LsResult(error=result.error, entries=(result.entries or [])[:-1])


def test_the_reference_agrees_with_itself() -> None:
    check_backend_against(reference_backend, max_examples=10)


def test_a_wrong_backend_fails_naming_the_operation() -> None:
    with pytest.raises(AssertionError, match=r"ls\("):
        check_backend_against(
            lambda: ForgetfulBackend(store=InMemoryStore(), namespace=lambda _rt: ("fs",)),
            settings=settings(max_examples=200, deadline=None, database=None),
        )


def test_operations_are_chosen_by_name() -> None:
    with pytest.raises(ValueError, match="unknown"):
        operations(["write", "chmod"])
    check_backend_against(reference_backend, names=["write", "read"], max_examples=5)


def test_invariant_runs_after_each_sequence() -> None:
    seen: list[Any] = []
    check_backend_against(reference_backend, max_examples=3, invariant=seen.append)
    assert len(seen) == 3
    assert all(isinstance(b, StoreBackend) for b in seen)


def test_timestamps_and_grep_order_may_differ() -> None:
    a = LsResult(entries=[{"path": "/a", "is_dir": False, "size": 1, "modified_at": "t1"}])
    b = LsResult(entries=[{"path": "/a", "is_dir": False, "size": 1, "modified_at": "t2"}])
    assert_same_result("ls", a, b)
    with pytest.raises(AssertionError):
        assert_same_result("ls", a, LsResult(entries=[{**a.entries[0], "modified_at": ""}]))
    first = {"path": "/a", "line": 1, "text": "x"}
    second = {"path": "/b", "line": 1, "text": "x"}
    assert_same_result(
        "grep", GrepResult(matches=[second, first]), GrepResult(matches=[first, second])
    )


def test_a_capped_grep_may_keep_other_real_matches() -> None:
    matches = [{"path": f"/{n}", "line": 1, "text": "x"} for n in "abc"]
    full = GrepResult(matches=matches)
    reference = GrepResult(matches=matches[1:], truncated=True)
    kept = GrepResult(matches=matches[:2], truncated=True)
    assert_same_result(Operation("grep", ("x",), {"max_count": 2}), kept, reference, full_grep=full)
    invented = GrepResult(
        matches=[matches[0], {"path": "/z", "line": 9, "text": "x"}], truncated=True
    )
    with pytest.raises(AssertionError, match="grep"):
        assert_same_result("grep", invented, reference, full_grep=full)


async def test_scripts_sync_and_async() -> None:
    script = [
        Operation("write", ("/a.txt", "hello\nTODO\n")),
        Operation("upload_files", ([("/b/c.bin", b"\x00TODO")],)),
        Operation("grep", ("TODO",), {"max_count": 1}),
        Operation("glob", ("**",)),
        Operation("read", ("/a.txt", 1, 1)),
        Operation("delete", ("/b",)),
        Operation("ls", ("/",)),
    ]
    run_operations(reference_backend(), reference_backend(), script)
    await arun_operations(reference_backend(), reference_backend(), script)
    assert repr(script[2]) == "grep('TODO', max_count=1)"
