"""``python -m kvbench.report [RESULTS_DIR [OUT_DIR]]``: every figure and table from committed rows
(no GPU, no network). Defaults: ``results`` and ``paper``."""

from __future__ import annotations

import sys
import time

from kvbench.report.build import build


def main(results: str = "results", out: str = "paper") -> None:
    start = time.perf_counter()
    report = build(results, out)
    if not report.written:
        sys.exit(f"kvbench.report: no rows.jsonl with usable rows under {results}")
    for note in report.skipped:
        print(f"skipped {note}")
    print(f"wrote {len(report.written)} figures and tables under {out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:3])
