from __future__ import annotations

import re

import pytest
from deepagents_redis.core import InvalidInputError, KeySpace
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

kinds = st.from_regex(re.compile(r"[a-z0-9_-]{1,8}"), fullmatch=True)
# Every code point, surrogates included: the encoding must survive them.
components = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
hostile = st.text(alphabet="%:{}*?[]\\ \x00\x1f\x7f\u2028\ud800a_", max_size=8)
any_component = st.one_of(components, hostile)
key_inputs = st.tuples(kinds, any_component, st.lists(any_component, max_size=4).map(tuple))

KS = KeySpace("dar")
GLOB_OR_BRACE = set("*?[]\\{}")


def test_layout_examples() -> None:
    assert KS.key("todo", "t1", "list") == "dar:v1:todo:{t1}:list"
    assert KS.key("todo", "t1") == "dar:v1:todo:{t1}"
    assert KS.key("fs", "a:b", "x*y") == "dar:v1:fs:{a%3Ab}:x%2Ay"
    assert KS.key("fs", "", "") == "dar:v1:fs:{%_}:%_"
    assert KeySpace("app:dar", schema_version=3).key("c", "s") == "app:dar:v3:c:{s}"
    assert KS.scope_tag("a}b") == "{a%7Db}"
    assert KS.schema_marker_key() == "dar:schema"
    assert KS.op_key("s", "id1") == "dar:v1:op:{s}:id1"


def test_encode_examples() -> None:
    enc = KeySpace.encode_component
    assert enc("plain/path.txt") == "plain/path.txt"
    assert enc("100%") == "100%25"
    assert enc("\x00\n") == "%00%0A"
    assert enc("\u2028") == "%E2%80%A8"
    assert enc("\ud800") == "%ED%A0%80"
    assert enc("é ü") == "é ü"


@pytest.mark.parametrize("prefix", ["", "a{b}", "a*", "x:", ":x", "a b", "é", "a[1]"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(InvalidInputError):
        KeySpace(prefix)


@pytest.mark.parametrize("kind", ["", "A", "a:b", "a{", "a*", "ü"])
def test_bad_kind(kind: str) -> None:
    with pytest.raises(InvalidInputError):
        KS.key(kind, "s")


def test_bad_schema_version_and_component_type() -> None:
    with pytest.raises(InvalidInputError):
        KeySpace("dar", schema_version=0)
    with pytest.raises(InvalidInputError):
        KS.key("k", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        KS.key("k", "s", b"x")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "%", "%4", "%zz", "%3a", "a:b", "a{", "%41", "%FF", "%_x"])
def test_decode_rejects_non_canonical(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        KeySpace.decode_component(bad)


@given(any_component)
def test_component_round_trip(value: str) -> None:
    encoded = KeySpace.encode_component(value)
    assert encoded
    assert KeySpace.decode_component(encoded) == value
    assert ":" not in encoded
    assert not GLOB_OR_BRACE & set(encoded)
    assert encoded.isprintable()
    encoded.encode("utf-8")  # never a lone surrogate: Redis keys must be valid UTF-8


def _reference_encode(value: str) -> str:
    # The encoding as the module docstring states it, one character at a time.
    if not value:
        return "%_"
    return "".join(
        "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        if ch in "%:{}*?[]\\" or not ch.isprintable()
        else ch
        for ch in value
    )


@given(st.one_of(any_component, st.text(alphabet="branch:to%{}é\u2028", max_size=20)))
def test_component_encoding_matches_the_reference(value: str) -> None:
    # The fast paths (nothing to escape; a printable value's ASCII specials) change nothing.
    assert KeySpace.encode_component(value) == _reference_encode(value)


@settings(max_examples=300, deadline=None)  # no wall-clock limit in tests
@given(key_inputs, key_inputs)
def test_distinct_inputs_give_distinct_keys(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    ka = KS.key(a[0], a[1], *a[2])
    kb = KS.key(b[0], b[1], *b[2])
    assert (ka == kb) == (a == b)


@settings(max_examples=300, deadline=None)  # no wall-clock limit in tests
@given(key_inputs)
def test_key_parse_round_trip_and_shape(x: tuple) -> None:  # type: ignore[type-arg]
    kind, scope, rest = x
    key = KS.key(kind, scope, *rest)
    assert KS.parse(key) == (kind, scope, rest)
    assert KS.parse(key.encode()) == (kind, scope, rest)
    # No glob character from the input survives, and the only braces are the hash tag's.
    assert not set("*?[]\\") & set(key)
    assert key.count("{") == 1
    assert key.count("}") == 1
    tag = KS.scope_tag(scope)
    assert tag in key
    assert key.index("{") == key.index(tag)


@settings(max_examples=200, deadline=None)  # no wall-clock limit in tests
@given(
    any_component,
    kinds,
    kinds,
    st.lists(any_component, max_size=3),
    st.lists(any_component, max_size=3),
)
def test_one_scope_one_slot(scope: str, k1: str, k2: str, r1: list[str], r2: list[str]) -> None:
    a = KS.key(k1, scope, *r1).encode()
    b = KS.key(k2, scope, *r2).encode()
    tag = KS.scope_tag(scope)[1:-1].encode()
    assert key_slot(a) == key_slot(b) == key_slot(tag)


@given(any_component, any_component)
def test_scan_pattern_matches_only_its_scope(scope: str, other: str) -> None:
    import fnmatch

    pattern = KS.scan_pattern("fs", scope)
    mine = KS.key("fs", scope, "x")
    theirs = KS.key("fs", other, "x")
    # Redis glob and fnmatchcase agree on a pattern whose only special char is the final '*'.
    assert fnmatch.fnmatchcase(mine, pattern)
    assert fnmatch.fnmatchcase(KS.key("fs", scope), pattern)
    assert fnmatch.fnmatchcase(theirs, pattern) == (scope == other)
    assert not set("?[]\\") & set(pattern)
    assert pattern.count("*") == 1


def test_scan_pattern_variants() -> None:
    assert KS.scan_pattern() == "dar:v1:*"
    assert KS.scan_pattern("todo") == "dar:v1:todo:*"
    with pytest.raises(InvalidInputError):
        KS.scan_pattern(scope="s")


@pytest.mark.parametrize(
    "key",
    [
        "other:v1:k:{s}",
        "dar:v2:k:{s}",
        "dar:v1:k",
        "dar:v1:K:{s}",
        "dar:v1:k:{s",
        "dar:v1:k:{s}x",
        "dar:v1:k:{s}:",
    ],
)
def test_parse_rejects_foreign_keys(key: str) -> None:
    with pytest.raises(InvalidInputError):
        KS.parse(key)


# -- component length bound: a megabyte namespace or path became a megabyte key ----------
def test_components_up_to_the_bound_are_accepted() -> None:
    from deepagents_redis.core import MAX_KEY_COMPONENT_CHARS

    # The longest file path fs accepts (4096 UTF-8 bytes), also as scope, fits easily.
    path = "/" + "d/" * 2047 + "f"
    assert len(path.encode()) == 4096
    assert KS.parse(KS.key("fs", path, path)) == ("fs", path, (path,))
    edge = "x" * MAX_KEY_COMPONENT_CHARS
    assert KS.key("k", edge, edge).endswith(":" + edge)
    assert KS.scoped("k", edge).key(edge) == KS.key("k", edge, edge)
    assert KS.scope_tag(edge) == "{" + edge + "}"


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda big: KS.key("k", big), id="scope"),
        pytest.param(lambda big: KS.key("k", "s", "ok", big), id="rest"),
        pytest.param(lambda big: KS.scoped("k", big), id="scoped"),
        pytest.param(lambda big: KS.scoped("k", "s").key(big), id="scoped-rest"),
        pytest.param(lambda big: KS.scope_tag(big), id="scope_tag"),
        pytest.param(lambda big: KS.op_key("s", big), id="op_key"),
        pytest.param(lambda big: KS.scan_pattern("k", big), id="scan_pattern"),
    ],
)
@pytest.mark.parametrize("size", ["one-over", "megabytes"])
def test_an_overlong_component_is_invalid_input(build: object, size: str) -> None:
    from deepagents_redis.core import MAX_KEY_COMPONENT_CHARS

    n = MAX_KEY_COMPONENT_CHARS + 1 if size == "one-over" else 4 * 1024 * 1024
    with pytest.raises(InvalidInputError, match="over the limit") as info:
        build(KeySpace.encode_component("é") * n)  # type: ignore[operator]
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) < 200  # the message names the length, not the value
