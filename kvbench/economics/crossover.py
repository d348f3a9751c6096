"""Crossover lengths: from which document length reuse beats the best prefill, and how sure that is.

A pure function over rows (dicts or a DataFrame's records), so reports and the cost model
reuse it. ``python -m kvbench.economics.crossover RESULTS...`` prints the table for run folders,
with a legend under it that says what every column means (:data:`LEGEND`).

Like is compared with like. Prefill is the best one measured (:func:`best_prefill_ms`);
reuse is the path the row's headline reports (:func:`headline_reuse`). Rows group by every
identity column, so a control run (``deterministic=true``, another reader, another tier)
never merges into the main sweep. A length is a *win* only when the speedup's 95% CI lies
above 1, a *loss* only when it lies below 1, and otherwise it is *not resolved*. A row
without a CI for this very ratio is judged on its point estimate, and the output says so.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Every column that says what was measured (query_tokens is not one: it varies per document).
IDENTITY = (
    "experiment",
    "model",
    "weights",
    "model_fingerprint",
    "dtype",
    "device",
    "attn_impl",
    "deterministic",
    "reader",
    "tier",
    "tier_variant",
    "tier_io",
    "tier_query",
    "codec",
    "method",
    "batch",
)
WIN, LOSS, NOT_RESOLVED = "win", "loss", "not resolved"


def _missing(value: Any) -> bool:
    """None, or NaN as a DataFrame writes a missing value."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _norm(value: Any) -> Any:
    """Missing values group together as ``""``."""
    return "" if _missing(value) else value


def best_prefill_ms(row: Mapping[str, Any]) -> float:
    """``prefill_best_ms`` where the row has it; in older rows the faster of eager and CUDA-graph prefill."""
    if not _missing(row.get("prefill_best_ms")):
        return row["prefill_best_ms"]
    graph = row.get("prefill_graph_ms")
    return row["prefill_ms"] if _missing(graph) else min(row["prefill_ms"], graph)


def headline_reuse(row: Mapping[str, Any]) -> tuple[str, float | None]:
    """The column and value of the reuse the row's headline speedup reports.

    ``reuse_ms`` (timed through the row's ``reader``), except in rows older than the
    ``reader`` column that timed a CUDA-graph reader: their headline is ``reuse_graph_ms``
    (``speedup_graph``), and HF eager reuse is never set against a graph prefill.
    """
    if _missing(row.get("reader")) and not _missing(row.get("reuse_graph_ms")):
        return "reuse_graph_ms", row["reuse_graph_ms"]
    return "reuse_ms", None if _missing(row.get("reuse_ms")) else row["reuse_ms"]


@dataclass(frozen=True)
class Comparison:
    """One row's best prefill against its headline reuse, at one document length."""

    doc_tokens: int
    prefill_ms: float
    reuse_ms: float
    reuse_column: str
    ci: tuple[float, float] | None  # 95% CI of prefill_ms / reuse_ms; None where the row has none for it

    @property
    def speedup(self) -> float:
        return self.prefill_ms / self.reuse_ms

    @property
    def verdict(self) -> str:
        """win | loss | not resolved: by the CI where there is one, else by the point estimate."""
        low, high = self.ci or (self.speedup, self.speedup)
        return WIN if low > 1 else LOSS if high < 1 else NOT_RESOLVED


def comparison(row: Mapping[str, Any]) -> Comparison | None:
    """The row's comparison, or None when it is not ``ok`` or lacks a prefill or a reuse time.

    The row's ``speedup_ci_low/high`` are used only when its ``speedup`` is this very ratio,
    so an interval of another pairing (or of a mis-computed speedup) is never borrowed.
    """
    column, reuse = headline_reuse(row)
    if (
        row.get("status") != "ok"
        or reuse is None
        or (_missing(row.get("prefill_best_ms")) and _missing(row.get("prefill_ms")))
    ):
        return None
    prefill = best_prefill_ms(row)
    low, high, speedup = row.get("speedup_ci_low"), row.get("speedup_ci_high"), row.get("speedup")
    ci = None
    if column == "reuse_ms" and low is not None and high is not None and speedup is not None:
        if not any(map(_missing, (low, high, speedup))) and math.isclose(speedup, prefill / reuse, rel_tol=1e-6):
            ci = (float(low), float(high))
    return Comparison(int(row["doc_tokens"]), prefill, reuse, column, ci)


def _merge(verdicts: list[str]) -> str:
    """Several rows at one length: a win or a loss only when every row agrees."""
    return verdicts[0] if len(set(verdicts)) == 1 else NOT_RESOLVED


def _label(lengths: list[int], verdicts: list[str], first: int | None) -> str:
    unresolved = [str(n) for n, v in zip(lengths, verdicts) if v == NOT_RESOLVED]
    if first is not None:
        main = f"<= {lengths[0]}" if first == 0 else str(lengths[first])
    else:
        main = "" if verdicts[-1] == NOT_RESOLVED else f"none up to {lengths[-1]}"
    note = f"not resolved at {', '.join(unresolved)}" if unresolved else ""
    return "; ".join(part for part in (main, note) if part)


def _interpolate(lo: int, hi: int, s_lo: float, s_hi: float) -> float | None:
    """Length where the speedup crosses 1, log-log between a losing and a winning length."""
    if not s_lo < 1 < s_hi:
        return None
    t = -math.log(s_lo) / (math.log(s_hi) - math.log(s_lo))
    return math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))


STORED_TIERS = ("disk", "redis", "wan")  # the tiers that keep bytes and choose a loader


def tier_io(row: Mapping[str, Any]) -> Any:
    """The loader a tier row read with: its ``tier_io``, or ``serial`` for a stored tier's row from
    before the streaming loader (which had only that one)."""
    found = row.get("tier_io")
    if _missing(found) and row.get("tier") in STORED_TIERS:
        return "serial"
    return found


def crossovers(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each identity group (:data:`IDENTITY`), where reuse starts to win for good.

    Returns
    -------
    list of dict
        The group's identity columns, plus ``crossover_tokens``: the shortest measured length
        from which every longer measured length is a win (None if the longest is not);
        ``crossover_interp``: where the speedup crosses 1, interpolated log-log between the
        loss just below the crossover and it (None without such a pair); ``not_resolved``:
        lengths whose CI contains 1; ``point_estimate``: lengths judged without a CI;
        ``reuse_column``: the reuse column(s) compared; ``lengths``, ``l_min``, ``l_max``:
        the measured lengths; ``label``: the crossover length, ``<= l_min`` or
        ``none up to l_max``, with ``not resolved at ...`` where lengths were not resolved.
    """
    groups: dict[tuple, list[Comparison]] = defaultdict(list)
    for row in rows:
        if (c := comparison(row)) is not None:
            groups[tuple(_norm(tier_io(row) if k == "tier_io" else row.get(k)) for k in IDENTITY)].append(c)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        by_length: dict[int, list[Comparison]] = defaultdict(list)
        for c in members:
            by_length[c.doc_tokens].append(c)
        lengths = sorted(by_length)
        verdicts = [_merge([c.verdict for c in by_length[n]]) for n in lengths]
        speedups = [statistics.median(c.speedup for c in by_length[n]) for n in lengths]
        first = next((i for i in range(len(lengths)) if all(v == WIN for v in verdicts[i:])), None)
        interp = None
        if first and verdicts[first - 1] == LOSS:
            interp = _interpolate(lengths[first - 1], lengths[first], speedups[first - 1], speedups[first])
        out.append(
            dict(
                zip(IDENTITY, key),
                crossover_tokens=None if first is None else lengths[first],
                crossover_interp=interp,
                lengths=lengths,
                l_min=lengths[0],
                l_max=lengths[-1],
                not_resolved=[n for n, v in zip(lengths, verdicts) if v == NOT_RESOLVED],
                point_estimate=sorted({c.doc_tokens for c in members if c.ci is None}),
                reuse_column=", ".join(sorted({c.reuse_column for c in members})),
                label=_label(lengths, verdicts, first),
            )
        )
    return out


def _judged_by(c: Mapping[str, Any]) -> str:
    """How a group's lengths were judged: all by CI, all by point estimate, or which by which."""
    points = c["point_estimate"]
    if not points:
        return "95% CI"
    if len(points) == len(c["lengths"]):
        return "point estimate (no CI)"
    return f"95% CI; point estimate at {', '.join(map(str, points))}"


# What each column of the printed table means (printed under it).
LEGEND = {
    "reuse": "the reuse time each speedup divides the best prefill by: reuse_ms (the row's reader), or "
    "reuse_graph_ms (rows older than the reader column: their CUDA-graph reader)",
    "crossover": "the shortest measured length from which reuse beats the best prefill at every longer measured "
    "length; '<= L': already at the shortest length measured; 'none up to L': the longest length measured is "
    "no win; 'not resolved at ...': lengths whose 95% CI contains 1",
    "interpolated": "tokens where the speedup crosses 1, interpolated log-log between the measured loss just below "
    "the crossover and the crossover; '-' where the length just below is not a loss (or there is none)",
    "judged by": "what decides a win (above 1) or a loss (below 1): the speedup's 95% CI, or its point estimate at "
    "the lengths listed, whose rows carry no CI for their headline speedup",
}


def legend(shown: list[str]) -> list[str]:
    """The lines under the table: what the identity columns are, then each other column."""
    lines = [
        f"{', '.join(shown)}: what tells the groups apart (rows that differ in any identity column never merge; "
        "a column with one value in every group is in the title)"
    ]
    return lines + [f"{name}: {text}" for name, text in LEGEND.items()]


def main(argv: list[str]) -> None:
    """``python -m kvbench.economics.crossover [RESULTS ...] [--include-local]``: the crossover table.

    A results tree with a ``REFERENCE`` list is read through it (its committed reference runs)
    unless ``--include-local`` is given; any other folder is read whole.
    """
    from rich.console import Console
    from rich.table import Table

    from kvbench.rows.reference import result_paths
    from kvbench.rows.store import load_rows

    include_local = "--include-local" in argv
    paths = [a for a in argv if a != "--include-local"] or ["results"]
    found = crossovers(load_rows([p for path in paths for p in result_paths(path, include_local)]).to_dict("records"))
    console = Console(width=200)
    if not found:
        console.print(f"no ok rows with a prefill and a reuse time under {' '.join(paths)}")
        return
    # Columns one value throughout go into the title; the table shows what tells groups apart.
    shown = [k for k in IDENTITY if len({str(c[k]) for c in found}) > 1] or ["model"]
    common = ", ".join(f"{k}={found[0][k]}" for k in IDENTITY if k not in shown and found[0][k] != "")
    table = Table(
        title=f"crossover: shortest length from which reuse beats the best prefill at every longer length\n({common})"
    )
    for header in (*shown, *LEGEND):
        table.add_column(header)
    for c in found:
        interp = "-" if c["crossover_interp"] is None else f"{c['crossover_interp']:.0f}"
        table.add_row(*(str(c[k]) for k in shown), c["reuse_column"], c["label"], interp, _judged_by(c))
    console.print(table)
    for line in legend(shown):
        console.print(line, markup=False)


if __name__ == "__main__":
    main(sys.argv[1:])
