"""Hydra's and OmegaConf's composition errors as one line naming the key and the allowed values.

Hydra reports a bad override in several lines (the options, the config search path, a hint
about ``HYDRA_FULL_ERROR``); `describe` says the same in one line, in the form of
:class:`kvbench.config.schema.ConfigError`: ``model='nope' is invalid: allowed hub | smollm2 | ...``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError


def _first_line(text: object) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _joined(text: object) -> str:
    """Every non-empty line of ``text``, joined into one."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _settings_of(object_type: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(object_type)] if dataclasses.is_dataclass(object_type) else []


def describe_omegaconf(exc: OmegaConfBaseException) -> str:
    """An OmegaConf error (unknown key, wrong type) in one line."""
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    allowed = _settings_of(getattr(exc, "object_type", None))
    if isinstance(exc, (ConfigKeyError, ConfigAttributeError)) and key and allowed:
        where = key.rpartition(".")[0] or "the config"
        return f"{key} is not a key of {where}: allowed {' | '.join(allowed)}"
    if isinstance(exc, ValidationError) and key:
        return f"{key} is invalid: {_first_line(getattr(exc, 'msg', None) or exc)}"
    message = _first_line(getattr(exc, "msg", None) or exc)  # some carry msg=None and say it in str(exc)
    return f"{key}: {message}" if key else message


def describe(exc: BaseException) -> str | None:
    """The one-line message for a Hydra or OmegaConf config error; None for any other exception."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, value = exc.missing_cfg_file.rpartition("/")
        return f"{group or 'config'}={value!r} is invalid: allowed {' | '.join(exc.options)}"
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override {exc.override!r}: {_joined(exc.message)}"
    if isinstance(exc, ConfigCompositionException):
        if isinstance(exc.__cause__, OmegaConfBaseException):
            return describe_omegaconf(exc.__cause__)
        return _joined(exc)
    if isinstance(exc, OmegaConfBaseException):
        return describe_omegaconf(exc)
    return None
