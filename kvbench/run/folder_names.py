"""Run-folder names from Hydra's ``override_dirname``: one safe path component, never a credential.

Hydra names a run folder by its overrides (``codec=int4-kivi,tier=disk``). A path- or
URL-valued override (``tier.dir=/tmp/x``, ``tier.url=redis://u:p@h:1/0``) would nest folders
and write a password to disk, so such names are redacted (in the escaped form Hydra writes,
``redis\\://\\:p@h``), reduced to safe characters and given a short hash of the redacted text
(two different paths never share a folder).
"""

from __future__ import annotations

import hashlib
import re

from kvbench.rows.redact import redact

_UNSAFE = re.compile(r"[^A-Za-z0-9._,=+\-\[\]]+")
MAX_NAME = 160  # well under the 255 bytes a path component may have


def run_dirname(override_dirname: str) -> str:
    """The folder name for a run whose overrides read ``override_dirname`` (``base`` for none).

    Names made only of safe characters are kept as they are, so existing folders resume.
    """
    if not override_dirname:
        return "base"
    # each override alone: a secret option's value never runs into the next override
    name = ",".join(redact(part) for part in split_overrides(override_dirname))
    if name == override_dirname and not _UNSAFE.search(name) and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', name)[:MAX_NAME]}-{digest}"


def split_overrides(text: str) -> list[str]:
    """``text`` cut at the commas Hydra joined overrides with: not escaped (``\\,``), not inside quotes.

    A list value (``doc_tokens=[32,64]``) is cut too; its pieces are joined back unchanged.
    """
    parts, start, quote, escaped = [], 0, "", False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]
