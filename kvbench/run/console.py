"""The terminal: a progress bar over points while a run goes, and a one-screen table of its rows at the end."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

_IDENTITY = (
    ("model", "model", "{}"),
    ("weights", "weights", "{}"),
    ("dtype", "dtype", "{}"),
    ("doc_tokens", "L", "{}"),
)
RATES_WITH_CI = ("exact_fraction", "first_token_agree", "bitwise_twostage", "repeatable_fraction")
SUMMARY_COLUMNS = {  # experiment -> (row key, header, format); kv_bytes is shown in MiB
    "reuse": _IDENTITY
    + (
        ("reader", "reader", "{}"),
        ("prefill_best_ms", "prefill ms", "{:.2f}"),
        ("reuse_ms", "reuse ms", "{:.2f}"),
        ("speedup", "speedup", "{:.1f}x"),
        ("reuse_floor_ms", "floor ms", "{:.2f}"),
        ("reuse_efficiency", "of floor", "{:.0%}"),
        ("kv_bytes", "KV MiB", "{:.1f}"),
        ("exact_fraction", "exact", "{:.2f}"),
        ("first_token_agree", "top-1", "{:.2f}"),
        ("bitwise_twostage", "bitwise 2-stage", "{:.2f}"),
        ("repeatable_fraction", "repeatable", "{:.2f}"),
        ("status", "status", "{}"),
    ),
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
        ("speedup", "speedup", "{:.2f}x"),
        ("fetch_gbps", "fetch GB/s", "{:.2f}"),
        ("status", "status", "{}"),
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


def progress(items: Iterable[Any], description: str) -> Iterator[Any]:
    """Yield ``items`` under a progress bar with counts and elapsed time."""
    items = list(items)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


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
    """A formatted value; a rate gets its 95% interval on a second line, e.g. ``.68-1.00``."""
    text = _fmt(key, fmt, row.get(key))
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if key not in RATES_WITH_CI or not all(isinstance(v, (int, float)) for v in (low, high)):
        return text
    return f"{text}\n{low:.2f}-{high:.2f}".replace("\n0.", "\n.")  # 8 characters fit the column


def print_summary(rows: list[dict[str, Any]], title: str) -> None:
    """Print rows as one table (skipped and failed points show their status and reason)."""
    experiment = rows[0].get("experiment") if rows else "reuse"
    columns = SUMMARY_COLUMNS.get(experiment, SUMMARY_COLUMNS["reuse"])
    table = Table(title=title)
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(_cell(row, key, fmt) for key, _, fmt in columns))
    console = Console(width=160)
    console.print(table)
    for row in rows:  # .get throughout: a row file edited by hand must not stop the summary
        if row.get("status") != "ok":
            line = f"{row.get('model')} L={row.get('doc_tokens')}: {row.get('status')}: {row.get('reason')}"
            console.print(line, style="yellow", markup=False)  # a reason is text, never markup
