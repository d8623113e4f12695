"""Differential tests for any deepagents `BackendProtocol`: same operations, same results.

Install with the `backends` extra (`pip install 'deepagents-redis-testing[backends]'`): this
module needs deepagents and hypothesis, which the plugin itself does not, so
`deepagents_redis.testing` does not import it.

A backend is checked against a reference, by default deepagents' own `StoreBackend` over an
`InMemoryStore` (the reference semantics of the protocol): every operation runs on both and
the results must agree as plain data, except where two correct backends may differ:

- timestamps (`created_at`, `modified_at`) only need to be present in both or absent in both;
- grep matches may come in any order (the filesystem middleware sorts them by path);
- a capped grep (`max_count`, `truncated=True`) may keep different matches, but as many, and
  each one a real match.

`check_backend_against` lets hypothesis generate the operation sequences and shrink a failure
to a short one; `run_operations` / `arun_operations` replay a fixed script.

```python
from deepagents_redis.testing.backends import check_backend_against


def test_my_backend_behaves_like_store_backend():
    check_backend_against(MyBackend, max_examples=50)
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepagents.backends import StoreBackend
from deepagents.backends.protocol import BackendProtocol
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from langgraph.store.memory import InMemoryStore

__all__ = [
    "OPERATION_NAMES",
    "BackendFactory",
    "Operation",
    "arun_operations",
    "assert_same_result",
    "check_backend_against",
    "comparable",
    "operations",
    "reference_backend",
    "run_operations",
]

BackendFactory = Callable[[], BackendProtocol]
"""Builds a fresh, empty backend (one per generated example)."""

OPERATION_NAMES = (
    "write",
    "edit",
    "read",
    "delete",
    "ls",
    "glob",
    "grep",
    "upload_files",
    "download_files",
)
"""Every `BackendProtocol` file operation `operations` can generate."""

_STAMPS = ("created_at", "modified_at")


@dataclass(frozen=True)
class Operation:
    """One call of a backend method, replayable on any backend.

    Attributes:
        name: The sync method (`"write"`, `"grep"`, ...); `acall` uses its `a`-prefixed twin.
        args: Positional arguments.
        kwargs: Keyword arguments.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, backend: BackendProtocol) -> Any:
        """Run the operation through the backend's sync method."""
        return getattr(backend, self.name)(*self.args, **self.kwargs)

    async def acall(self, backend: BackendProtocol) -> Any:
        """Run the operation through the backend's async method (`aread`, `awrite`, ...)."""
        return await getattr(backend, "a" + self.name)(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        # Hypothesis prints falsifying examples with repr: make them read like the calls.
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"


def reference_backend() -> StoreBackend:
    """The reference: deepagents' `StoreBackend` over a fresh `InMemoryStore`.

    Returns:
        An empty backend.
    """
    return StoreBackend(store=InMemoryStore(), namespace=lambda _runtime: ("fs",))


def comparable(name: str, result: Any) -> Any:
    """A result as plain data, the way two correct backends must agree on it.

    Args:
        name: The operation that gave the result (grep matches are put in path order).
        result: What the backend returned.

    Returns:
        Nested plain data: dataclasses become `(class name, fields)`, timestamps become
        whether they are present.
    """

    def walk(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return (type(value).__name__, walk(dataclasses.asdict(value)))
        if isinstance(value, dict):
            return {
                k: (bool(v) if k in _STAMPS and isinstance(v, str) else walk(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    data = walk(result)
    if name == "grep" and isinstance(data, tuple) and data[1].get("matches"):
        fields = data[1]
        ordered = sorted(fields["matches"], key=lambda m: (m["path"], m["line"]))
        data = (data[0], {**fields, "matches": ordered})
    return data


def assert_same_result(
    operation: Operation | str, got: Any, expected: Any, *, full_grep: Any = None
) -> None:
    """Assert that a candidate's result agrees with the reference's.

    Args:
        operation: The operation (or its name).
        got: The candidate's result.
        expected: The reference's result.
        full_grep: For a capped grep that the reference reports truncated: the reference's
            uncapped result, which every match the candidate kept must belong to.

    Raises:
        AssertionError: The results disagree; the message names the operation and both.
    """
    name = operation if isinstance(operation, str) else operation.name
    capped = name == "grep" and getattr(expected, "truncated", False)
    try:
        if not capped:
            assert comparable(name, got) == comparable(name, expected)
            return
        # Which matches a cap keeps depends on the order a backend visits files in.
        assert got.truncated
        assert len(got.matches) == len(expected.matches)
        if full_grep is not None:
            everything = comparable(name, full_grep)[1]["matches"]
            kept = comparable(name, got)[1]["matches"]
            assert all(match in everything for match in kept)
    except AssertionError as exc:
        raise AssertionError(f"{operation!r}: got {got!r}, reference gave {expected!r}") from exc


def _full_grep(operation: Operation, reference: BackendProtocol, expected: Any) -> Any:
    if operation.name != "grep" or not getattr(expected, "truncated", False):
        return None
    return reference.grep(*operation.args, **{**operation.kwargs, "max_count": None})


def run_operations(
    candidate: BackendProtocol, reference: BackendProtocol, sequence: Iterable[Operation]
) -> None:
    """Run each operation on both backends (sync methods) and assert the results agree.

    Args:
        candidate: The backend under test.
        reference: The backend whose results are right (e.g. `reference_backend()`).
        sequence: The operations, in order.

    Raises:
        AssertionError: At the first operation whose results disagree.
    """
    for operation in sequence:
        expected = operation(reference)
        got = operation(candidate)
        assert_same_result(
            operation, got, expected, full_grep=_full_grep(operation, reference, expected)
        )


async def arun_operations(
    candidate: BackendProtocol, reference: BackendProtocol, sequence: Iterable[Operation]
) -> None:
    """Like `run_operations`, through the candidate's async methods (the reference's sync ones).

    Args:
        candidate: The backend under test; its `a`-methods are awaited.
        reference: The backend whose results are right.
        sequence: The operations, in order.

    Raises:
        AssertionError: At the first operation whose results disagree.
    """
    for operation in sequence:
        expected = operation(reference)
        got = await operation.acall(candidate)
        assert_same_result(
            operation, got, expected, full_grep=_full_grep(operation, reference, expected)
        )


# A few names, nested at most three deep, so that generated operations keep hitting the same
# files and directories; they include a dot file, a non-ASCII name and a space.
_NAMES = ["a", "b", "c.txt", "d.py", ".e", "x.png", "é", "sp ace"]
_paths = st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))
_dirs = st.one_of(st.just("/"), _paths, _paths.map(lambda p: p + "/"))
# Short texts repeated up to 250 times: large enough to cross a chunked backend's chunk size.
_texts = st.tuples(
    st.text(alphabet="ab\n\r é☃TODO", max_size=25), st.sampled_from([1, 1, 1, 60, 250])
).map(lambda t: t[0] * t[1])
_needles = st.sampled_from(["a", "b", "TODO", "\n", "é☃", "ab", "zz", ""])
_globs = st.sampled_from(["*", "**", "*.txt", "**/*.py", "/*", "a/*", "*.{txt,py}", ".e", "../x"])


def _op(name: str, *parts: st.SearchStrategy[Any]) -> st.SearchStrategy[Operation]:
    return st.tuples(*parts).map(lambda args: Operation(name, tuple(args)))


_STRATEGIES: dict[str, st.SearchStrategy[Operation]] = {
    "write": _op("write", _paths, _texts),
    "edit": _op("edit", _paths, _needles, st.text(alphabet="xy\n", max_size=4), st.booleans()),
    "read": _op("read", _paths, st.integers(-2, 40), st.integers(-1, 50)),
    "delete": _op("delete", _dirs),
    "ls": _op("ls", _dirs),
    "glob": _op("glob", _globs, st.one_of(st.none(), _dirs)),
    "grep": _op("grep", _needles, st.one_of(st.none(), _dirs), st.one_of(st.none(), _globs)),
    "upload_files": _op(
        "upload_files",
        st.lists(st.tuples(_paths, st.binary(max_size=40) | _texts.map(str.encode)), max_size=3),
    ),
    "download_files": _op("download_files", st.lists(_paths, max_size=3)),
}


def operations(names: Collection[str] = OPERATION_NAMES) -> st.SearchStrategy[Operation]:
    """A hypothesis strategy for one backend operation on a small tree of paths.

    Args:
        names: Which operations to generate (default: all of `OPERATION_NAMES`); leave out
            what a backend does not implement (`delete` is optional in the protocol).

    Returns:
        The strategy.

    Raises:
        ValueError: An unknown operation name, or none at all.
    """
    unknown = sorted(set(names) - set(_STRATEGIES))
    if unknown or not names:
        raise ValueError(f"unknown or no operation names {unknown}; choose from {OPERATION_NAMES}")
    return st.one_of(*(_STRATEGIES[name] for name in OPERATION_NAMES if name in names))


def check_backend_against(
    candidate: BackendFactory,
    reference: BackendFactory = reference_backend,
    *,
    names: Collection[str] = OPERATION_NAMES,
    max_examples: int = 35,
    max_operations: int = 25,
    invariant: Callable[[BackendProtocol], None] | None = None,
    settings: hypothesis_settings | None = None,
) -> None:
    """Run generated operation sequences on a fresh candidate and a fresh reference each.

    Call it from a test; hypothesis shrinks a failure to a short sequence and prints it.

    Args:
        candidate: Builds an empty backend under test (close what it builds yourself, e.g.
            with the plugin's `closer` fixture).
        reference: Builds an empty reference backend (default: `reference_backend`).
        names: Which operations to generate (see `operations`).
        max_examples: How many sequences to try.
        max_operations: The longest sequence.
        invariant: Called with the candidate after each sequence, e.g. to assert something
            the results cannot show.
        settings: Hypothesis settings replacing the defaults (`max_examples`, no deadline,
            no too-slow health check).

    Raises:
        AssertionError: The shrunk failing sequence's first disagreement.
    """
    chosen = settings or hypothesis_settings(
        max_examples=max_examples,
        deadline=None,  # a networked backend's first call may pay for a connection
        suppress_health_check=[HealthCheck.too_slow],
    )

    @chosen
    @given(sequence=st.lists(operations(names), min_size=1, max_size=max_operations))
    def differential(sequence: list[Operation]) -> None:
        backend = candidate()
        run_operations(backend, reference(), sequence)
        if invariant is not None:
            invariant(backend)

    differential()
