"""Run-folder names from Hydra's ``override_dirname``: one safe path component, never a credential.

Hydra names a run folder by its overrides (``codec=int4-kivi,tier=disk``). A path- or
URL-valued override (``tier.dir=/tmp/x``, ``tier.url=redis://u:p@h:1/0``) would nest folders
and write a password to disk, so such names are redacted, reduced to safe characters and
given a short hash of the redacted text (two different paths never share a folder).
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
    name = redact(override_dirname)
    if name == override_dirname and not _UNSAFE.search(name) and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', name)[:MAX_NAME]}-{digest}"
