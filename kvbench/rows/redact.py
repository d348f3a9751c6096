"""Credentials out of everything kvbench writes: folder names, rows, manifests, configs, logs, W&B.

A tier URL may carry a password (``redis://user:secret@host:6379/0``, or ``?password=``).
:func:`redact` replaces it with ``***``; :class:`RedactingFilter` does the same to every log
record (installed on Hydra's log handlers by ``conf/config.yaml``). The password is better
kept in the environment variable ``tier.password_env`` names, which never reaches a run folder.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# scheme://userinfo@  (userinfo up to the last @ before the host's first "/" or whitespace)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s@]*(?:@[^/\s@]*)*@")
_QUERY_SECRET = re.compile(r"(?P<key>[?&](?:password|passwd|pass|token)=)[^&\s#]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with URL credentials replaced: ``redis://u:p@h/0`` -> ``redis://***@h/0``."""
    return _QUERY_SECRET.sub(r"\g<key>***", _USERINFO.sub(r"\g<scheme>***@", text))


def redact_all(value: Any) -> Any:
    """``value`` with :func:`redact` applied to every string inside it (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_all(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials from a record's message before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
