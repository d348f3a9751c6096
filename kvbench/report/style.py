"""The one place figures are styled, sized for the printed page, and written.

The paper's text block is 6.5 in wide (``paper/main.tex``: 1 in margins on US letter) and
figures are included at their natural size, so the sizes below are the printed sizes and
the font sizes are the printed font sizes (never below 7 pt).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import seaborn as sns

TEXT_WIDTH_IN = 6.5
FULL = (6.5, 2.9)  # one figure across the text block
HALF = (3.15, 2.5)  # two side by side (3.15 + 3.15 + gap <= 6.5)
MIN_FONT_PT = 7
FONT = dict(size=8, axes=8, ticks=7, legend=7, title=8)
PAPER_POINT = dict(marker="*", s=90, color="black", zorder=5)  # the reference paper's own numbers
PAPER_LABEL = "M1 Pro (paper)"


def apply() -> None:
    """Seaborn's paper context, a white grid and the colour-blind palette, at print sizes."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette="colorblind",
        rc={
            "font.size": FONT["size"],
            "axes.labelsize": FONT["axes"],
            "axes.titlesize": FONT["title"],
            "xtick.labelsize": FONT["ticks"],
            "ytick.labelsize": FONT["ticks"],
            "legend.fontsize": FONT["legend"],
            "legend.title_fontsize": FONT["legend"],
            "figure.dpi": 100,
            "savefig.bbox": "standard",
            "pdf.fonttype": 42,
            "lines.linewidth": 1.2,
            "lines.markersize": 4,
        },
    )


def figure(size=HALF, ncols: int = 1, nrows: int = 1, **kwargs):
    """A figure of ``ncols`` x ``nrows`` panels of ``size`` inches each, laid out by matplotlib's
    constrained layout (legends and labels inside the printed size)."""
    width, height = size
    return plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained", **kwargs
    )


def save(fig, path: Path) -> None:
    """Write PDF (for the paper, byte-stable for the same rows) and PNG (to look at)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix(".pdf"), metadata={"CreationDate": None})
    fig.savefig(path.with_suffix(".png"), dpi=150)
    plt.close(fig)


def legend_outside(ax, ncol: int = 1) -> None:
    """The legend to the right of the axes, where it hides no data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            ncol=ncol,
            borderaxespad=0.0,
            handlelength=1.6,
        )


def model_label(model: str, weights: str | None) -> str:
    """Legend label of a model, marked when its weights are random (timing only)."""
    return f"{model} (random weights)" if weights == "random" else model
