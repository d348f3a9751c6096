"""Drawing helpers shared by the figure modules: one line per group, panels per model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker

from kvbench.report.style import FULL, figure, model_label

DASHES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def palette(keys) -> dict:
    """A colour-blind-safe colour per key, stable in sorted order."""
    keys = sorted(set(keys), key=str)
    return dict(zip(keys, sns.color_palette("colorblind", n_colors=max(len(keys), 1))))


def lines(
    ax,
    df: pd.DataFrame,
    x: str,
    y: str,
    hue: str,
    style: str | None = None,
    colors: dict | None = None,
    label=None,
    grid=None,
    **kwargs,
) -> None:
    """One line per (hue, style) group, sorted by x, labelled "hue, style" (or by ``label(hue, style)``).

    Every group differs from the others in colour and in marker (hue) and dash (style; the hue's
    when there is no style), so lines stay apart in greyscale too. With ``grid`` (the x values
    measured in the panel), a line joins only neighbouring grid values: a group that skipped a
    length shows a gap there, never a line through a length it did not measure.
    """
    df = df[df[y].notna()]
    colors = colors or palette(df[hue])
    styles = {s: i for i, s in enumerate(sorted(df[style].dropna().unique(), key=str))} if style else {}
    hues = {h: i for i, h in enumerate(sorted(df[hue].dropna().unique(), key=str))}
    order = {v: i for i, v in enumerate(sorted(set(grid)))} if grid is not None else None
    for keys, group in df.groupby([hue, style] if style else [hue], sort=True):
        h, s = keys if style else (keys[0], None)
        group = group.sort_values(x)
        name = label(h, s) if label else (f"{h}, {s}" if style else str(h))
        dash = DASHES[(styles[s] if style else hues[h]) % len(DASHES)]
        marker = MARKERS[hues[h] % len(MARKERS)]
        runs = [np.arange(len(group))]  # one line, or one per run of neighbouring grid values
        if order is not None:
            runs = np.split(runs[0], np.flatnonzero(np.diff(group[x].map(order).to_numpy()) != 1) + 1)
        for i, run in enumerate(runs):
            part = group.iloc[run]
            ax.plot(
                part[x],
                part[y],
                color=colors.get(h),
                linestyle=dash,
                marker=marker,
                label=name if i == 0 else None,
                **kwargs,
            )


def measured_enough(df: pd.DataFrame, by: str, x: str, y: str) -> pd.DataFrame:
    """``df`` without the values of ``by`` that have fewer than two distinct ``x`` with a ``y``:
    a panel of one length (or none) says nothing a table does not say better."""
    has = df[df[y].notna()]
    keep = has.groupby(by)[x].nunique()
    return df[df[by].isin(keep[keep >= 2].index)]


def panels(df: pd.DataFrame, by: str = "model", size=FULL, max_cols: int = 3):
    """A figure with one panel per value of ``by`` (models never share a panel).

    Returns (fig, axes, [(key, rows, ax), ...]); axes is the 2-D array of all panels.
    """
    keys = sorted(df[by].dropna().unique(), key=str)
    ncols = max(1, min(len(keys), max_cols))
    nrows = -(-len(keys) // ncols) if keys else 1
    width, height = size
    fig, axes = figure((width / ncols, height), ncols=ncols, nrows=nrows)
    flat = list(axes.flat)
    for ax in flat[len(keys) :]:
        ax.set_visible(False)
    return fig, axes, [(k, df[df[by] == k], ax) for k, ax in zip(keys, flat)]


def panel_title(ax, rows: pd.DataFrame) -> None:
    """A model panel's title: the model, marked when its weights are random."""
    weights = rows["weights"].dropna().iloc[0] if "weights" in rows and rows["weights"].notna().any() else None
    ax.set_title(model_label(rows["model"].iloc[0], weights).replace(" (", "\n("))  # narrow panels: two lines


def shared_legend(fig, axes, ncol: int = 4, extra=()) -> None:
    """One legend for all panels, below them (labels in the order first seen), then the ``extra``
    handles (artists drawn nowhere, e.g. a key to a line style the panels share)."""
    seen: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    seen.update({h.get_label(): h for h in extra})
    if seen:
        fig.legend(
            list(seen.values()), list(seen.keys()), loc="outside lower center", ncol=min(ncol, len(seen)), frameon=False
        )


def tokens(v, _=None) -> str:
    """A length tick: 256, 512, 1k, 2k, ... 32k."""
    return f"{v / 1024:g}k" if v >= 1024 else f"{v:g}"


def plain(v, _=None) -> str:
    """A log-axis tick as a plain number (0.01, 5, 300, 1e+05)."""
    return f"{v:g}"


def log_axes(ax, x: bool = True, y: bool = True, xbase: int = 2) -> None:
    """Log scales with plain-number ticks (lengths as 1k, 2k, ... on base 2); call after plotting."""
    if x:
        ax.set_xscale("log", base=xbase)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(tokens if xbase == 2 else plain))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    if y:
        ax.set_yscale("log")
        low, high = ax.get_ylim()  # call after plotting: 2 and 5 are labelled on short axes only
        subs = (1.0, 2.0, 5.0) if high < 100 * max(low, 1e-300) else (1.0,)
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(plain))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def length_axis(ax) -> None:
    """Log-2 length axis with a linear y."""
    log_axes(ax, y=False)
