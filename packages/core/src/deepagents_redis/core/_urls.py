"""Where the credentials of a Redis URL are, and the one function that hides them.

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

__all__ = ["REDACTED", "redact_url", "split_userinfo"]

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
