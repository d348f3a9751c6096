"""``python -m kvbench.report RESULTS_DIR OUT_DIR``: every figure and table from committed rows."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from kvbench.report import figures, tables
from kvbench.results import load_rows


def save(fig, path: Path) -> None:
    """The one place figures are styled and written (PDF for the paper, PNG to look at)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".pdf"), metadata={"CreationDate": None})  # same rows, same bytes
    fig.savefig(path.with_suffix(".png"), dpi=150)
    plt.close(fig)


def main(results: str = "results", out: str = "paper") -> None:
    out_dir = Path(out)
    rows = load_rows([results])
    if rows.empty:
        sys.exit(f"kvbench.report: no rows.jsonl under {results}")
    sweep = rows[(rows["experiment"] == "reuse") & (rows["run_dir"].str.contains("sweep"))]
    sweep = sweep[~sweep["deterministic"].fillna(False).astype(bool)]
    if len(sweep):
        save(figures.latency_vs_length(sweep)[0], out_dir / "figures" / "latency_vs_length")
        save(figures.speedup_vs_length(sweep)[0], out_dir / "figures" / "speedup_vs_length")
        save(figures.speedup_vs_length(sweep, "speedup_graph")[0], out_dir / "figures" / "speedup_graph_vs_length")
        save(figures.exactness_vs_length(sweep)[0], out_dir / "figures" / "exactness_vs_length")
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        (out_dir / "tables" / "latency.tex").write_text(tables.latency_table(sweep))
    tier_rows = rows[rows["experiment"] == "tiers"]
    for length in sorted(tier_rows["doc_tokens"].unique()) if len(tier_rows) else []:
        save(figures.tier_stages(tier_rows, int(length))[0], out_dir / "figures" / f"tier_stages_{int(length)}")
    if len(tier_rows):
        from kvbench.crossover import crossovers

        save(figures.tier_reuse_vs_length(tier_rows)[0], out_dir / "figures" / "tier_reuse_vs_length")
        table = pd.DataFrame(crossovers(tier_rows.to_dict("records")))
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        (out_dir / "tables" / "crossover.tex").write_text(tables.crossover_table(table))
    codec_rows = rows[rows["experiment"] == "compress"]
    if len(codec_rows):
        save(figures.codec_ratios(codec_rows)[0], out_dir / "figures" / "codec_ratios")
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        (out_dir / "tables" / "codecs.tex").write_text(tables.codec_table(codec_rows))
    print(f"wrote figures and tables under {out_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
