"""Figures and tables are built from rows alone."""

from __future__ import annotations

from kvbench.report.__main__ import main
from kvbench.results import ResultStore
from kvbench.rows import make_row


def _reuse_row(model, weights, length, speedup):
    return make_row(experiment="reuse", point_id=f"{model}{length}", model=model, weights=weights,
                    dtype="bfloat16", deterministic=False, doc_tokens=length, prefill_ms=speedup * 10.0,
                    reuse_ms=10.0, reuse_graph_ms=5.0, speedup=speedup, speedup_ci_low=speedup * 0.9,
                    speedup_ci_high=speedup * 1.1, speedup_graph=2 * speedup, exact_fraction=1.0,
                    bitwise_twostage=1.0)


def test_report_writes_every_figure_and_table(tmp_path):
    store = ResultStore(tmp_path / "results" / "sweep" / "model=x")
    for length, speedup in ((256, 1.0), (1024, 3.0), (4096, 9.0)):
        store.append(_reuse_row("x", "random", length, speedup))
    tiers = ResultStore(tmp_path / "results" / "tiers" / "tier=gpu")
    for length, reuse in ((1024, 50.0), (8192, 40.0)):
        tiers.append(make_row(experiment="tiers", point_id=str(length), model="x", weights="random",
                              dtype="bfloat16", device="gpu0", tier="gpu", tier_variant=None, codec="identity",
                              doc_tokens=length, prefill_ms=length / 40, reuse_ms=reuse, fetch_ms=0.0,
                              decode_ms=0.0, h2d_ms=0.0, attach_ms=1.0, query_ms=reuse - 1))
    codecs = ResultStore(tmp_path / "results" / "compress" / "model=x")
    for codec, lossless, ratio in (("zstd-3", True, 1.3), ("int4-kivi", False, 3.2)):
        codecs.append(make_row(experiment="compress", point_id=codec, model="x", weights="real", dtype="bfloat16",
                               doc_tokens=1024, codec=codec, codec_lossless=lossless, compress_ratio=ratio,
                               bound_channel_ratio=1.5, exact_fraction=None if lossless else 0.25))
    main(str(tmp_path / "results"), str(tmp_path / "paper"))
    figures = {p.name for p in (tmp_path / "paper" / "figures").iterdir()}
    assert {"latency_vs_length.pdf", "speedup_vs_length.png", "exactness_vs_length.pdf",
            "tier_stages_8192.pdf", "tier_reuse_vs_length.pdf", "codec_ratios.pdf"} <= figures
    codec_table = (tmp_path / "paper" / "tables" / "codecs.tex").read_text()
    assert "zstd-3" in codec_table and "int4-kivi" in codec_table and "0.25" in codec_table
    assert "8192" in (tmp_path / "paper" / "tables" / "crossover.tex").read_text()
    assert "random weights" in (tmp_path / "paper" / "tables" / "latency.tex").read_text()
