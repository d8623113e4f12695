"""Options the backend cannot honour are refused when it is built, in code and in settings.

Before: a `ttl_rules` lifetime of 0 made the files under its prefix expire 1 ms after each
write; NaN or infinite lifetimes failed every write with a bare ValueError/OverflowError;
`ttl=1e15` failed in the write script after its first writes (the file was stored but left
out of the index); a negative `chunk_grace` expired chunks before their metadata;
`edit_retries=0` gave up every chunked edit unattempted; a negative `spill_threshold`
spilled even empty files.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from deepagents_redis.core import ConfigurationError, InvalidInputError
from deepagents_redis.fs import FsSettings, RedisBackend
from deepagents_redis.fs._settings import MAX_LIFETIME_SECONDS

pytestmark = pytest.mark.integration

BAD: list[tuple[dict[str, Any], str]] = [
    ({"ttl_rules": {"/tmp/": 0}}, "ttl_rules"),
    ({"ttl_rules": {"/tmp/": -5}}, "ttl_rules"),
    ({"ttl_rules": {"/tmp/": math.nan}}, "ttl_rules"),
    ({"ttl_rules": {"/tmp/": math.inf}}, "ttl_rules"),
    ({"ttl_rules": {"/tmp/": 1e15}}, "ttl_rules"),
    ({"ttl": 0}, "ttl"),
    ({"ttl": math.nan}, "ttl"),
    ({"ttl": math.inf}, "ttl"),
    ({"ttl": 1e15}, "ttl"),
    ({"chunk_grace": -1}, "chunk_grace"),
    ({"chunk_grace": math.nan}, "chunk_grace"),
    ({"chunk_grace": 1e15}, "chunk_grace"),
    ({"edit_retries": 0}, "edit_retries"),
    ({"spill_threshold": -1}, "spill_threshold"),
    ({"max_file_size": 0}, "max_file_size"),
    ({"chunk_size": 512}, "chunk_size"),
    ({"deadline_seconds": math.nan}, "deadline_seconds"),
    ({"deadline_seconds": 0}, "deadline_seconds"),
]


@pytest.mark.parametrize(("option", "name"), BAD, ids=[f"{o}" for o, _ in BAD])
def test_the_constructor_refuses_an_option_it_cannot_honour(
    make_backend: Any, option: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidInputError, match=name):
        make_backend(**option)


SETTINGS_BAD: list[dict[str, Any]] = [
    {"ttl_rules": {"/tmp/": 0}},
    {"ttl_rules": {"/tmp/": math.nan}},
    {"ttl_rules": {"/tmp/": 1e15}},
    {"ttl_seconds": math.inf},
    {"ttl_seconds": 1e15},
    {"deadline_seconds": math.inf},
]


@pytest.mark.parametrize("option", SETTINGS_BAD, ids=[f"{o}" for o in SETTINGS_BAD])
def test_settings_refuse_the_same(option: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(option))):
        FsSettings(**option)


@pytest.mark.parametrize("size", [10, 8000, 200_000], ids=["inline", "chunked", "staged"])
def test_the_longest_lifetime_works_end_to_end(make_backend: Any, size: int) -> None:
    # the bound is one the scripts can carry: write, edit, list and read all work with it
    b: RedisBackend = make_backend(
        ttl_rules={"/long/": MAX_LIFETIME_SECONDS}, chunk_grace=MAX_LIFETIME_SECONDS
    )
    text = "first\n" + ("line\n" * size)[: size - 6]
    assert b.write("/long/f.txt", text).error is None
    assert b.edit("/long/f.txt", "first", "FIRST").error is None
    st = b.stat("/long/f.txt")
    assert st is not None
    assert st.expires_at is not None
    assert 0 < st.expires_at - time.time() <= MAX_LIFETIME_SECONDS
    assert [e["path"] for e in b.ls("/long").entries or []] == ["/long/f.txt"]
    assert [m["path"] for m in b.glob("*.txt").matches or []] == ["/long/f.txt"]
    got = b.read("/long/f.txt", 0, size)
    assert got.file_data is not None
    assert got.file_data["content"] == text.replace("first", "FIRST")
    assert FsSettings(ttl_seconds=MAX_LIFETIME_SECONDS, ttl_rules={"/x/": None}).ttl_rules
