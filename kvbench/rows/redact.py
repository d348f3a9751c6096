"""Credentials out of everything kvbench writes: folder names, rows, manifests, configs, logs, W&B, the console.

A tier URL may carry a password (``redis://user:secret@host:6379/0``) or a secret option
(``?password=``, redis-py's ``?ssl_password=``, any option whose name holds ``password``,
``token``, ``secret`` or ``key``). :func:`redact` replaces it with ``***``, also in the form
Hydra writes overrides in (``redis\\://\\:secret@host``, ``ssl_password\\=secret``: it escapes
``: = ,`` with a backslash). :class:`RedactingFilter` does the same to every log record
(installed on Hydra's log handlers by ``conf/config.yaml``), and :class:`RedactingStream` to
what is written straight to the console (Hydra's ``Error executing job with overrides: [...]``
line, tracebacks). The password is better kept in the environment variable
``tier.password_env`` names, which never reaches a run folder. A logged traceback also loses
the machine's paths (:func:`without_machine_paths`): in a committed ``kvbench.log`` it names
``kvbench/forward/fast.py``, not the node's checkout.
"""

from __future__ import annotations

import logging
import re
import site
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, TextIO

# One character of userinfo or of an option's value; a backslash escapes the next one (Hydra).
_CHAR = r"(?:\\.|[^/\s@\\])"
# scheme://userinfo@  (userinfo up to the last @ before the host's first "/" or whitespace)
# (backslashes: none, Hydra's one, or the two of a Python repr of Hydra's override list)
_USERINFO = re.compile(rf"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*\\*://){_CHAR}*(?:@{_CHAR}*)*@")
# ?name=value or &name=value where the name holds a secret word; the value ends at & # ' " or whitespace
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&][\w.\-]*(?:password|passwd|pass|pwd|token|secret|key)[\w.\-]*\\*=)(?:\\.|[^&#'\"\s\\])*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with URL credentials replaced: ``redis://u:p@h/0`` -> ``redis://***@h/0``,
    ``rediss://h/0?ssl_password=p`` -> ``rediss://h/0?ssl_password=***``."""
    return _QUERY_SECRET.sub(r"\g<key>***", _USERINFO.sub(r"\g<scheme>***@", text))


def _machine_prefixes() -> list[tuple[str, str]]:
    """(prefix, what it becomes), longest first: the repository (a CI clone may sit in the temp dir)."""
    prefixes = {str(Path(__file__).resolve().parents[2]) + "/": ""}
    for packages in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]:
        prefixes[packages.rstrip("/") + "/"] = "<site-packages>/"
    prefixes[tempfile.gettempdir().rstrip("/") + "/"] = "<tmp>/"
    return sorted(prefixes.items(), key=lambda item: -len(item[0]))


_MACHINE_PREFIXES = _machine_prefixes()


def without_machine_paths(text: str) -> str:
    """``text`` with this machine's paths made portable: the repository's root dropped
    (``kvbench/forward/fast.py``), site-packages and the temp dir named (``<site-packages>/torch/...``)."""
    for prefix, short in _MACHINE_PREFIXES:
        text = text.replace(prefix, short)
    return text


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
    """A logging filter that redacts credentials from a record's message and traceback before any
    handler formats it, and this machine's paths from the traceback (a message keeps the paths it
    names: they are the reader's own files)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = without_machine_paths(redact(record.exc_text))
        return True


class RedactingStream:
    """A console stream (``sys.stdout``, ``sys.stderr``) that redacts each line before writing it.

    Text is held until its line ends (or until :meth:`flush`), so a secret is never split
    across two writes; every other attribute (``isatty``, ``fileno``, ...) is the stream's own.
    """

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        if lines:
            self._stream.write("".join(redact(line) + "\n" for line in lines))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(redact(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
