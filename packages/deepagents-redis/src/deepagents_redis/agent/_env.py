"""Settings read from the environment, refused under the variable's own name."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from deepagents_redis.core import ConfigurationError, redact_text

__all__ = [
    "env_named",
    "settings_from_env",
]


def settings_from_env(cls: type[Any]) -> Any:
    """Build the settings class `cls` from the environment alone.

    Raises:
        ConfigurationError: A variable holds an invalid value, or one a mapping or list
            field cannot parse as JSON; the message names it (see `env_named`).
    """
    from pydantic_settings import SettingsError

    try:
        return cls()
    except ConfigurationError as exc:
        raise env_named(exc, cls) from exc
    except SettingsError as exc:
        # pydantic-settings parses a dict or list field's variable as JSON before the
        # settings' own validation, and its SettingsError (a bare ValueError, not a
        # ConfigurationError) went past the settings' error mapping: a typo in
        # DEEPAGENTS_REDIS_FS_TTL_RULES was an untyped error out of create_deep_agent.
        raise ConfigurationError(_unparsable(cls, str(exc))) from exc


def _unparsable(cls: type[Any], message: str) -> str:
    match = re.search(r'field "([^"]+)"', message)
    field = match.group(1) if match else ""
    if field not in cls.model_fields:
        return f"invalid {cls.__name__}: an environment variable could not be parsed"
    variable = f"{cls.model_config.get('env_prefix', '')}{field}".upper()
    return (
        f"invalid {cls.__name__}: {variable} (environment variable): not valid JSON "
        '(a mapping or list is written as JSON, e.g. {"key": 1})'
    )


def env_named(
    exc: ConfigurationError, cls: type[Any], given: Collection[str] = ()
) -> ConfigurationError:
    """`exc` said by the environment variables that hold the refused values.

    The settings name the field (``invalid CacheSettings: ttl_seconds: ...``), a name that
    appears nowhere in a deployment's environment, where the value came from
    ``DEEPAGENTS_REDIS_CACHE_TTL_SECONDS``. A field given as a keyword argument (`given`),
    or whose variable is not set, keeps its field name; the rejected value is never
    repeated (the settings never echo input).

    Args:
        exc: What the settings class raised.
        cls: The settings class (its ``env_prefix`` names the variables).
        given: Fields passed as keyword arguments, not read from the environment.

    Returns:
        A new error naming the variables, or `exc` itself when it is not a validation
        error of `cls` or names no variable that is set.
    """
    from pydantic import ValidationError

    cause = exc.__cause__
    if not isinstance(cause, ValidationError) or cause.title != cls.__name__:
        return exc
    prefix = str(cls.model_config.get("env_prefix", ""))
    present = {name.upper() for name in os.environ}
    problems, named = [], False
    for error in cause.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        field = loc[0] if loc else ""
        variable = f"{prefix}{field}".upper()
        if field in cls.model_fields and field not in given and variable in present:
            where, named = f"{variable} (environment variable)", True
        else:
            where = ".".join(loc) or "settings"
        problems.append(f"{where}: {error['msg']}")
    if not named:
        return exc
    return ConfigurationError(redact_text(f"invalid {cls.__name__}: " + "; ".join(problems)))
