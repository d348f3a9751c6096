"""Bring a GPU node's run folders into the committed results: ``python -m kvbench.rows.merge SRC DST``.

A node writes under its own folder (``scripts/node.sh``: ``node-results/<experiment>/<run>``).
Each run folder found under ``SRC`` lands in the same place under ``DST``, as if its jobs had
written there: its rows replace the rows of the same point id (rows of other points stay), its
manifest's jobs join the folder's (the ``RECIPE`` follows), its resolved config replaces the
folder's (the newest job's, as a run's own write does) and its log is appended. A source line
that is not a row is left behind with a warning, never copied; a job that stopped before its end
(no ``end_time`` in its manifest) is merged with a warning. This is the one step that
changes committed rows after a node run, and only when asked.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kvbench.rows.store import CONFIG_FILE, ROWS_FILE, ResultStore

LOG_FILE = "kvbench.log"

log = logging.getLogger(__name__)


def merge_folder(source: Path, target: Path) -> tuple[int, int]:
    """Merge the run folder ``source`` into ``target`` (made if missing); returns (rows kept, rows merged)."""
    src, dst = ResultStore(source), ResultStore(target)
    rows = src.rows()
    kept = dst.extend(rows)
    for job in src.manifests():
        dst.record_job(job)
        if "end_time" in job and job["end_time"] is None:  # killed (a deadline, OOM-kill) or crashed mid-run
            log.warning(
                "%s: job %s started %s has no end_time: it stopped early, and only the points it finished are merged",
                source,
                job.get("pid"),
                job.get("start_time"),
            )
    if (source / CONFIG_FILE).exists():
        dst.write_config((source / CONFIG_FILE).read_text())
    if (source / LOG_FILE).exists():
        with open(target / LOG_FILE, "a") as fh:
            fh.write((source / LOG_FILE).read_text())
    return kept, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvbench.rows.merge", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a node's results folder, e.g. node-results")
    parser.add_argument("target", type=Path, help="the committed results folder, e.g. results")
    args = parser.parse_args(argv)
    folders = sorted(p.parent for p in args.source.rglob(ROWS_FILE)) if args.source.is_dir() else []
    if not folders:
        print(f"kvbench.rows.merge: no run folder ({ROWS_FILE}) under {args.source}", file=sys.stderr)
        return 2
    for folder in folders:
        where = args.target / folder.relative_to(args.source)
        kept, merged = merge_folder(folder, where)
        print(f"{where}: {merged} row(s) merged, {kept} earlier row(s) kept")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
