"""The reproducibility appendix: for every results folder the paper reads, how its rows were
made (jobs, device, days, commits), from the manifest each folder carries, summarised as its
``RECIPE`` is (:func:`kvbench.rows.recipes.summary`); the exact commands are in those files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kvbench.report.latex import fmt, table
from kvbench.rows.recipes import summary
from kvbench.rows.reference import result_paths
from kvbench.rows.store import MANIFEST_FILE, read_manifest


def recipe_rows(results: str | Path) -> pd.DataFrame:
    """One row per results folder: its experiment, jobs, devices, each command's first and last days,
    and every commit its jobs ran at."""
    root = Path(results)
    rows = []
    for folder in result_paths(root):
        commands = summary(read_manifest(folder / MANIFEST_FILE))
        if not commands:
            continue
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        rows.append(
            dict(
                folder=name,
                jobs=sum(c["jobs"] for c in commands),
                device=", ".join(sorted({c["where"] for c in commands})),
                days=", ".join(sorted({c[when][:10] for c in commands for when in ("start", "last")})),
                commits=", ".join(dict.fromkeys(sha for c in commands for sha in c["git"])),
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
        ("days", "runs", "p{0.75in}", fmt("{}")),
        ("commits", "git", "p{1.1in}", fmt("{}")),
    ]
    return table(rows.sort_values("folder"), cols, group="experiment", long=True, caption=caption, label=label)
