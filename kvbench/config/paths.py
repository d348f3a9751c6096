"""Name- and path-valued settings, checked as text before anything is written.

``exp_name`` becomes one folder under ``results_dir`` (``results_dir/exp_name/<run>``), so it
must be one safe path component: no ``/``, no ``..``, no leading dot, short enough that
Hydra's run-folder names still fit beside it. A path (``results_dir``, ``tier.dir``) must be
non-empty, free of NUL bytes and within the lengths the OS allows. What the filesystem says
about a path (a file on the way, a folder nobody may write) is checked by the runner
(:mod:`kvbench.run.paths`), which may touch the disk.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from kvbench.config.errors import require

MAX_NAME = 100  # exp_name: a folder name, with room for the run folder's own (up to ~170) in a path
MAX_PATH = 1024  # bytes of a path; PATH_MAX is 4096, and run folders nest two levels below it
MAX_COMPONENT = 255  # bytes of one path component (NAME_MAX)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(key: str, value: Any) -> None:
    """``value`` is one folder name: letters, digits, ``.``, ``_``, ``-``; no separator or traversal."""
    require(
        isinstance(value, str) and _NAME.fullmatch(value) is not None and len(value) <= MAX_NAME,
        key,
        value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "...",
        f"a folder name of 1 to {MAX_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit",
    )


def check_path(key: str, value: Any) -> None:
    """``value`` is a usable path as text: non-empty, no NUL, within the OS's length limits."""
    ok = isinstance(value, str) and value.strip() != "" and "\0" not in value
    if ok:
        data = value.encode("utf-8", "surrogateescape")
        ok = len(data) <= MAX_PATH and all(len(part) <= MAX_COMPONENT for part in data.split(b"/"))
    shown = value if not isinstance(value, str) or len(value) <= 60 else value[:60] + "..."
    require(
        ok,
        key,
        shown,
        f"a non-empty path of at most {MAX_PATH} bytes, each folder name at most {MAX_COMPONENT}, without NUL",
    )


REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_url(key: str, value: str) -> str:
    """``value`` with its scheme in lower case, once scheme, port and database number parse.

    Schemes are case-insensitive (RFC 3986) but redis-py accepts only lower case, so
    ``REDIS://h`` is normalised here rather than failing every point while measuring.
    """
    scheme, sep, rest = value.partition("://")
    require(
        bool(sep) and scheme.lower() in REDIS_SCHEMES,
        key,
        _shown_url(value),
        "a URL starting " + " | ".join(f"{s}://" for s in REDIS_SCHEMES),
    )
    url = f"{scheme.lower()}://{rest}"
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (parsing raises on a port that is not a number in 0 .. 65535)
    except ValueError:
        require(False, key, _shown_url(value), "a URL whose port is a number in 0 .. 65535")
    db = parts.path.strip("/")
    require(scheme.lower() == "unix" or db == "" or db.isdigit(), key, _shown_url(value), "a database number as path")
    return url


def _shown_url(value: str) -> str:
    """The URL for an error message, without userinfo or query (either may hold a password)."""
    scheme, sep, rest = value.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2].split('?')[0]}"
