"""The savings calculator: priced by hand on fixture rows, interpolated between measured lengths and
marked so, refused outside them, every figure naming its source, and equal to the committed economics."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from _fixture_rows import KV_PER_TOKEN, write_results

from kvbench.config.errors import ConfigError
from kvbench.economics.savings import answer, main
from kvbench.economics.savings_args import parse

ROOT = Path(__file__).resolve().parents[1]
RATE, EGRESS = 4.59, 0.09  # runpod_h200_secure per GPU-hour, aws_internet per GB


def _usd(ms: float) -> float:
    return ms / 1e3 / 3600 * RATE


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp("savings") / "results")


def _figures(results: Path, *words: str) -> dict:
    title, figures, sources = answer(parse([*words, f"results={results}"]))
    return dict(title=title, sources=sources, **{f.name: f for f in figures})


def test_a_measured_length_priced_by_hand(fixture):
    # fixture host tier at 4096: prefill 90 ms, read 27 ms (fetch 0, h2d 12, decode/attach 1+1, question 13)
    f = _figures(fixture, "tokens=4096", "reads=1e6", "tier=host", "model=qwen3_4b")
    assert f["prefill, device time"].value == pytest.approx(0.090) and "interpolated" not in f["sources"]["rows"]
    assert f["reuse from host, device time"].value == pytest.approx(0.027)
    assert f["prefill, dollars"].value == pytest.approx(_usd(90)) and f["reuse, dollars"].value == pytest.approx(
        _usd(27)
    )
    assert f["prefill / reuse"].value == pytest.approx(90 / 27)
    assert f["N* (break-even reads)"].value == pytest.approx(90 / (90 - 27))
    kv = KV_PER_TOKEN * 4096
    assert f["egress if shipped"].value == pytest.approx(kv / 1e9 * EGRESS)
    assert f["break-even link"].value == pytest.approx(kv / 1e9 / ((90 - 15) / 1e3))  # compute: 27 - 12 h2d
    assert f["hosting per hour"].per_read == "not priced"  # host DRAM: no price on the sheet
    assert f["sources"]["rows"] == f"{fixture / 'run3'} point thostNoneidentity4096 (L=4096)"
    assert "runpod_h200_secure: $4.59 per GPU-hour" in f["sources"]["gpu"] and "https://" in f["sources"]["gpu"]
    assert "aws_internet: $0.09 per GB" in f["sources"]["egress"]
    for name in ("prefill, dollars", "reuse, dollars", "N* (break-even reads)", "egress if shipped", "break-even link"):
        assert f[name].refs and all(ref in f["sources"] for ref in f[name].refs.split(", ")), name


def test_between_measured_lengths_is_interpolated_and_says_so(fixture):
    f = _figures(fixture, "tokens=2048", "reads=80e6", "tier=host", "model=qwen3-4b-random")
    # 2048 is the geometric mean of 1024 and 4096: log-log interpolation gives the geometric mean of the times
    assert f["prefill, device time"].value == pytest.approx(math.sqrt(0.030 * 0.090))
    assert f["reuse from host, device time"].value == pytest.approx(math.sqrt(0.018 * 0.027))
    assert f["egress if shipped"].value == pytest.approx(KV_PER_TOKEN * 2048 / 1e9 * EGRESS)  # bytes: linear
    assert "(interpolated)" in f["prefill, device time"].how
    assert f["sources"]["rows"].startswith("interpolated (times log-log, bytes linearly) between ")
    assert "(L=1024)" in f["sources"]["rows"] and "(L=4096)" in f["sources"]["rows"]


def test_hosting_is_priced_where_the_sheet_prices_the_tier(fixture):
    gpu = _figures(fixture, "tokens=4096", "reads=1", "tier=gpu")
    assert gpu["hosting per hour"].value == pytest.approx(KV_PER_TOKEN * 4096 / 1e9 * RATE / 141)  # HBM share
    wan = _figures(fixture, "tokens=4096", "reads=1", "tier=wan")
    assert wan["hosting per hour"].value == pytest.approx(KV_PER_TOKEN * 4096 / 1e9 * 0.023 / 730)  # S3 Standard
    assert "aws_s3_standard" in wan["sources"]["hosting"]


@pytest.mark.parametrize(
    "words, message",
    [
        (["tokens=100000", "reads=1", "tier=host"], "tokens=100000 is outside the measured lengths 1024-4096"),
        (["tokens=512", "reads=1", "tier=host"], "tokens=512 is outside the measured lengths 1024-4096"),
        (["tokens=4096", "reads=1", "tier=tape"], "tier='tape' is invalid: allowed"),
        (["tokens=4096", "reads=1", "tier=host", "model=llama9"], "model='llama9' is invalid: allowed"),
        (["tokens=4096", "reads=1", "tier=disk", "codec=zstd-9"], "codec='zstd-9' is invalid: allowed identity"),
        (["tokens=4096", "reads=1", "colour=red"], "'colour' is not a key: allowed tokens | reads"),
        (["tokens=4096"], "reads is missing"),
        (["tokens=4.5e3", "reads=1"], "tokens="),
        (["tokens=4096", "reads=-1"], "reads='-1' is invalid: allowed a number > 0"),
    ],
)
def test_what_cannot_be_answered_is_refused_in_one_line(fixture, capsys, words, message):
    assert main([*words, f"results={fixture}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kvbench.savings: ") and message in err, err


def test_a_disk_tier_with_two_page_cache_states_needs_one_named(tmp_path):
    rows = [
        json.loads(line) for line in (write_results(tmp_path / "r") / "run3" / "rows.jsonl").read_text().splitlines()
    ]
    cold = [dict(r, tier_variant="cold", point_id=r["point_id"] + "c") for r in rows if r["tier"] == "disk"]
    (tmp_path / "r" / "run3" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + cold))
    with pytest.raises(ConfigError, match=r"variant=None is invalid: allowed cold \| warm"):
        answer(parse(["tokens=4096", "reads=1", "tier=disk", f"results={tmp_path / 'r'}"]))
    f = _figures(tmp_path / "r", "tokens=4096", "reads=1", "tier=disk", "variant=cold")
    assert "KV on disk cold" in f["title"]


def test_the_paper_scenario_on_committed_rows_equals_the_committed_economics():
    """At a measured length the calculator and +exp=economics price the same row the same way."""
    econ = [json.loads(line) for line in (ROOT / "results/economics/base/rows.jsonl").read_text().splitlines()]
    row = next(
        r
        for r in econ
        if r["econ_row"] == "cost" and r["tier"] == "host" and r["doc_tokens"] == 4096 and r["codec"] == "identity"
    )
    f = _figures(ROOT / "results", "tokens=4096", "reads=80e6", "tier=host", "model=qwen3_4b")
    assert f["prefill, dollars"].value == pytest.approx(row["prefill_usd"])
    assert f["reuse, dollars"].value == pytest.approx(row["reuse_usd"])
    assert f["N* (break-even reads)"].value == pytest.approx(row["breakeven_reads"])
    assert f["egress if shipped"].value == pytest.approx(row["egress_usd_raw"])
    assert f["break-even link"].value == pytest.approx(row["breakeven_link_gbps"])


def test_one_command_answers_the_paper_scenario(capsys):
    proc = subprocess.run(
        [sys.executable, "-m", "kvbench.savings", "tokens=3774", "reads=80e6", "tier=host", "model=qwen3_4b"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in (
        "prefill, device time",
        "reuse from host",
        "prefill / reuse",
        "N* (break-even reads)",
        "egress if shipped",
        "hosting per hour",
        "break-even link",
    ):
        assert name in out, name
    assert "(interpolated)" in out and "rows: interpolated" in out and "gpu: cost.gpu_hour." in out
