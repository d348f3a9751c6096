"""The terminal's table of a run's rows at the end, one screen wide.

Width comes from the terminal (``COLUMNS`` or 80 when the output is not one). Nothing is cut:
columns whose value is the same in every row (model, weights, dtype) move into the caption,
cells and headers wrap instead of being truncated, and the reuse experiment's columns are
split into a latency table and an exactness table. The speedup shows its 95% interval under
it, and a row whose timing should not be read as a result says so (:mod:`kvbench.run.noise`).
"""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from kvbench.run.noise import FLAG, noise_reasons

CONSTANT_TO_CAPTION = ("model", "weights", "dtype")  # shown once when every row has the same value
_IDENTITY = (
    ("model", "model", "{}"),
    ("weights", "weights", "{}"),
    ("dtype", "dtype", "{}"),
    ("doc_tokens", "L", "{}"),
)
RATES_WITH_CI = ("exact_fraction", "first_token_agree", "bitwise_twostage", "repeatable_fraction")
WITH_CI = (*RATES_WITH_CI, "speedup")
# experiment -> tables, each (name, columns); a column is (row key, header, format); kv_bytes is shown in MiB
SUMMARY_TABLES: dict[str, tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]] = {
    "reuse": (
        (
            "latency",
            _IDENTITY
            + (
                ("reader", "reader", "{}"),
                ("prefill_best_ms", "prefill\nms", "{:.2f}"),
                ("reuse_ms", "reuse\nms", "{:.2f}"),
                ("speedup", "speedup\n95% CI", "{:.1f}x"),
                ("reuse_floor_ms", "floor\nms", "{:.2f}"),
                ("reuse_efficiency", "of\nfloor", "{:.0%}"),
                ("kv_bytes", "KV\nMiB", "{:.1f}"),
                ("_status", "status", "{}"),
            ),
        ),
        (
            "exactness",
            _IDENTITY
            + (
                ("reader", "reader", "{}"),
                ("num_docs", "docs", "{}"),
                ("exact_fraction", "exact", "{:.2f}"),
                ("first_token_agree", "top-1", "{:.2f}"),
                ("bitwise_twostage", "bitwise\n2-stage", "{:.2f}"),
                ("repeatable_fraction", "repeat-\nable", "{:.2f}"),
            ),
        ),
    ),
}
_SINGLE = {  # experiments shown as one table
    "tiers": _IDENTITY
    + (
        ("tier", "tier", "{}"),
        ("tier_variant", "variant", "{}"),
        ("codec", "codec", "{}"),
        ("reader", "reader", "{}"),
        ("prefill_best_ms", "prefill ms", "{:.1f}"),
        ("fetch_ms", "fetch", "{:.1f}"),
        ("decode_ms", "decode", "{:.1f}"),
        ("h2d_ms", "h2d", "{:.1f}"),
        ("attach_ms", "attach", "{:.1f}"),
        ("query_ms", "query", "{:.1f}"),
        ("reuse_ms", "reuse ms", "{:.1f}"),
        ("speedup", "speedup\n95% CI", "{:.2f}x"),
        ("fetch_gbps", "fetch GB/s", "{:.2f}"),
        ("_status", "status", "{}"),
    ),
    "throughput": _IDENTITY
    + (
        ("method", "method", "{}"),
        ("batch", "B", "{}"),
        ("batch_ms", "batch ms", "{:.2f}"),
        ("per_reader_ms", "ms/reader", "{:.3f}"),
        ("per_reader_floor_ms", "floor", "{:.3f}"),
        ("efficiency", "of floor", "{:.0%}"),
        ("batch_top1_agree", "top-1 vs alone", "{:.2f}"),
        ("status", "status", "{}"),
    ),
    "compress": _IDENTITY
    + (
        ("codec", "codec", "{}"),
        ("compress_ratio", "ratio", "{:.3f}"),
        ("bound_channel_ratio", "bound", "{:.3f}"),
        ("encode_gbps", "enc GB/s", "{:.2f}"),
        ("decode_gbps", "dec GB/s", "{:.2f}"),
        ("exact_fraction", "exact", "{:.2f}"),
        ("nll_delta", "dNLL", "{:.4f}"),
        ("status", "status", "{}"),
    ),
}


def _fmt(key: str, fmt: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "kv_bytes" and isinstance(value, (int, float)):
        value = value / 2**20
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    """A formatted value; a rate or a speedup gets its 95% interval on a second line, e.g. ``.68-1.00``."""
    text = _fmt(key, fmt, row.get(key))
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if key not in WITH_CI or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        return text
    if key == "speedup":
        return f"{text}\n{low:.2g}-{high:.2g}"
    return f"{text}\n{low:.2f}-{high:.2f}".replace("\n0.", "\n.").replace("-0.", "-.")


def _tables_for(experiment: str) -> tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]:
    if experiment in SUMMARY_TABLES:
        return SUMMARY_TABLES[experiment]
    return ((experiment, _SINGLE.get(experiment, SUMMARY_TABLES["reuse"][0][1])),)


ABBREVIATED = ("model", "codec", "tier_variant", "method")  # long names here become M1, M2, ... with a legend
LONG = 14


def abbreviate(rows: list[dict[str, Any]], keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows with every value longer than :data:`LONG` characters in ``keys`` replaced by a short
    label (first letter of the key and a number), and the legend lines that name them in full."""
    out, legend = [dict(r) for r in rows], []
    for key in keys:
        long = sorted({str(r[key]) for r in rows if r.get(key) is not None and len(str(r[key])) > LONG})
        labels = {name: f"{key[0].upper()}{i}" for i, name in enumerate(long, 1)}
        for row in out:
            row[key] = labels.get(str(row.get(key)), row.get(key))
        legend += [f"{key} {label} = {name}" for name, label in labels.items()]
    return out, legend


KEYS = (
    "model",
    "weights",
    "dtype",
    "doc_tokens",
    "reader",
    "tier",
    "tier_variant",
    "codec",
    "method",
    "batch",
    "_status",
)
Columns = tuple[tuple[str, str, str], ...]


def _table(title: str, columns: Columns, rows: list[dict[str, Any]], noisy: dict[int, list[str]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for key, header, _ in columns:
        # fold: a cell or header too wide for its column wraps onto more lines, never "..."
        table.add_column(header, justify="left" if key == "model" else "right", overflow="fold")
    for i, row in enumerate(rows):
        table.add_row(*(_cell(row, key, fmt) for key, _, fmt in columns), style="yellow" if i in noisy else None)
    return table


def _fit(title: str, columns: Columns, rows, noisy, console: Console) -> list[Table]:
    """One table, or two with the key columns repeated when one would not fit the terminal's width."""
    table = _table(title, columns, rows, noisy)
    keys = tuple(c for c in columns if c[0] in KEYS)
    values = tuple(c for c in columns if c[0] not in KEYS)
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    if natural <= console.width or len(values) < 4:
        return [table]
    half = (len(values) + 1) // 2
    return [
        _table(f"{title} ({n}/2)", keys + part, rows, noisy) for n, part in ((1, values[:half]), (2, values[half:]))
    ]


def summary_tables(rows: list[dict[str, Any]], title: str, console: Console) -> tuple[list[Table], list[str]]:
    """The summary as rich tables fitting ``console``'s width, and the lines to print under them
    (the values every row shares, the legend, why rows are flagged noisy, points that did not measure)."""
    experiment = str(rows[0].get("experiment")) if rows else "reuse"
    noisy = noise_reasons(rows)
    # the flag goes under the status, so it needs no column of its own (narrow terminals)
    shown = [
        dict(r, _status=f"{r.get('status')}\nnoisy" if i in noisy else r.get("status")) for i, r in enumerate(rows)
    ]
    constant = {k: rows[0].get(k) for k in CONSTANT_TO_CAPTION if rows and len({str(r.get(k)) for r in rows}) == 1}
    shown, legend = abbreviate(shown, [k for k in ABBREVIATED if k not in constant])
    specs = _tables_for(experiment)
    tables = []
    for name, columns in specs:
        if name == "exactness" and not any(r.get("exact_fraction") is not None for r in rows):
            continue
        columns = tuple(c for c in columns if c[0] not in constant)
        tables += _fit(f"{title}: {name}" if len(specs) > 1 else title, columns, shown, noisy, console)
    notes = []
    if constant:
        notes.append("every row: " + ", ".join(f"{k} {v}" for k, v in constant.items()))
    notes += legend
    notes.append(
        "speedup: prefill / reuse (medians), its 95% bootstrap CI under it; "
        "rates: fraction of documents, their 95% Wilson interval under them"
    )
    for i, reasons in noisy.items():
        row = rows[i]
        where = " ".join(f"{k}={row.get(k)}" for k in ("doc_tokens", "reader", "tier", "codec") if row.get(k))
        notes.append(f"{FLAG} {where.replace('doc_tokens=', 'L=')}: {'; '.join(reasons)}")
    for row in rows:  # .get throughout: a row file edited by hand must not stop the summary
        if row.get("status") != "ok":
            notes.append(f"{row.get('model')} L={row.get('doc_tokens')}: {row.get('status')}: {row.get('reason')}")
    return tables, notes


def print_summary(rows: list[dict[str, Any]], title: str, console: Console | None = None) -> None:
    """Print rows as tables as wide as the terminal (skipped and failed points show their status and reason)."""
    console = console or Console()
    tables, notes = summary_tables(rows, title, console)
    for table in tables:
        console.print(table)
    warnings = len(notes) - sum(1 for row in rows if row.get("status") != "ok")
    for i, line in enumerate(notes):
        warn = line.startswith(FLAG) or i >= warnings  # noise reasons, then points that did not measure
        console.print(line, style="yellow" if warn else None, overflow="fold", markup=False)
