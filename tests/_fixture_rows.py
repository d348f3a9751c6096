"""A small results tree with every kind of row the cost model and the report read.

Two vintages of reuse rows: ``llama-old`` as the first H200 runs wrote them (no ``reader``;
``reuse_graph_ms``), ``qwen3-4b-random`` as the new reader code writes them (a row per
``reader``, ``prefill_best_ms``, floors, efficiencies, Wilson intervals). Rows whose columns
are not all in today's schema (the old vintage's ``reuse_graph_ms``; Wilson intervals) are written
as plain JSON, as their writer did.
Numbers are round so tests can check plotted and priced values by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from kvbench.rows.schema import make_row

H200 = dict(device="NVIDIA H200", dtype="bfloat16", status="ok", deterministic=False)
QWEN = dict(H200, model="qwen3-4b-random", weights="random")
LLAMA = dict(H200, model="llama-old", weights="random")
REAL = dict(H200, model="tiny-real", weights="real", attn_impl="sdpa")
KV_PER_TOKEN = 147_456  # Qwen3-4B shape, bf16
LENGTHS = (1024, 4096)
# (reader, reuse ms at 1024, at 4096): prefill_best 30 / 90 ms
READERS = (("hf", 31.0, 58.0), ("graph", 10.0, 15.0), ("fast", 3.0, 4.5))
PREFILL_BEST = {1024: 30.0, 4096: 90.0}


def _write(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def new_reuse_rows() -> list[dict]:
    rows = []
    for i, length in enumerate(LENGTHS):
        for reader, *reuse in READERS:
            rows.append(
                dict(
                    QWEN,
                    experiment="reuse",
                    point_id=f"q{length}{reader}",
                    doc_tokens=length,
                    query_tokens=32,
                    reader=reader,
                    prefill_ms=PREFILL_BEST[length] * 1.2,
                    prefill_fast_ms=PREFILL_BEST[length],
                    prefill_best_ms=PREFILL_BEST[length],
                    reuse_ms=reuse[i],
                    speedup=PREFILL_BEST[length] / reuse[i],
                    kv_bytes=KV_PER_TOKEN * length,
                    reuse_efficiency=0.1 * (i + 1),
                    prefill_efficiency=0.3 + 0.2 * i,
                    exact_fraction=0.75,
                    exact_fraction_ci_low=0.41,
                    exact_fraction_ci_high=0.93,
                    num_docs=8,
                )
            )
    return rows


def old_reuse_rows() -> list[dict]:
    return [
        dict(
            LLAMA,
            experiment="reuse",
            point_id=f"l{length}",
            doc_tokens=length,
            query_tokens=18,
            prefill_ms=2.0 * length / 64,
            prefill_graph_ms=None,
            reuse_ms=30.0,
            reuse_graph_ms=10.0,
            speedup=2.0 * length / 64 / 30.0,
            kv_bytes=2 * KV_PER_TOKEN * length,
            num_docs=8,
            exact_fraction=0.5,
            bitwise_twostage=1.0,
            first_token_agree=1.0,
            max_abs_logit_diff=0.1,
        )
        for length in LENGTHS
    ]


def tier_rows() -> list[dict]:
    # tier, variant, codec, fetch, h2d, link GB/s
    spec = (
        ("gpu", None, "identity", 0.0, 0.0, None),
        ("host", None, "identity", 0.0, 12.0, 50.0),
        ("disk", "warm", "identity", 100.0, 12.0, 5.0),
        ("wan", "same-zone", "identity", 500.0, 12.0, 1.25),
        ("disk", "warm", "int4-kivi", 35.0, 4.0, 5.0),
    )
    rows = []
    for length in LENGTHS:
        for tier, variant, codec, fetch, h2d, link in spec:
            scale = length / 4096
            stored = KV_PER_TOKEN * length / (3.2 if codec == "int4-kivi" else 1.0)
            rows.append(
                dict(
                    QWEN,
                    experiment="tiers",
                    point_id=f"t{tier}{variant}{codec}{length}",
                    doc_tokens=length,
                    tier=tier,
                    tier_variant=variant,
                    codec=codec,
                    prefill_ms=PREFILL_BEST[length],
                    prefill_graph_ms=PREFILL_BEST[length] * 1.3,
                    fetch_ms=fetch * scale,
                    decode_ms=1.0,
                    h2d_ms=h2d * scale,
                    attach_ms=1.0,
                    query_ms=13.0,
                    reuse_ms=fetch * scale + 1.0 + h2d * scale + 1.0 + 13.0,
                    kv_bytes=KV_PER_TOKEN * length,
                    stored_bytes=int(stored),
                    link_gbps=link,
                    tier_query="cuda_graph",
                )
            )  # old vintage
    return rows


def compress_rows() -> list[dict]:
    """Real-weight KV (what prices egress) and a random-weight KV made more compressible, which
    must never stand in for it."""
    real = dict(H200, model="smol-real", weights="real")
    return [
        make_row(
            **meta,
            experiment="compress",
            point_id=meta["model"] + codec,
            doc_tokens=1024,
            codec=codec,
            codec_lossless=lossless,
            compress_ratio=ratio * scale,
            bound_channel_ratio=1.54,
            exact_fraction=None if lossless else 0.25,
        )
        for meta, scale in ((real, 1.0), (QWEN, 1.2))
        for codec, lossless, ratio in (("zstd-3", True, 1.3), ("planes-zstd", True, 1.5), ("int4-kivi", False, 3.2))
    ]


def throughput_rows() -> list[dict]:
    rows = []
    for length in LENGTHS:
        for method, per_reader in (("naive", {1: 5.0, 4: 3.0, 16: 2.0}), ("shared", {1: 5.0, 4: 1.6, 16: 0.5})):
            for batch, ms in per_reader.items():
                rows.append(
                    dict(
                        QWEN,
                        experiment="throughput",
                        point_id=f"b{length}{method}{batch}",
                        doc_tokens=length,
                        query_tokens=32,
                        method=method,
                        batch=batch,
                        batch_ms=ms * batch,
                        per_reader_ms=ms,
                        per_reader_floor_ms=0.2 + 2.0 / batch,
                        compute_floor_ms=0.2,
                        memory_floor_ms=2.0 / batch,
                        efficiency=(0.2 + 2.0 / batch) / ms,
                        tokens_per_s=32 * batch / ms * 1e3,
                    )
                )
    return rows


def exactness_rows() -> list[dict]:
    """The exactness matrix's untimed rows: a real model in two dtypes and two readers over 32
    documents, the kernel-choice control (an eager one-pass reference) at 1024, and a later
    8-document check of that point and of another length, which the matrix's rows outrank."""
    rows = [
        dict(
            REAL,
            dtype=dtype,
            experiment="reuse",
            point_id=f"e-{dtype}-{reader}-{length}",
            reader=reader,
            doc_tokens=length,
            num_docs=32,
            exact_fraction=exact / 32,
            reference_attn_impl="sdpa",
            bitwise_twostage=29 / 30 if reader == "hf" else 1.0,
            bitwise_twostage_n=30 if reader == "hf" else 32,
            timestamp="2026-11-30T07:00:00+00:00",
        )
        for dtype, exact in (("bfloat16", 24), ("float32", 32))
        for reader in ("hf", "fast")
        for length in LENGTHS
    ]
    rows.append(dict(rows[0], point_id="e-control", reference_attn_impl="eager", exact_fraction=16 / 32))
    rows += [
        dict(
            REAL,
            experiment="reuse",
            point_id=f"e-sweep-{length}",
            doc_tokens=length,
            num_docs=8,
            exact_fraction=1.0,
            timestamp="2026-11-30T08:00:00+00:00",
        )
        for length in (1024, 2048)
    ]
    return rows


def write_results(root: Path, throughput: bool = True) -> Path:
    """The fixture under ``root``, in folders whose names say nothing: rows are selected by their
    columns, never by where they lie."""
    _write(root / "run1", new_reuse_rows())
    _write(root / "run2" / "x", old_reuse_rows())
    _write(root / "run3", tier_rows())
    _write(root / "run4", compress_rows())
    _write(root / "run6", exactness_rows())
    if throughput:
        _write(root / "run5", throughput_rows())
    return root
