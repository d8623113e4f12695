import logging

import pytest
from deepagents_redis.core import ConfigurationError, RedisSettings, create_client, redact_url
from pydantic import SecretStr

SECRET = "pa55-W0rd-xyz"
URL = f"redis://alice:{SECRET}@cache.internal:6380/2"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("DEEPAGENTS_REDIS_"):
            monkeypatch.delenv(name)


def test_defaults_are_bounded_and_documented():
    s = RedisSettings()
    assert s.url is None
    assert s.key_prefix == "dar"
    assert s.socket_timeout == 2.0
    assert s.socket_connect_timeout == 2.0
    assert s.retries == 2
    assert 0 < s.retry_backoff_base <= s.retry_backoff_cap <= 1
    assert s.max_connections == 50
    assert s.health_check_interval == 30
    assert s.protocol == 2
    assert s.cluster == "auto"
    assert s.tls_insecure_skip_verify is False
    # every field carries its own docstring (BRIEF §8)
    for name, info in RedisSettings.model_fields.items():
        assert info.description, f"{name} has no docstring"
    assert "redis-py" in RedisSettings.model_fields["retries"].description
    assert "RESP2" in RedisSettings.model_fields["protocol"].description


def test_env_is_read_and_kwargs_win(monkeypatch):
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", "redis://env-host:6379/0")
    monkeypatch.setenv("DEEPAGENTS_REDIS_SOCKET_TIMEOUT", "0.5")
    monkeypatch.setenv("DEEPAGENTS_REDIS_CLUSTER", "off")
    monkeypatch.setenv("DEEPAGENTS_REDIS_PROTOCOL", "3")
    s = RedisSettings()
    assert s.url == "redis://env-host:6379/0"
    assert s.socket_timeout == 0.5
    assert s.cluster == "off"
    assert s.protocol == 3
    s2 = RedisSettings(url="redis://kw-host:1/0", socket_timeout=1.5)
    assert s2.url == "redis://kw-host:1/0"
    assert s2.socket_timeout == 1.5
    assert s2.cluster == "off"  # untouched fields still come from the environment


def test_phase_variables_sharing_the_prefix_are_ignored(monkeypatch):
    # Phase settings use DEEPAGENTS_REDIS_CACHE_* etc.; core must not reject them.
    monkeypatch.setenv("DEEPAGENTS_REDIS_CACHE_ENABLED", "true")
    monkeypatch.setenv("DEEPAGENTS_REDIS_FS_TTL_SECONDS", "5")
    assert RedisSettings(url=URL).key_prefix == "dar"


def test_password_never_printed():
    s = RedisSettings(url=URL, password=SECRET, sentinel_password=SECRET)
    assert s.url == URL  # still usable
    for text in (
        repr(s),
        str(s),
        str(s.model_dump()),
        s.model_dump_json(),
        s.redacted_url(),
        repr(s.with_overrides(retries=1)),
    ):
        assert SECRET not in text
    assert s.redacted_url() == "redis://alice:***@cache.internal:6380/2"
    assert "redis://alice:***@cache.internal:6380/2" in repr(s)
    assert isinstance(s.password, SecretStr)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "<unset>"),
        ("redis://h:1/0", "redis://h:1/0"),
        (f"redis://:{SECRET}@h:1", "redis://:***@h:1"),
        (f"redis://{SECRET}@h", "redis://***@h"),
        (f"rediss://u:{SECRET}@h", "rediss://u:***@h"),
        (
            f"redis+sentinel://u:{SECRET}@s1:26379,s2:26379/mymaster",
            "redis+sentinel://u:***@s1:26379,s2:26379/mymaster",
        ),
        (f"unix:///tmp/r.sock?db=1&password={SECRET}", "unix:///tmp/r.sock?db=1&password=***"),
        (f"redis://u:{SECRET}@h:99999999", "redis://u:***@h:99999999"),
        (f"u:{SECRET}@h:1", "***@h:1"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("socket_timeout", 0),
        ("socket_timeout", -1),
        ("socket_connect_timeout", 0),
        ("socket_timeout", float("inf")),
        ("socket_timeout", 1e12),
        ("socket_connect_timeout", float("inf")),
        ("socket_connect_timeout", 1e12),
        ("retries", -1),
        ("retry_backoff_base", 0),
        # Accepted before: a retry without a deadline slept `inf` (OverflowError from GET).
        ("retry_backoff_base", float("inf")),
        ("retry_backoff_cap", float("inf")),
        ("retry_backoff_cap", 1e308),
        ("max_connections", 0),
        ("health_check_interval", -1),
        ("protocol", 4),
        ("cluster", "maybe"),
        ("key_prefix", ""),
        ("key_prefix", "a{b}"),
        ("key_prefix", "a b"),
        ("key_prefix", "a*"),
    ],
)
def test_ranges_are_validated_with_clear_errors(field, value):
    with pytest.raises(ConfigurationError) as info:
        RedisSettings(url=URL, **{field: value})
    message = str(info.value)
    assert field in message
    assert SECRET not in message
    # the chained pydantic error must not echo the URL either
    assert SECRET not in str(info.value.__cause__)


def test_cross_field_rule():
    with pytest.raises(ConfigurationError, match="retry_backoff_cap"):
        RedisSettings(retry_backoff_base=1.0, retry_backoff_cap=0.5)


def test_unknown_field_is_rejected():
    with pytest.raises(ConfigurationError, match="sockettimeout"):
        RedisSettings(sockettimeout=1)


def test_empty_url_is_rejected_without_echo():
    with pytest.raises(ConfigurationError, match="url"):
        RedisSettings(url="   ")


def test_bad_env_value_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", URL)
    monkeypatch.setenv("DEEPAGENTS_REDIS_RETRIES", "lots")
    with pytest.raises(ConfigurationError) as info:
        RedisSettings()
    assert "retries" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e12"])
def test_an_endless_socket_timeout_from_the_env_is_a_configuration_error(monkeypatch, value):
    # Accepted before, then every command raised OverflowError from socket.settimeout.
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", URL)
    monkeypatch.setenv("DEEPAGENTS_REDIS_SOCKET_TIMEOUT", value)
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisSettings()


@pytest.mark.integration
async def test_the_longest_socket_timeouts_serve(redis_url):
    from deepagents_redis.core import RedisConnector

    settings = RedisSettings(
        url=redis_url, cluster="off", socket_timeout=86_400, socket_connect_timeout=86_400
    )
    with RedisConnector(settings=settings) as connector:
        assert connector.client().ping()
        assert await (await connector.aclient()).ping()
        await connector.aclose()


def test_with_overrides_validates_and_keeps_secrets():
    s = RedisSettings(url=URL, password=SECRET)
    t = s.with_overrides(socket_timeout=0.25)
    assert t.socket_timeout == 0.25
    assert t.url == URL
    assert t.password is not None
    assert t.password.get_secret_value() == SECRET
    with pytest.raises(ConfigurationError):
        s.with_overrides(retries=-5)
    with pytest.raises(ConfigurationError):
        s.with_overrides(nope=1)


def test_insecure_tls_warning_is_loud_and_secret_free(caplog):
    s = RedisSettings(
        url=f"rediss://u:{SECRET}@tls-host:6390/0", cluster="off", tls_insecure_skip_verify=True
    )
    with caplog.at_level(logging.WARNING, logger="deepagents_redis.core"):
        client = create_client(s)
        client.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "tls_insecure_skip_verify must log a warning"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "INSECURE" in text
    assert SECRET not in text
