"""The reproducibility appendix: for every results folder the paper reads, how its rows were
made (jobs, device, days, commits), from the ``RECIPE`` each folder carries
(:mod:`kvbench.rows.recipes`); the exact commands are in those files."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from kvbench.report.latex import fmt, table
from kvbench.rows.reference import result_paths

JOB_LINE = re.compile(r"^# (\d+) job\(s\), first (\d{4}-\d{2}-\d{2})T[\d:]+ on (.+), git (\w+)")


def recipe_rows(results: str | Path) -> pd.DataFrame:
    """One row per results folder: its experiment, jobs, devices, first days and commits."""
    root = Path(results)
    rows = []
    for folder in result_paths(root):
        recipe = folder / "RECIPE"
        if not recipe.is_file():
            continue
        jobs = [m.groups() for m in map(JOB_LINE.match, recipe.read_text().splitlines()) if m]
        if not jobs:
            continue
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        rows.append(
            dict(
                folder=name,
                jobs=sum(int(j[0]) for j in jobs),
                device=", ".join(sorted({j[2] for j in jobs})),
                days=", ".join(sorted({j[1] for j in jobs})),
                commits=", ".join(dict.fromkeys(j[3] for j in jobs)),
            )
        )
    return pd.DataFrame(rows)


def recipes_table(rows: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A longtable (it runs over pages) of :func:`recipe_rows`, grouped by experiment."""
    rows = rows.assign(experiment=rows["folder"].str.split("/").str[0])
    cols = [
        ("folder", "results folder", "p{2.3in}", fmt("{}")),
        ("jobs", "jobs", "r", fmt("{:d}")),
        ("device", "device", "p{0.85in}", fmt("{}")),
        ("days", "first run", "p{0.75in}", fmt("{}")),
        ("commits", "git", "p{1.1in}", fmt("{}")),
    ]
    return table(rows.sort_values("folder"), cols, group="experiment", long=True, caption=caption, label=label)
