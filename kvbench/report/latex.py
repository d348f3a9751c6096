"""A booktabs table writer with group header rows (pandas' ``to_latex`` has none). Tables
need the LaTeX packages booktabs, array and (for ``long``) longtable."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pandas as pd

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text) -> str:
    return "".join(_SPECIAL.get(c, c) for c in str(text))


def fmt(spec: str) -> Callable:
    """A cell formatter: ``spec`` is a format string; missing values print as an en dash."""

    def f(v):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return "--"
        return escape(spec.format(v))

    return f


def table(
    df: pd.DataFrame,
    columns: Iterable[tuple[str, str, str, Callable]],
    group: str | None = None,
    long: bool = False,
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """``columns``: (column, header, alignment, formatter). Rows are grouped under a bold header
    row per value of ``group`` (in order of appearance). ``long``: a longtable that breaks across
    pages, with ``caption`` (LaTeX, not escaped) and ``label`` on its first page and its header
    repeated, marked as continued, on the next (a longtable steps the table counter whether or
    not it has a caption, so every longtable needs one)."""
    columns = list(columns)
    env = "longtable" if long else "tabular"
    head = " & ".join(escape(h) for _, h, _, _ in columns) + r" \\"
    # Paragraph columns are set ragged-right (needs the array package): no stretched spaces.
    spec = "".join(rf">{{\raggedright\arraybackslash}}{a}" if a.startswith("p{") else a for _, _, a, _ in columns)
    out = [rf"\begin{{{env}}}{{{spec}}}"]
    if long and caption:
        out += [rf"\caption{{{caption}}}" + (rf"\label{{{label}}}" if label else "") + r" \\"]
        out += [r"\toprule", head, r"\midrule", r"\endfirsthead", r"\caption[]{(continued)} \\"]
    out += [r"\toprule", head, r"\midrule"]
    if long:
        out += [r"\endhead", r"\bottomrule", r"\endfoot"]
    blocks = df.groupby(group, sort=False) if group else [(None, df)]
    for i, (key, rows) in enumerate(blocks):
        if group:
            if i:
                out.append(r"\midrule")
            out.append(rf"\multicolumn{{{len(columns)}}}{{l}}{{\textbf{{{escape(key)}}}}} \\")
        for row in rows.to_dict("records"):
            out.append(" & ".join(f(row.get(c)) for c, _, _, f in columns) + r" \\")
    if not long:
        out.append(r"\bottomrule")
    out.append(rf"\end{{{env}}}")
    return "\n".join(out) + "\n"
