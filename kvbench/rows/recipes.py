"""Recipes: the commands that made a run folder, as a plain file beside its rows.

Every job that writes into a folder leaves its command-line overrides in ``manifest.json``;
``RECIPE`` lists each distinct command once, oldest first, with when, where and at which
commit it ran. ``results_dir=`` is left out: a recipe re-run chooses where it writes
(``scripts/node.sh`` runs recipes on a GPU node). The store rewrites the file with the
manifest, so the two never disagree.
"""

from __future__ import annotations

import shlex
from typing import Any

RECIPE_FILE = "RECIPE"


def command(overrides: list[str]) -> str:
    """``python -m kvbench OVERRIDES`` (without ``results_dir=``), quoted for a POSIX shell."""
    kept = [o for o in overrides if not o.startswith("results_dir=")]
    return shlex.join(["python", "-m", "kvbench", *kept])


def recipe_text(jobs: list[dict[str, Any]]) -> str:
    """The ``RECIPE`` file for a folder whose manifest lists ``jobs`` (oldest first)."""
    by_command: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        overrides = job.get("overrides")  # a list of strings, unless the manifest was edited by hand
        overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
        by_command.setdefault(command(overrides), []).append(job)
    lines = ["# The commands that made this folder's rows, from manifest.json (kvbench.rows.recipes)."]
    for cmd, runs in by_command.items():
        first = runs[0]
        where = first.get("device_name") or first.get("cpu") or "?"
        lines.append(
            f"# {len(runs)} job(s), first {str(first.get('start_time', '?'))[:16]} on {where}, "
            f"git {str(first.get('git_sha', '?'))[:7]}"
        )
        lines.append(cmd)
    return "\n".join(lines) + "\n"


def commands(text: str) -> list[str]:
    """The command lines of a ``RECIPE`` file (comments and blank lines dropped)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
