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


def summary(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct command of ``jobs`` (a manifest's, oldest first) once, in order of its first
    job: ``command``, ``jobs`` (how many ran it), ``start`` and ``last`` (its first and last jobs'
    start, to the minute), ``where`` (the first job's device, else CPU) and ``git`` (every job's
    short sha once, oldest first: a later job replaces the rows of the points it ran); ``?`` where
    the manifest lacks one."""
    by_command: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        overrides = job.get("overrides")  # a list of strings, unless the manifest was edited by hand
        overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
        by_command.setdefault(command(overrides), []).append(job)
    return [
        dict(
            command=cmd,
            jobs=len(runs),
            start=str(runs[0].get("start_time", "?"))[:16],
            last=str(runs[-1].get("start_time", "?"))[:16],
            where=runs[0].get("device_name") or runs[0].get("cpu") or "?",
            git=list(dict.fromkeys(str(run.get("git_sha", "?"))[:7] for run in runs)),
        )
        for cmd, runs in by_command.items()
    ]


def recipe_text(jobs: list[dict[str, Any]]) -> str:
    """The ``RECIPE`` file for a folder whose manifest lists ``jobs`` (oldest first)."""
    lines = ["# The commands that made this folder's rows, from manifest.json (kvbench.rows.recipes)."]
    for s in summary(jobs):
        span = f"first {s['start']}" if s["last"] == s["start"] else f"{s['start']} to {s['last']}"
        lines.append(f"# {s['jobs']} job(s), {span} on {s['where']}, git {', '.join(s['git'])}")
        lines.append(s["command"])
    return "\n".join(lines) + "\n"


def commands(text: str) -> list[str]:
    """The command lines of a ``RECIPE`` file (comments and blank lines dropped)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
