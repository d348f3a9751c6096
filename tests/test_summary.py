"""The summary table: as wide as the terminal, nothing cut, speedup intervals, and noisy rows flagged."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from kvbench.run.console import print_summary
from kvbench.run.noise import FLAG, backwards_prefill, interval_reasons, noise_reasons


def _row(L, reader, prefill, reuse, low, high, model="a-very-long-model-name-that-would-not-fit-1b", **extra):
    return dict(
        experiment="reuse",
        model=model,
        weights="real",
        dtype="float32",
        doc_tokens=L,
        reader=reader,
        status="ok",
        prefill_best_ms=prefill,
        reuse_ms=reuse,
        speedup=prefill / reuse,
        speedup_ci_low=low,
        speedup_ci_high=high,
        reuse_floor_ms=0.5,
        reuse_efficiency=0.5 / reuse,
        kv_bytes=2**20 * L / 256,
        num_docs=8,
        exact_fraction=1.0,
        exact_fraction_ci_low=0.676,
        exact_fraction_ci_high=1.0,
        **extra,
    )


# The contended run: prefill 1501 ms at 256 tokens but 957 at 1024, a 0.8x speedup with CI 0.41-6.4.
ROWS = [
    _row(256, "fast", 1501.0, 1876.0, 0.41, 6.4),
    _row(256, "hf", 1501.0, 300.0, 4.6, 5.4),
    _row(1024, "fast", 957.0, 100.0, 9.0, 10.0),
    _row(1024, "hf", 957.0, 120.0, 7.5, 8.4),
    _row(4096, "fast", 4000.0, 200.0, 18.0, 22.0, model="other-model"),
]


def _render(rows, width: int) -> str:
    out = io.StringIO()
    print_summary(rows, "default: test", Console(file=out, width=width, color_system=None))
    return out.getvalue()


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_nothing_is_cut_at_any_width(width):
    text = _render(ROWS, width)
    assert "…" not in text and "..." not in text
    assert max(len(line) for line in text.splitlines()) <= width
    assert "model M1 = a-very-long-model-name-that-would-not-fit-1b" in text  # abbreviated, with a legend
    assert "other-model" in text and "0.41-6.4" in text  # the speedup's interval under it
    if width >= 80:  # headers whole (narrower, they wrap inside their column)
        assert all(h in text for h in ("repeat-", "2-stage", "95% CI", "prefill", "reader"))


def test_values_every_row_shares_move_to_one_line():
    text = _render([r for r in ROWS if r["model"] == "other-model"], 100)  # one row of its own
    assert "every row: model other-model, weights real, dtype float32" in text
    assert text.count("other-model") == 1


def test_noisy_rows_are_flagged_with_their_reasons():
    text = _render(ROWS, 120)
    assert len(re.findall(r"^.*\S.*\bnoisy\s*$", text, re.M)) == 4  # under the status of each flagged row
    lines = [line for line in text.splitlines() if line.startswith(FLAG)]
    assert (
        len(lines) == 4 and "L=256 reader=fast: speedup CI 0.41-6.4 spans 1; speedup CI 0.41-6.4 is 15.6x wide" in text
    )
    backwards = "prefill 1501 ms at L=256 but 957 ms at L=1024"
    assert f"{FLAG} L=256 reader=hf: {backwards}" in lines and f"{FLAG} L=1024 reader=fast: {backwards}" in lines
    assert not any("L=4096" in line for line in lines)  # another model: not compared


def test_interval_rules():
    assert interval_reasons(dict(speedup_ci_low=0.41, speedup_ci_high=6.4)) == [
        "speedup CI 0.41-6.4 spans 1",
        "speedup CI 0.41-6.4 is 15.6x wide",
    ]
    assert interval_reasons(dict(speedup_ci_low=3.0, speedup_ci_high=7.0)) == ["speedup CI 3-7 is 2.3x wide"]
    assert interval_reasons(dict(speedup_ci_low=3.0, speedup_ci_high=5.9)) == []
    assert interval_reasons(dict(speedup_ci_low=None, speedup_ci_high=None)) == []


def test_prefill_running_backwards_with_length_is_flagged():
    rows = [_row(256, "fast", 1501.0, 100.0, 14, 16, model="m"), _row(1024, "fast", 957.0, 100.0, 9, 10, model="m")]
    assert backwards_prefill(rows) == {0: "prefill 1501 ms at L=256 but 957 ms at L=1024"} | {
        1: "prefill 1501 ms at L=256 but 957 ms at L=1024"
    }
    rows[1]["prefill_best_ms"] = 3000.0
    assert noise_reasons(rows) == {}
    rows[1]["model"] = "another"  # another model's prefill is not compared
    rows[1]["prefill_best_ms"] = 100.0
    assert backwards_prefill(rows) == {}
