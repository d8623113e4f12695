"""Our RESP command packer: redis-py's bytes, one chunk per command, on every client."""

import enum

import pytest
import redis
from deepagents_redis.core import create_async_client, create_client
from deepagents_redis.core._resp import RespPacker, pack_command, strict_utf8
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer
from redis.utils import HIREDIS_AVAILABLE

# With hiredis installed redis-py packs in C, which our sync connections keep.
SYNC_PACKER = HiredisRespSerializer if HIREDIS_AVAILABLE else RespPacker
ENCODE = Encoder("utf-8", "strict", False).encode
CUTOFF = 6000

args_st = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=CUTOFF - 2, max_size=CUTOFF + 2),
    st.text(max_size=32),
    st.integers(),
    st.floats(allow_nan=False),
    st.binary(max_size=16).map(memoryview),
    st.binary(max_size=16).map(bytearray),
)
name_st = st.sampled_from(["GET", "EVALSHA", "CONFIG GET", b"SET", b"CLIENT SETNAME"])


@settings(max_examples=300, deadline=None)
@given(name=name_st, args=st.lists(args_st, max_size=40), utf8=st.booleans())
def test_same_bytes_as_redis_py(name, args, utf8):
    ours = pack_command(ENCODE, CUTOFF, (name, *args), utf8=utf8)
    theirs = PythonRespSerializer(CUTOFF, ENCODE).pack(name, *args)
    assert b"".join(map(bytes, ours)) == b"".join(map(bytes, theirs))


class _Color(enum.IntEnum):
    RED = 1


class _Mode(enum.StrEnum):
    FAST = "fast"


@pytest.mark.parametrize("value", [_Color.RED, _Mode.FAST, 2**70, -5, "é", 1.25])
def test_the_utf8_shortcut_sends_what_the_encoder_sends(value):
    # Subclasses of str and int are not shortcut: they keep redis-py's encoding.
    ours = pack_command(ENCODE, CUTOFF, ("SET", "k", value), utf8=True)
    theirs = PythonRespSerializer(CUTOFF, ENCODE).pack("SET", "k", value)
    assert b"".join(map(bytes, ours)) == b"".join(map(bytes, theirs))


def test_the_utf8_shortcut_is_only_for_strict_utf8_encoders():
    assert strict_utf8(Encoder("utf-8", "strict", False))
    assert strict_utf8(Encoder("UTF8", "strict", True))
    assert not strict_utf8(Encoder("latin-1", "strict", False))
    assert not strict_utf8(Encoder("utf-8", "replace", False))
    latin = Encoder("latin-1", "strict", False)
    packed = RespPacker(CUTOFF, latin.encode, utf8=strict_utf8(latin)).pack("SET", "k", "é")
    assert b"".join(map(bytes, packed)).endswith(b"$1\r\n\xe9\r\n")


def test_one_chunk_per_command_unless_an_argument_is_large():
    keys = [f"{{ns}}:m:/src/mod_{i:04d}.py".encode() for i in range(1000)]
    assert len(pack_command(ENCODE, CUTOFF, ("EVALSHA", "a" * 40, 1000, *keys))) == 1
    big = b"x" * (CUTOFF + 1)
    chunks = pack_command(ENCODE, CUTOFF, ("SET", "k", big, "PX", 5))
    assert chunks[1] is big  # sent as it is, not copied into the buffer
    assert len(chunks) == 3


@pytest.mark.parametrize("bad", [True, None, object()])
def test_refuses_what_redis_py_refuses(bad):
    with pytest.raises(redis.DataError):
        RespPacker(CUTOFF, ENCODE).pack("SET", "k", bad)


def test_sync_client_packs_with_it_and_round_trips(redis_settings):
    client = create_client(redis_settings)
    try:
        conn = client.connection_pool.get_connection()
        try:
            assert isinstance(conn._command_packer, SYNC_PACKER)
        finally:
            client.connection_pool.release(conn)
        key = redis_settings.key_prefix + ":resp"
        values = [b"\x00\r\n$*", "é\u2603", 7, 1.5, b"y" * (CUTOFF * 3)]
        for value in values:
            client.set(key, value)
            assert client.get(key) == ENCODE(value)
        pipe = client.pipeline()
        for i in range(500):
            pipe.set(f"{key}:{i}", i)
        assert all(pipe.execute())
        assert client.mget([f"{key}:{i}" for i in range(500)]) == [
            str(i).encode() for i in range(500)
        ]
        client.delete(key, *[f"{key}:{i}" for i in range(500)])
    finally:
        client.close()


async def test_async_client_packs_with_it_and_round_trips(redis_settings):
    client = await create_async_client(redis_settings)
    try:
        key = redis_settings.key_prefix + ":aresp"
        conn = await client.connection_pool.get_connection()
        try:
            packed = conn.pack_command("EVALSHA", "a" * 40, 1, key, "x")
            assert len(packed) == 1
        finally:
            await client.connection_pool.release(conn)
        for value in [b"\x00\r\n", "é\u2603", 7, b"z" * (CUTOFF * 3)]:
            await client.set(key, value)
            assert await client.get(key) == ENCODE(value)
        await client.delete(key)
    finally:
        await client.aclose()


def test_cluster_nodes_pack_with_it(cluster_client, cluster_settings):
    node = cluster_client.get_default_node()
    pool = node.redis_connection.connection_pool
    conn = pool.get_connection()
    try:
        assert isinstance(conn._command_packer, SYNC_PACKER)
    finally:
        pool.release(conn)
    key = cluster_settings.key_prefix + ":{resp}"
    cluster_client.mset({f"{key}:{i}": i for i in range(300)})
    assert cluster_client.mget([f"{key}:{i}" for i in range(300)]) == [
        str(i).encode() for i in range(300)
    ]
    cluster_client.delete(*[f"{key}:{i}" for i in range(300)])
