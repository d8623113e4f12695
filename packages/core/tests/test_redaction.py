"""Passwords never leak, whatever they contain (issue 8 defect 2).

Before: `RedisSettings(url="redis://app:Zx9/SECRETPART@cache:6379/0").redacted_url()`
returned the URL unchanged (a regex stopped at the '/'), and so did repr, str, model_dump,
ConfigurationError messages, the Cluster auto-detect error, `repr(RedisConnector)` and the
CLI's `target:` line.
"""

from __future__ import annotations

import logging
import re
import socket
import string
from typing import Any

import pytest
from deepagents_redis.core import (
    ConfigurationError,
    DeepAgentsRedisError,
    RedisConnector,
    RedisSettings,
    create_client,
    parse_redis_url,
    redact_text,
    redact_url,
)
from hypothesis import given, settings
from hypothesis import strategies as st

SECRET = "Zx9/SECRETPART"

# Passwords from every printable character and whitespace; long enough to be recognisable
# and not a substring of the rest of the URL.
# The marker makes a coincidence with fixed text ("RedisConnector") impossible.
PASSWORDS = st.text(alphabet=string.printable, min_size=3, max_size=24).map(lambda p: "pw!" + p)
USERS = st.sampled_from(["", "app", "default"])
FORMS = [
    "redis://{userinfo}@cache.internal:6379/0",
    "rediss://{userinfo}@cache.internal:6380/2",
    "redis://{userinfo}@cache.internal",
    "unix://{userinfo}@/var/run/redis.sock?db=1",
    "redis+sentinel://{userinfo}@s1:26379,s2:26379/mymaster/0",
    "rediss+sentinel://{userinfo}@s1:26379/mymaster",
]


def _leaks(secret: str, text: str, url: str) -> bool:
    """Whether `secret` shows in `text` (ignoring a coincidence with the visible URL parts)."""
    visible = url.replace(secret, "")
    return secret in text and secret not in visible


def _printouts(url: str) -> list[str]:
    # redact_text is for free text (exception messages): it cannot know where a URL with
    # whitespace in its password ends, so it is checked separately below.
    out = [redact_url(url)]
    try:
        s = RedisSettings(url=url, cluster="off")
    except ConfigurationError as exc:
        return [*out, str(exc)]
    out += [repr(s), str(s), str(s.model_dump()), s.model_dump_json(), s.redacted_url()]
    try:
        out.append(repr(RedisConnector(settings=s)))
    except ConfigurationError as exc:
        out.append(str(exc))
    return out


@settings(max_examples=300, deadline=None)
@given(password=PASSWORDS, user=USERS, form=st.sampled_from(FORMS))
def test_no_printout_shows_the_password(password: str, user: str, form: str) -> None:
    url = form.format(userinfo=f"{user}:{password}" if user else f":{password}")
    for text in _printouts(url):
        assert not _leaks(password, text, url), text


@settings(max_examples=200, deadline=None)
@given(password=PASSWORDS)
def test_password_only_and_query_forms(password: str) -> None:
    only = password.replace(":", "")  # in redis://X@host, a ':' in X starts the password
    for url in (
        f"redis://{only}@cache:6379/0",  # redis-py: password only
        f"unix:///var/run/redis.sock?password={password}",
        f"unix:///var/run/redis.sock?db=0&password={password}",
        f"cache:6379@{password}"[::-1],  # not a URL at all
    ):
        for text in _printouts(url):
            assert not _leaks(password, text, url), (url, text)


@settings(max_examples=200, deadline=None)
@given(password=PASSWORDS, user=USERS)
def test_the_parser_finds_the_same_password(password: str, user: str) -> None:
    # Parsing and redaction share split_userinfo: the password the client would send is
    # exactly the text redaction hides (percent escapes aside).
    if "%" in password or re.search(r"(?i)\?(db|username|password)=", password):
        return  # percent escapes decode; '?db=' reads as a query (both documented)
    parsed = parse_redis_url(f"redis://{user}:{password}@cache.internal:6379/3")
    assert parsed.password == password
    assert parsed.username == (user or None)
    assert parsed.hosts == (("cache.internal", 6379),)
    assert parsed.db == 3


@settings(max_examples=200, deadline=None)
@given(password=PASSWORDS.filter(lambda p: not any(c.isspace() for c in p)), user=USERS)
def test_free_text_redaction_covers_passwords_without_whitespace(password: str, user: str) -> None:
    url = f"redis://{user}:{password}@cache:6379/0"
    text = f"Error connecting to {url} (refused)"
    assert not _leaks(password, redact_text(text), url)


def test_the_reported_url() -> None:
    url = f"redis://app:{SECRET}@cache:6379/0"
    s = RedisSettings(url=url)
    assert s.redacted_url() == "redis://app:***@cache:6379/0"
    assert SECRET not in repr(s) + str(s) + str(s.model_dump())
    assert parse_redis_url(url).password == SECRET


def test_configuration_errors_are_redacted() -> None:
    for url in (
        f"redis://app:{SECRET}@cache:notaport/0",
        f"redis://app:{SECRET}@cache:6379/0?bogus=1",
        f"ftp://app:{SECRET}@cache:6379/0",
    ):
        with pytest.raises(ConfigurationError) as info:
            parse_redis_url(url)
        assert "SECRETPART" not in str(info.value)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cluster_detection_error_and_log_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://app:{SECRET}@127.0.0.1:{_unused_port()}/0"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeepAgentsRedisError) as info:
        create_client(RedisSettings(url=url, retries=0, socket_connect_timeout=0.2))
    assert "SECRETPART" not in str(info.value)
    assert "SECRETPART" not in repr(info.value.__cause__ or "")
    assert all("SECRETPART" not in r.getMessage() for r in caplog.records)


def test_fs_backend_repr_is_redacted() -> None:
    fs = pytest.importorskip("deepagents_redis.fs")
    backend: Any = fs.RedisBackend(url=f"redis://app:{SECRET}@cache:6379/0")
    assert "SECRETPART" not in repr(backend)
