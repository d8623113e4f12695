"""Redis URLs: parsing them, where their credentials are, and the one function that hides them.

Both the parser (`parse_redis_url`) and every printout (`redact_url`: `repr`, `str`,
`model_dump`, error messages, log records, the CLI) find the user info the same way, from
the structure of the URL, never with a pattern over text that may not parse:

* the user info is everything between `scheme://` and the LAST `@` of the URL, so a
  password may itself contain `@`, `:`, `/`, `?`, `#` or whitespace (base64 secrets have
  `/`) and is still found whole;
* except when the URL has no authority (`unix:///path?password=p@ss`), and, for the parser
  only, when the `@` follows `?<query option>=` (`redis://h/0?password=p@ss`).

A password given in the query (`?password=...`) is hidden up to the end of the URL.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote

from deepagents_redis.core._errors import ConfigurationError

__all__ = ["REDACTED", "ParsedURL", "parse_redis_url", "redact_url", "split_userinfo"]

REDACTED = "***"
"""What a password is replaced with."""

_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=).*\Z", re.DOTALL)


def split_userinfo(
    rest: str, *, query_keys: Collection[str] | None = None
) -> tuple[str | None, str]:
    """Split the text after `scheme://` into its user info and the rest of the URL.

    The user info runs to the LAST `@`. With `query_keys` (the parser), an `@` that follows
    `?<known key>=` is taken as part of the query instead (`redis://h/0?password=p@ss`);
    without (redaction), the longer reading wins, so an ambiguous URL hides more, never
    less.

    Args:
        rest: The URL without `scheme://`.
        query_keys: Query option names the parser accepts, lower case.

    Returns:
        `(userinfo, remainder)`; `userinfo` is None when the URL carries none.
    """
    if rest.startswith("/"):  # unix:///path: no authority, so no user info
        return None, rest
    at = rest.rfind("@")
    if at < 0:
        return None, rest
    if query_keys is not None:
        question = rest.find("?")
        if 0 <= question < at:
            key, eq, _ = rest[question + 1 : at].partition("=")
            if eq and key.lower() in query_keys:
                at = rest.rfind("@", 0, question)
                if at < 0:
                    return None, rest
    return rest[:at], rest[at + 1 :]


def _redact_userinfo(userinfo: str) -> str:
    user, sep, _password = userinfo.partition(":")
    if not sep:
        # redis://secret@host is a password-only URL to redis-py.
        return REDACTED
    return f"{user}:{REDACTED}"


def redact_url(url: str | None) -> str:
    """Return `url` with every password replaced by `***`.

    Works on any text: what does not parse as `scheme://...` loses everything before its
    last `@`, and a query `password=` loses everything after it.

    Args:
        url: A Redis URL, possibly with credentials (or None).

    Returns:
        The URL without secrets, or `"<unset>"` for None.

    Example:
        >>> redact_url("redis://app:Zx9/SECRET@cache:6379/0")
        'redis://app:***@cache:6379/0'
    """
    if url is None:
        return "<unset>"
    scheme, sep, rest = url.partition("://")
    if not sep:
        # No scheme (a typo): whatever precedes the last '@' may be a password.
        text = f"{REDACTED}@{url.rpartition('@')[2]}" if "@" in url else url
        return _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", text)
    userinfo, remainder = split_userinfo(rest)
    if userinfo is not None:
        remainder = f"{_redact_userinfo(userinfo)}@{remainder}"
    return f"{scheme}://" + _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", remainder)


# -- parsing --------------------------------------------------------------------------------

_DEFAULT_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379
_QUERY_KEYS = frozenset({"db", "username", "password"})


@dataclass(frozen=True)
class ParsedURL:
    """A Redis URL taken apart (see `parse_redis_url`).

    Attributes:
        kind: ``"tcp"``, ``"unix"`` or ``"sentinel"``.
        tls: Whether the scheme asks for TLS (``rediss://``, ``rediss+sentinel://``).
        hosts: ``(host, port)`` pairs: one for TCP, one or more Sentinels.
        path: Socket path for ``unix://``.
        db: Database number (always 0 on Cluster).
        username: ACL user from the URL.
        password: Password from the URL (never printed: ``repr`` hides it).
        service: Sentinel master name from the URL path.
    """

    kind: Literal["tcp", "unix", "sentinel"]
    tls: bool = False
    hosts: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service: str | None = None


def _bad(url: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"invalid Redis URL {redact_url(url)!r}: {problem}")


def _parse_host(url: str, item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if not item:
        raise _bad(url, "empty host")
    if item.startswith("["):  # [IPv6]:port
        host, sep, rest = item[1:].partition("]")
        if not sep:
            raise _bad(url, "unclosed '[' in an IPv6 host")
        port_text = rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise _bad(url, f"unexpected text after IPv6 host: {rest!r}")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise _bad(url, "missing host name")
    if not port_text:
        return unquote(host), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(url, f"invalid port {port_text!r}")
    return unquote(host), int(port_text)


def _parse_db(url: str, text: str) -> int:
    if not text.isdigit():
        raise _bad(url, f"database must be a non-negative integer, got {text!r}")
    return int(text)


def parse_redis_url(url: str) -> ParsedURL:
    """Parse and validate a Redis URL without connecting.

    Args:
        url: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://`` or
            ``rediss+sentinel://`` URL.

    Returns:
        The URL's parts.

    Raises:
        ConfigurationError: The URL is malformed, has an unknown scheme, lacks a host, has a
            bad port or database, or unknown query options (the message redacts passwords).
    """
    if "://" not in url:
        raise _bad(url, "expected scheme://..., e.g. redis://host:6379/0")
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in {"redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"}:
        raise _bad(
            url,
            f"unknown scheme {scheme!r}; use redis://, rediss://, unix://, "
            "redis+sentinel:// or rediss+sentinel://",
        )
    # The user info first, up to the LAST '@' (split_userinfo, shared with redact_url): a
    # password may contain '/', '?', '#' or ':' unencoded and must not leak into the host.
    # Then the query and fragment, by hand: urlsplit rejects several hosts in netloc.
    userinfo, rest = split_userinfo(rest, query_keys=_QUERY_KEYS)
    rest, _, _fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    username: str | None = None
    password: str | None = None
    if userinfo is not None:
        user, sep, pw = userinfo.partition(":")
        if sep:
            username, password = (unquote(user) or None), (unquote(pw) or None)
        else:
            # redis-py reads redis://secret@host as a password-only URL.
            password = unquote(user) or None
    try:
        params = parse_qs(query, keep_blank_values=False, strict_parsing=False)
    except ValueError as exc:  # pragma: no cover - parse_qs is lenient by default
        raise _bad(url, f"bad query string ({exc})") from None
    unknown = sorted(set(params) - _QUERY_KEYS)
    if unknown:
        raise _bad(
            url,
            f"unsupported query option(s) {', '.join(unknown)}; set RedisSettings fields instead",
        )
    if "username" in params:
        username = params["username"][0]
    if "password" in params:
        password = params["password"][0]
    db = _parse_db(url, params["db"][0]) if "db" in params else None

    if scheme == "unix":
        if netloc and netloc != "localhost":
            raise _bad(url, "unix:// takes a path (unix:///path/to/redis.sock)")
        if not path or path == "/":
            raise _bad(url, "unix:// URL without a socket path")
        return ParsedURL(
            kind="unix",
            path=unquote(path),
            db=db or 0,
            username=username,
            password=password,
        )

    tls = scheme.startswith("rediss")
    if scheme.endswith("+sentinel"):
        hosts = tuple(_parse_host(url, item, _DEFAULT_SENTINEL_PORT) for item in netloc.split(","))
        segments = [s for s in path.split("/") if s]
        if len(segments) > 2:
            raise _bad(url, "sentinel path must be /<service>[/<db>]")
        service = unquote(segments[0]) if segments else None
        if len(segments) == 2:
            db = db if db is not None else _parse_db(url, segments[1])
        return ParsedURL(
            kind="sentinel",
            tls=tls,
            hosts=hosts,
            db=db or 0,
            username=username,
            password=password,
            service=service,
        )

    if "," in netloc:
        raise _bad(
            url, "several hosts are only allowed for Sentinel (a Cluster needs one seed node)"
        )
    host = _parse_host(url, netloc, _DEFAULT_PORT)
    segment = path.strip("/")
    if segment:
        if "/" in segment:
            raise _bad(url, "path must be /<db>")
        db = db if db is not None else _parse_db(url, segment)
    return ParsedURL(
        kind="tcp", tls=tls, hosts=(host,), db=db or 0, username=username, password=password
    )
