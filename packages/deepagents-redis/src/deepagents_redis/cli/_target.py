"""Where a command connects.

``--url``, then ``DEEPAGENTS_REDIS_URL``, then (demo only) a private embedded server. The
choice is always printed, so nobody mistakes a throwaway embedded server for their
production Redis.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from deepagents_redis.cli._parsers import nonempty
from deepagents_redis.core import ConfigurationError, RedisSettings

__all__ = [
    "URL_ENV",
    "Target",
    "add_target_arguments",
    "connect",
    "resolve_target",
]


URL_ENV = "DEEPAGENTS_REDIS_URL"
"""Environment variable read when ``--url`` is not given."""


@dataclass(frozen=True)
class Target:
    """A resolved connection target.

    Attributes:
        settings: Settings with the chosen URL (other fields from the environment).
        source: Where the URL came from: ``"--url"``, ``"DEEPAGENTS_REDIS_URL"``, or
            ``"embedded redis-server"`` / ``"embedded fakeredis"``.
    """

    settings: RedisSettings
    source: str

    @property
    def url(self) -> str:
        """The URL to connect to (contains secrets; never print it, print ``describe()``)."""
        assert self.settings.url is not None
        return self.settings.url

    def describe(self) -> str:
        """One line saying where we connect, with the password redacted."""
        return f"{self.settings.redacted_url()} (from {self.source})"


def add_target_arguments(parser: argparse.ArgumentParser, *, default_prefix: str = "dar") -> None:
    """Add ``--url`` and ``--prefix`` to a subcommand parser.

    Args:
        parser: The subcommand's parser.
        default_prefix: The prefix used when neither ``--prefix`` nor the environment
            names one, for the help text (``demo`` sets ``demo`` itself).
    """
    parser.add_argument(
        "--url",
        type=nonempty,
        default=None,
        help=f"Redis URL (default: ${URL_ENV}).",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help=f"Key prefix (default: $DEEPAGENTS_REDIS_KEY_PREFIX or '{default_prefix}').",
    )


def _settings(url: str, prefix: str | None, **fixed: str) -> RedisSettings:
    values: dict[str, Any] = dict(fixed)
    if prefix is not None:
        values["key_prefix"] = prefix
    return RedisSettings(url=url, **values)


@contextmanager
def resolve_target(args: argparse.Namespace, *, allow_embedded: bool) -> Iterator[Target]:
    """Resolve where to connect, starting an embedded server if allowed and needed.

    Args:
        args: Parsed arguments with ``url`` and ``prefix`` (see `add_target_arguments`).
        allow_embedded: Start a private embedded server when no URL is configured.

    Yields:
        The target; an embedded server is stopped when the context exits.

    Raises:
        ConfigurationError: No URL is configured and ``allow_embedded`` is False.
    """
    if args.url:
        yield Target(_settings(args.url, args.prefix), "--url")
        return
    env_url = os.environ.get(URL_ENV)
    if env_url:
        yield Target(_settings(env_url, args.prefix), URL_ENV)
        return
    if not allow_embedded:
        raise ConfigurationError(
            f"no Redis URL: pass --url or set {URL_ENV} (this command never assumes localhost)"
        )
    from deepagents_redis.core.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        # We started it, so we know it is standalone: pinning the mode skips the INFO-based
        # cluster detection, which fakeredis (the no-binary fallback) does not answer.
        settings = _settings(server.url, args.prefix, cluster="off")
        yield Target(settings, f"embedded {server.kind}")


@contextmanager
def connect(
    args: argparse.Namespace, *, allow_embedded: bool = False, announce: bool = True
) -> Iterator[tuple[Target, Any]]:
    """Resolve the target and open one `RedisConnector` on it (closed on exit).

    Args:
        args: Parsed arguments with ``url`` and ``prefix``.
        allow_embedded: Start a private embedded server when no URL is configured.
        announce: Print the ``target:`` line first (off for ``--json`` output).

    Yields:
        ``(target, connector)``.
    """
    from deepagents_redis.core import RedisConnector

    with resolve_target(args, allow_embedded=allow_embedded) as target:
        if announce:
            print(f"target: {target.describe()}")
        connector = RedisConnector(settings=target.settings)
        try:
            yield target, connector
        finally:
            connector.close()
