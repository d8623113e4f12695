"""Settings read from the environment, refused under the variable's own name."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from deepagents_redis.core import ConfigurationError, redact_text

__all__ = [
    "env_named",
    "env_named_any",
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
    repeated (the settings never echo input). A variable is named only when the refused
    value is the variable's own text, so a keyword argument refused while the variable is
    set too is not blamed on it.

    Args:
        exc: What the settings class raised.
        cls: The settings class (its ``env_prefix`` names the variables).
        given: Fields passed as keyword arguments, not read from the environment.

    Returns:
        A new error naming the variables, or `exc` itself when it is not a validation
        error of `cls` or names no variable that is set.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    cause = exc.__cause__
    if isinstance(cause, SettingsError) and str(exc).startswith(f"invalid {cls.__name__}:"):
        # Core's settings turn this SettingsError into a ConfigurationError under the field
        # name (f92f9ed), which went past the JSON case below: name the variable here too.
        return ConfigurationError(_unparsable(cls, str(cause)))
    if not isinstance(cause, ValidationError) or cause.title != cls.__name__:
        return exc
    prefix = str(cls.model_config.get("env_prefix", ""))
    # pydantic-settings matches variable names case-insensitively (its default).
    environ = {name.upper(): value for name, value in os.environ.items()}
    problems, named = [], False
    for error in cause.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        field = loc[0] if loc else ""
        variable = f"{prefix}{field}".upper()
        if (
            field in cls.model_fields
            and field not in given
            and variable in environ
            and error.get("input") == environ[variable]
        ):
            where, named = f"{variable} (environment variable)", True
        else:
            where = ".".join(loc) or "settings"
        problems.append(f"{where}: {error['msg']}")
    if not named:
        return exc
    return ConfigurationError(redact_text(f"invalid {cls.__name__}: " + "; ".join(problems)))


def env_named_any(exc: ConfigurationError) -> ConfigurationError:
    """`env_named` for an error of any settings class (found by the class name it reports).

    For the CLI, whose commands build settings in many places: one handler names the
    variables for all of them.
    """
    from deepagents_redis.core import PhaseSettings
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    cause = exc.__cause__
    if isinstance(cause, SettingsError):
        match = re.match(r"invalid (\w+):", str(exc))
        title = match.group(1) if match else None
    elif isinstance(cause, ValidationError):
        title = cause.title
    else:
        return exc
    pending: list[type[Any]] = [PhaseSettings]
    while pending:
        cls = pending.pop()
        if cls.__name__ == title:
            return env_named(exc, cls)
        pending.extend(cls.__subclasses__())
    return exc
