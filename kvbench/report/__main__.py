"""``python -m kvbench.report [RESULTS [OUT]] [--include-local] [--write-tracked]``: every figure and
table from rows (no GPU, no network). Defaults: ``results`` and ``paper``.

What it reads: the committed reference folders that ``RESULTS/REFERENCE`` lists, never a local
run (``make run``, ``+exp=smoke``) unless ``--include-local`` asks for every run folder under
``RESULTS``; a RESULTS folder without a ``REFERENCE`` file (a run folder, a tree of one's own) is
read whole. Where it writes: ``OUT/figures`` and ``OUT/tables``, after clearing them; an OUT
folder holding files git tracks (``paper/``: the committed figures and tables) is written only
with ``--write-tracked``, otherwise the command stops in one line (exit 2) and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time

from kvbench.report.build import build
from kvbench.rows.git import tracked_files
from kvbench.rows.reference import reference_folders


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kvbench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default="results", help="results tree or run folder (default: results)")
    parser.add_argument("out", nargs="?", default="paper", help="where figures/ and tables/ go (default: paper)")
    parser.add_argument("--include-local", action="store_true", help="read every run folder, not only the reference")
    parser.add_argument("--write-tracked", action="store_true", help="allow rewriting files git tracks in OUT")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    tracked = [p for p in tracked_files(args.out) if p.startswith(("figures/", "tables/"))]
    if tracked and not args.write_tracked:
        print(
            f"kvbench.report: {args.out} holds {len(tracked)} committed figures and tables (tracked by git): "
            "--write-tracked regenerates them, or name another OUT folder",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    try:
        report = build(args.results, args.out, include_local=args.include_local)
    except FileNotFoundError as exc:
        print(f"kvbench.report: {exc}", file=sys.stderr)
        return 2
    if not report.written:
        print(f"kvbench.report: no rows.jsonl with usable rows under {args.results}", file=sys.stderr)
        return 1
    for note in report.skipped:
        print(f"skipped {note}")
    reference = not args.include_local and reference_folders(args.results) is not None
    read = "the reference folders" if reference else "every run folder"
    print(
        f"wrote {len(report.written)} figures and tables under {args.out} from {read} of {args.results} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
