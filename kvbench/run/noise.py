"""When a summary's timings should not be read as results: the "noisy: machine busy?" flag.

A row is flagged when its speedup's 95% interval spans 1 (reuse may be slower or faster), when
the interval is wider than a factor of 2, or when prefill time runs backwards with length
(a longer document prefilled faster than a shorter one of the same model, dtype and device:
prefill only grows with length, so one of the two was slowed down by something else).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

FLAG = "noisy: machine busy?"
WIDE = 2.0  # an interval wider than this factor says little


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def interval_reasons(row: dict[str, Any]) -> list[str]:
    """Why the row's speedup interval is not a result (empty when it is, or when it has none)."""
    low, high = _number(row.get("speedup_ci_low")), _number(row.get("speedup_ci_high"))
    if low is None or high is None or low <= 0:
        return []
    reasons = []
    if low <= 1 <= high:
        reasons.append(f"speedup CI {low:.2g}-{high:.2g} spans 1")
    if high / low > WIDE:
        reasons.append(f"speedup CI {low:.2g}-{high:.2g} is {high / low:.1f}x wide")
    return reasons


def backwards_prefill(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Rows (by index) whose prefill is slower than at a longer length of the same model, dtype and device."""
    groups: dict[tuple, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for i, row in enumerate(rows):
        ms, length = _number(row.get("prefill_best_ms")), row.get("doc_tokens")
        if ms is not None and isinstance(length, int) and row.get("status") == "ok":
            key = tuple(row.get(k) for k in ("model", "weights", "dtype", "device", "tier", "tier_variant"))
            groups[key][length].append((i, ms))
    out: dict[int, str] = {}
    for by_length in groups.values():
        lengths = sorted(by_length)
        for a, short in enumerate(lengths):
            for long in lengths[a + 1 :]:
                slow = max(ms for _, ms in by_length[short])
                fast = min(ms for _, ms in by_length[long])
                if slow > fast:
                    why = f"prefill {slow:.0f} ms at L={short} but {fast:.0f} ms at L={long}"
                    for i, _ in by_length[short] + by_length[long]:
                        out.setdefault(i, why)
    return out


def noise_reasons(rows: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Row index -> the reasons it is flagged noisy (rows not flagged are left out)."""
    backwards = backwards_prefill(rows)
    out = {}
    for i, row in enumerate(rows):
        reasons = interval_reasons(row) + ([backwards[i]] if i in backwards else [])
        if reasons:
            out[i] = reasons
    return out
