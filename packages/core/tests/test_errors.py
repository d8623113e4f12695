import pickle

import pytest
import redis
import redis.exceptions as rexc
from deepagents_redis.core import (
    BreakerOpenError,
    CapabilityError,
    ConfigurationError,
    ConflictError,
    DeepAgentsRedisError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    RedisUnavailableError,
    SerializationError,
    _errors,
    redact_text,
    redis_errors,
    translate_redis_error,
)

SECRET = "hunter2-Sup3r"


def test_tree_matches_the_docstring():
    assert issubclass(BreakerOpenError, RedisUnavailableError)
    for leaf in (
        RedisUnavailableError,
        OutcomeUnknownError,
        ConflictError,
        NotFoundError,
        PayloadTooLargeError,
        InvalidInputError,
        SerializationError,
        ConfigurationError,
        CapabilityError,
    ):
        assert issubclass(leaf, DeepAgentsRedisError)
        assert leaf.__name__ in _errors.__doc__
    assert issubclass(InvalidInputError, ValueError)
    assert not issubclass(ConfigurationError, ValueError)


def test_conflict_and_too_large_carry_their_numbers_and_pickle():
    exc = ConflictError(3, 5)
    assert (exc.expected, exc.actual) == (3, 5)
    assert "3" in str(exc)
    assert "5" in str(exc)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.expected, copy.actual, str(copy)) == (3, 5, str(exc))
    big = PayloadTooLargeError(10, 4, message="too big")
    assert (big.size, big.limit, str(big)) == (10, 4, "too big")
    big_copy = pickle.loads(pickle.dumps(big))
    assert (big_copy.size, big_copy.limit) == (10, 4)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (rexc.ConnectionError("Connection refused"), RedisUnavailableError),
        (rexc.TimeoutError("Timeout reading from socket"), RedisUnavailableError),
        (rexc.BusyLoadingError("Redis is loading the dataset in memory"), RedisUnavailableError),
        (rexc.ClusterDownError("CLUSTERDOWN The cluster is down"), RedisUnavailableError),
        (rexc.TryAgainError("TRYAGAIN"), RedisUnavailableError),
        # A Cluster client redirected (MOVED, ASK, TRYAGAIN) more times than its TTL while a
        # slot migrated: seen as a plain DeepAgentsRedisError from coord-like chains on the
        # asyncio Cluster client during a reshard; nothing ran, so retrying is safe.
        (rexc.ClusterError("TTL exhausted."), RedisUnavailableError),
        (rexc.SlotNotCoveredError("slot 12 not covered"), RedisUnavailableError),
        (rexc.MaxConnectionsError("Too many connections"), RedisUnavailableError),
        (
            rexc.ReadOnlyError("READONLY You can't write against a read only replica."),
            RedisUnavailableError,
        ),
        (
            rexc.ResponseError("NOREPLICAS Not enough good replicas to write."),
            RedisUnavailableError,
        ),
        (
            rexc.ResponseError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data"),
            RedisUnavailableError,
        ),
        (rexc.AuthenticationError("invalid username-password pair"), ConfigurationError),
        (
            rexc.ResponseError("ERR unknown command 'JSON.SET', with args beginning with:"),
            CapabilityError,
        ),
        (rexc.ResponseError("ERR unknown subcommand 'FOO'. Try CONFIG HELP."), CapabilityError),
        (rexc.NoPermissionError("NOPERM this user has no permissions"), CapabilityError),
        (rexc.ModuleError("Error loading the extension"), CapabilityError),
        (rexc.ResponseError("WRONGTYPE Operation against a key"), SerializationError),
        (rexc.DataError("Invalid input of type"), DeepAgentsRedisError),
    ],
)
def test_translation_table(raised, expected):
    translated = translate_redis_error(raised)
    assert type(translated) is expected
    assert type(raised).__name__ in str(translated)


def test_translate_returns_our_errors_unchanged():
    ours = NotFoundError("gone")
    assert translate_redis_error(ours) is ours


def test_messages_never_carry_passwords():
    raw = rexc.ConnectionError(
        f"Error connecting to redis://user:{SECRET}@db:6379/0 and rediss://:{SECRET}@x "
        f"and redis://{SECRET}@y and unix:///s.sock?db=0&password={SECRET}"
    )
    message = str(translate_redis_error(raw))
    assert SECRET not in message
    assert "redis://user:***@db:6379/0" in message
    assert "rediss://:***@x" in message
    assert "redis://***@y" in message


def test_redact_text_handles_at_signs_in_the_password():
    assert redact_text("redis://u:p@ss@host:1") == "redis://u:***@host:1"
    assert redact_text("no url here") == "no url here"


def test_redis_errors_sync_wraps_with_cause():
    original = rexc.TimeoutError("Timeout")
    with pytest.raises(RedisUnavailableError) as info, redis_errors():
        raise original
    assert info.value.__cause__ is original


def test_redis_errors_passes_other_exceptions_through():
    with pytest.raises(KeyError), redis_errors():
        raise KeyError("x")
    with pytest.raises(NotFoundError), redis_errors():
        raise NotFoundError("x")


async def test_redis_errors_async_form():
    with pytest.raises(CapabilityError):
        async with redis_errors():
            raise rexc.ResponseError("ERR unknown command 'FT.INFO'")


def test_cluster_exception_is_translated():
    with pytest.raises(DeepAgentsRedisError), redis_errors():
        raise rexc.RedisClusterException("boom")


@pytest.mark.integration
def test_real_server_unknown_command_is_capability_error(redis_client):
    with pytest.raises(CapabilityError) as info, redis_errors():
        redis_client.execute_command("JSON.SET", "k", "$", "{}")
    assert isinstance(info.value.__cause__, rexc.ResponseError)


@pytest.mark.integration
def test_real_refused_connection_is_unavailable(redis_server_factory):
    server = redis_server_factory()
    port = server.port
    server.stop()
    client = redis.Redis(
        host="127.0.0.1", port=port, password=SECRET, socket_connect_timeout=1, retry=None
    )
    try:
        with pytest.raises(RedisUnavailableError) as info, redis_errors():
            client.ping()
    finally:
        client.close()
    assert SECRET not in str(info.value)


@pytest.mark.integration
def test_real_min_replicas_refusal_is_unavailable(redis_server_factory):
    # A master told to accept writes only with a replica attached refuses them (NOREPLICAS):
    # nothing was applied, so it is "unavailable", not a generic error.
    server = redis_server_factory(config={"min-replicas-to-write": "1"})
    client = redis.Redis.from_url(server.url, retry=None)
    try:
        with pytest.raises(RedisUnavailableError, match="NOREPLICAS") as info, redis_errors():
            client.set("core:noreplicas", b"1")
        assert isinstance(info.value.__cause__, rexc.ResponseError)
        assert client.exists("core:noreplicas") == 0
    finally:
        client.close()


@pytest.mark.integration
async def test_a_database_the_server_does_not_have_is_a_configuration_error(
    redis_server_factory,
):
    # redis://host/99 past the server's `databases` (16 here): SELECT fails at connect time.
    # It was the base DeepAgentsRedisError ("DB index is out of range"), which no caller
    # handles as a setting to fix; `deepagents-redis health` exited 1 instead of 64.
    from deepagents_redis.core import RedisConnector, RedisSettings, acheck_health, check_health

    server = redis_server_factory(config={"databases": "16"})
    url = server.url.rsplit("/", 1)[0] + "/16"
    async with RedisConnector(settings=RedisSettings(url=url, cluster="auto")) as connector:
        with pytest.raises(ConfigurationError, match="database number") as info:
            check_health(connector.client())
        assert isinstance(info.value.__cause__, rexc.ResponseError)
        with pytest.raises(ConfigurationError, match="database number"):
            await acheck_health(await connector.aclient())
    # The last database there is works.
    last = server.url.rsplit("/", 1)[0] + "/15"
    with RedisConnector(settings=RedisSettings(url=last, cluster="off")) as connector:
        assert check_health(connector.client()).ok
