from __future__ import annotations

import contextlib
import json
import pickle
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import pytest
from deepagents_redis.core import Codec, InvalidInputError, PayloadTooLargeError, SerializationError
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.prompts import PromptTemplate

FORMATS = ["msgpack", "json"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
plain = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(["a", "lc", "$b", "$d", "__lc_escaped__", "type", "id"])
            | st.text(max_size=5),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


def header(codec_id: int = 1, flags: int = 0) -> bytes:
    return bytes((0xDA, 1, codec_id, flags))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)  # no wall-clock limit in tests
@given(value=plain)
def test_plain_round_trip(fmt: str, value: Any) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    assert codec.decode(codec.encode(value)) == value
    assert codec.decode(codec.encode(value, key="k:1"), key="k:1") == value


@pytest.mark.parametrize("fmt", FORMATS)
def test_lc_looking_plain_dicts_stay_dicts(fmt: str) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    fake = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "schema", "messages", "AIMessage"],
        "kwargs": {"content": "hi"},
    }
    secret = {"lc": 1, "type": "secret", "id": ["HOME"]}
    for value in (fake, [fake], {"x": fake}, secret, {"__lc_escaped__": fake}):
        assert codec.decode(codec.encode(value)) == value
    # Mixed with a real LC object, the look-alike is still returned as a plain dict.
    mixed = codec.decode(codec.encode({"gen": Generation(text="t"), "fake": fake}))
    assert mixed == {"gen": Generation(text="t"), "fake": fake}


@pytest.mark.parametrize("fmt", FORMATS)
def test_hand_written_lc_payload_without_flag_is_not_revived(fmt: str) -> None:
    fake = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "schema", "messages", "AIMessage"],
        "kwargs": {"content": "x"},
    }
    payload = msgpack.packb(fake) if fmt == "msgpack" else json.dumps(fake).encode()
    data = header(1 if fmt == "msgpack" else 2) + payload
    assert Codec(format=fmt).decode(data) == fake  # type: ignore[arg-type]


def rich_generation() -> ChatGeneration:
    msg = AIMessage(
        content="Let me check the weather.",
        tool_calls=[
            {
                "name": "get_weather",
                "args": {"city": "Paris", "days": [1, 2]},
                "id": "call_1",
                "type": "tool_call",
            }
        ],
        usage_metadata={
            "input_tokens": 12,
            "output_tokens": 34,
            "total_tokens": 46,
            "input_token_details": {"cache_read": 3},
        },
        response_metadata={
            "model_name": "fake-1",
            "finish_reason": "tool_calls",
            "nested": {"a": [1.5, None]},
        },
        additional_kwargs={"refusal": None, "extra": {"k": "v"}},
        id="run-123",
    )
    return ChatGeneration(message=msg, generation_info={"finish_reason": "stop", "logprobs": None})


@pytest.mark.parametrize("fmt", FORMATS)
def test_chat_generation_round_trip_exact(fmt: str) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    gen = rich_generation()
    out = codec.decode(codec.encode([gen, Generation(text="plain")], key="cache:x"), key="cache:x")
    assert out == [gen, Generation(text="plain")]
    assert type(out[0]) is ChatGeneration
    assert type(out[0].message) is AIMessage
    assert out[0].message.tool_calls == gen.message.tool_calls
    assert out[0].message.usage_metadata == gen.message.usage_metadata
    assert out[0].message.response_metadata == gen.message.response_metadata
    assert out[0].message.additional_kwargs == gen.message.additional_kwargs


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_allowed_lc_objects(fmt: str) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    values = [
        HumanMessage("hi"),
        ToolMessage("r", tool_call_id="c1"),
        Document(page_content="p", metadata={"lc": 2}),
    ]
    assert codec.decode(codec.encode(values)) == values
    assert codec.decode(codec.encode({"m": values[0], "b": b"raw"})) == {
        "m": values[0],
        "b": b"raw",
    }


def test_disallowed_lc_class_is_refused_on_decode() -> None:
    codec = Codec()
    data = codec.encode(PromptTemplate.from_template("{x}"))
    with pytest.raises(SerializationError, match="not allowed"):
        codec.decode(data)
    # A narrower allowlist refuses what the default allows.
    with pytest.raises(SerializationError):
        Codec(lc_allowed=[Generation]).decode(codec.encode(HumanMessage("x")))


def test_lc_secret_markers_never_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAR_TEST_SECRET", "s3cret")
    marker = {"lc": 1, "type": "secret", "id": ["DAR_TEST_SECRET"]}
    payload = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "schema", "output", "Generation"],
        "kwargs": {"text": "t", "generation_info": {"s": marker}},
    }
    out = Codec().decode(header(1, 0x02) + msgpack.packb(payload))
    # With secrets_from_env=True langchain would have put "s3cret" here.
    assert out == Generation(text="t", generation_info={"s": None})


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", ["\ud800", {"k\udfff": 1}, ["ok", "x\udc80y"]])
def test_lone_surrogates_are_refused_on_encode_not_lost_on_decode(fmt: str, value: Any) -> None:
    """The JSON codec wrote lone surrogates with "surrogatepass": bytes that are not UTF-8,
    which its own decode (and any other reader) refused, so the write succeeded and the
    value could never be read again. Both formats refuse it when writing."""
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        codec.encode(value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsupported_values_refused_on_encode(fmt: str) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    for bad in (
        object(),
        {1: "x"},
        2**64,
        -(2**63) - 1,
        {1.5},
        AIMessage("x", additional_kwargs={"o": object()}),
    ):
        with pytest.raises(SerializationError):
            codec.encode(bad)
    if fmt == "json":
        with pytest.raises(SerializationError):
            codec.encode(float("nan"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_dict_keys_refused_on_encode(fmt: str) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    for bad in ({b"a": 1}, {"x": [{b"a": 1}]}, {"lc": {b"a": 1}}):
        with pytest.raises(SerializationError, match="dict keys must be str"):
            codec.encode(bad)


def _bytes_keyed(value: Any, key: bytes, where: int) -> Any:
    # Puts a map with a bytes key next to, inside or around a plain value.
    return [{key: value}, [value, {key: 1}], {"v": value, "m": {key: None}}][where]


@settings(max_examples=200, deadline=None)  # no wall-clock limit in tests
@given(
    value=plain,
    key=st.binary(max_size=6),
    where=st.integers(min_value=0, max_value=2),
    flags=st.sampled_from([0x00, 0x01, 0x02]),
)
def test_bytes_map_keys_refused_on_decode(value: Any, key: bytes, where: int, flags: int) -> None:
    # msgpack's strict_map_key lets bin keys through: stored bytes (not ours: encode refuses
    # such keys) decoded to {b"a": ...}, which is not the {"a": ...} it looks like.
    payload = msgpack.packb(_bytes_keyed(value, key, where), use_bin_type=True)
    hashed = Codec().encode(None, key="k")[4:12] if flags & 0x01 else b""
    with pytest.raises(SerializationError, match="map keys must be str"):
        Codec().decode(header(1, flags) + hashed + payload, key="k" if flags & 0x01 else None)


def test_size_limits() -> None:
    codec = Codec(max_size=100)
    with pytest.raises(PayloadTooLargeError) as info:
        codec.encode("x" * 200)
    assert info.value.limit == 100
    assert info.value.size > 100
    big = Codec().encode("x" * 200)
    with pytest.raises(SerializationError):
        codec.decode(big)


@pytest.mark.parametrize("fmt", FORMATS)
def test_depth_limit_on_encode(fmt: str) -> None:
    codec = Codec(format=fmt, max_depth=8)  # type: ignore[arg-type]
    value: Any = 1
    for _ in range(8):
        value = [value]
    assert codec.decode(codec.encode(value)) == value
    with pytest.raises(SerializationError):
        codec.encode([value])
    with pytest.raises(SerializationError):
        codec.encode({"a": value})


def test_key_hash_checks() -> None:
    codec = Codec()
    data = codec.encode({"v": 1}, key="k1")
    with pytest.raises(SerializationError, match="key hash mismatch"):
        codec.decode(data, key="k2")
    with pytest.raises(SerializationError):
        codec.decode(data)
    with pytest.raises(SerializationError):
        codec.decode(codec.encode(1), key="k1")


# ----------------------------------------------------------------------------- hostile bytes


class _Boom:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        # If anything ever unpickled this, it would create the file.
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("fmt", FORMATS)
def test_pickle_payload_runs_nothing(fmt: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Boom(marker))
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    candidates = [
        evil,
        header(1) + evil,
        header(2) + evil,
        header(1, 0x02) + evil,
        header(2, 0x02) + evil,
    ]
    for data in candidates:
        with pytest.raises(SerializationError):
            codec.decode(data)
    assert not marker.exists()


@pytest.mark.parametrize(
    "ext",
    [
        b"\xd4\x01\x00",
        b"\xd5\x05ab",
        b"\xc7\x03\x07abc",
        b"\xd6\xff\x00\x00\x00\x01",
        b"\x91\xd4\x02\x00",
    ],
)
def test_msgpack_ext_types_refused(ext: bytes) -> None:
    with pytest.raises(SerializationError):
        Codec().decode(header(1) + ext)


@pytest.mark.parametrize(
    "forged",
    [
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff",
        b"\xc6\xff\xff\xff\xff",
        b"\xc9\xff\xff\xff\xff\x01",
    ],
)
def test_forged_2_32_headers_allocate_little(forged: bytes) -> None:
    codec = Codec()
    tracemalloc.start()
    try:
        with pytest.raises(SerializationError):
            codec.decode(header(1) + forged)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # a memory bound: nothing close to 2^32 elements was allocated


@pytest.mark.parametrize("fmt", FORMATS)
def test_thousand_deep_nesting_refused(fmt: str) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    if fmt == "msgpack":
        deep_list = header(1) + b"\x91" * 1000 + b"\xc0"
        deep_map = header(1) + b"\x81\xa1a" * 1000 + b"\xc0"
        for data in (deep_list, deep_map):
            with pytest.raises(SerializationError):
                codec.decode(data)
    else:
        for data in (
            header(2) + b"[" * 1000 + b"]" * 1000,
            header(2) + b'{"a":' * 1000 + b"1" + b"}" * 1000,
        ):
            with pytest.raises(SerializationError):
                codec.decode(data)
    # 100,000 deep: beyond any recursion limit, still a clean SerializationError.
    huge = (
        header(1) + b"\x91" * 100_000 + b"\xc0" if fmt == "msgpack" else header(2) + b"[" * 100_000
    )
    with pytest.raises(SerializationError):
        codec.decode(huge)


def _depth(value: Any) -> int:
    """Nesting levels of containers (a scalar is 0, ``[]`` is 1)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("max_depth", [1, 3, 8])
def test_decode_refuses_one_level_past_max_depth(max_depth: int) -> None:
    # Hand-made payloads (encode would refuse them): the decode-side limit on its own.
    codec = Codec(max_depth=max_depth)
    for opener, leaf in ((b"\x91", b"\xc0"), (b"\x81\xa1a", b"\x01"), (b"\xdc\x00\x01", b"\x02")):
        assert codec.decode(header(1) + opener * max_depth + leaf) is not None
        with pytest.raises(SerializationError, match="max_depth"):
            codec.decode(header(1) + opener * (max_depth + 1) + leaf)


def test_decode_depth_check_with_many_shallow_containers() -> None:
    # More containers than max_depth but shallow: the full walk runs and accepts it; the same
    # count nested one level too deep is refused.
    codec = Codec(max_depth=3)
    wide = [[[i]] for i in range(50)]
    assert _depth(wide) == 3
    assert codec.decode(Codec().encode(wide)) == wide
    with pytest.raises(SerializationError, match="max_depth"):
        codec.decode(Codec().encode([wide]))
    # Non-ASCII text (UTF-8 continuation bytes look like container headers) is fine too.
    text = {"t": "ünïcödé \u00e9\u0080" * 40, "l": [[1]]}
    assert codec.decode(Codec().encode(text)) == text
    with pytest.raises(SerializationError, match="max_depth"):
        codec.decode(Codec().encode({"t": text["t"], "l": [[[1]]]}))


@settings(max_examples=300, deadline=None)
@given(value=plain, max_depth=st.integers(min_value=1, max_value=6))
def test_decode_depth_limit_is_exact(value: Any, max_depth: int) -> None:
    # Whatever shortcut decode takes, it accepts exactly the values nested at most
    # max_depth levels deep.
    data = Codec().encode(value)
    codec = Codec(max_depth=max_depth)
    stored = msgpack.unpackb(data[4:], raw=False)  # as stored: LC look-alikes are escaped
    if _depth(stored) <= max_depth:
        assert codec.decode(data) == value
    else:
        with pytest.raises(SerializationError, match="max_depth"):
            codec.decode(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_envelopes(fmt: str) -> None:
    codec = Codec(format=fmt)  # type: ignore[arg-type]
    data = codec.encode({"a": [1, 2, "three"], "b": b"four" * 10}, key="k")
    for cut in range(len(data)):
        with pytest.raises(SerializationError):
            codec.decode(data[:cut], key="k")


def test_wrong_codec_id_flags_version_magic() -> None:
    codec = Codec()
    data = bytearray(codec.encode({"a": 1}))
    for index, value in ((0, 0x00), (1, 2), (2, 0), (2, 3), (2, 0x7F), (3, 0x80), (3, 0x04)):
        bad = bytearray(data)
        bad[index] = value
        with pytest.raises(SerializationError):
            codec.decode(bytes(bad))
    # A MessagePack payload labelled JSON (a known but wrong codec id) is refused too.
    relabelled = bytearray(data)
    relabelled[2] = 2
    with pytest.raises(SerializationError):
        codec.decode(bytes(relabelled))


def test_json_codec_reads_msgpack_envelopes_and_back() -> None:
    # The codec id travels in the envelope, so switching format does not strand old values.
    value = {"a": [1, b"x"], "g": Generation(text="t")}
    assert Codec(format="json").decode(Codec().encode(value)) == value
    assert Codec().decode(Codec(format="json").encode(value)) == value


def test_json_is_human_readable() -> None:
    data = Codec(format="json").encode({"name": "é", "raw": b"\x00\x01", "$b": 1})
    assert data[4:].decode() == '{"name":"é","raw":{"$b":"AAE="},"$b":1}'


@pytest.mark.parametrize(
    "bad", [b'{"$b": 5}', b'{"$b": "%%%"}', b'{"$d": 1}', b"NaN", b"[Infinity]", b"\xff"]
)
def test_malformed_json_tags(bad: bytes) -> None:
    with pytest.raises(SerializationError):
        Codec(format="json").decode(header(2) + bad)


@settings(max_examples=300, deadline=None)  # no wall-clock limit in tests
@given(st.binary(max_size=64))
def test_random_bytes_never_crash(data: bytes) -> None:
    for fmt in FORMATS:
        codec = Codec(format=fmt)  # type: ignore[arg-type]
        for candidate in (
            data,
            header(1) + data,
            header(2) + data,
            header(1, 0x02) + data,
            header(2, 0x02) + data,
        ):
            with contextlib.suppress(SerializationError):
                codec.decode(candidate)


def test_not_bytes_refused() -> None:
    with pytest.raises(SerializationError):
        Codec().decode("text")  # type: ignore[arg-type]


def test_bad_options() -> None:
    with pytest.raises(InvalidInputError):
        Codec(lc_allowed=[dict])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        Codec(format="pickle")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Codec(max_depth=0)
