"""Crossover lengths: from which document length reuse from a tier beats prefill.

A pure function over rows (dicts or a DataFrame's records), so reports and the cost model
reuse it. ``python -m kvbench.crossover RESULTS...`` prints the table for run folders.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from typing import Any, Iterable, Mapping

GROUP = ("model", "dtype", "device", "tier", "tier_variant", "codec")


def _norm(value: Any) -> Any:
    """Missing values (None, NaN from a DataFrame) group together as ``""``."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def best_prefill_ms(row: Mapping[str, Any]) -> float:
    """The faster of eager and CUDA-graph prefill, so reuse never crosses a slow prefill."""
    graph = _norm(row.get("prefill_graph_ms"))
    return row["prefill_ms"] if graph == "" else min(row["prefill_ms"], graph)


def crossovers(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each (model, dtype, device, tier, tier_variant, codec), where reuse starts to win.

    Only ``status == "ok"`` rows with both ``prefill_ms`` and ``reuse_ms`` count; prefill is
    :func:`best_prefill_ms`.

    Returns
    -------
    list of dict
        The group's columns, plus ``crossover_tokens``: the shortest measured length from
        which ``reuse_ms`` < prefill holds at every longer measured length (None if not
        at the longest); ``crossover_interp``: the length where the speedup crosses 1,
        interpolated log-log between the last losing and first winning length (None when
        there is no bracketing pair); ``l_min``/``l_max``: the measured range; ``label``:
        the length, ``<= l_min``, or ``none up to l_max``.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("status") == "ok" and _norm(r.get("reuse_ms")) != "" and _norm(r.get("prefill_ms")) != "":
            groups[tuple(_norm(r.get(k)) for k in GROUP)].append(r)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        members = sorted(members, key=lambda r: r["doc_tokens"])
        lengths = [int(r["doc_tokens"]) for r in members]
        speedups = [best_prefill_ms(r) / r["reuse_ms"] for r in members]
        wins = [s > 1 for s in speedups]
        first = next((i for i in range(len(wins)) if all(wins[i:])), None)
        interp = None
        if first is not None and first > 0:
            lo, hi = members[first - 1], members[first]
            s0, s1 = math.log(speedups[first - 1]), math.log(speedups[first])
            t = -s0 / (s1 - s0)
            interp = math.exp(math.log(lo["doc_tokens"]) + t * (math.log(hi["doc_tokens"]) - math.log(lo["doc_tokens"])))
        if first is None:
            label = f"none up to {lengths[-1]}"
        elif first == 0:
            label = f"<= {lengths[0]}"
        else:
            label = str(lengths[first])
        out.append(dict(zip(GROUP, key), crossover_tokens=None if first is None else lengths[first],
                        crossover_interp=interp, l_min=lengths[0], l_max=lengths[-1], label=label))
    return out


def main(paths: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from kvbench.results import load_rows

    table = Table(title="crossover: shortest document length from which reuse beats prefill")
    for header in (*GROUP, "crossover", "interpolated"):
        table.add_column(header)
    for c in crossovers(load_rows(paths).to_dict("records")):
        interp = "-" if c["crossover_interp"] is None else f"{c['crossover_interp']:.0f}"
        table.add_row(*(str(c[k]) for k in GROUP), c["label"], interp)
    Console(width=160).print(table)


if __name__ == "__main__":
    main(sys.argv[1:] or ["results"])
