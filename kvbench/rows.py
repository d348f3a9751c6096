"""The one row type every experiment emits. Figures, tables and the cost model read rows.

Each field's ``metadata["doc"]`` is its documentation; ``python -m kvbench.rows`` prints the
schema as a Markdown table (the README's copy is made that way). Times are milliseconds,
medians over repeats after warmup unless the name says otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

STATUSES = ("ok", "skipped", "oom", "failed")


def col(doc: str, default: Any = None):
    """A schema column with its documentation."""
    return field(default=default, metadata={"doc": doc})


@dataclass
class Row:
    """One measurement point's results. ``None`` means not measured for this point."""

    # --- identity of the point -----------------------------------------------------------
    experiment: str = col("experiment kind that produced the row (reuse, tiers, compress, ...)")
    point_id: str = col("hash of the point's coordinates; a re-run skips points already ok")
    model: str = col("model name from the model config")
    weights: str = col("`real` (trained checkpoint) or `random` (random-initialised, timing only)")
    model_fingerprint: str = col("hash of the model's architecture config and sampled weights")
    tokenizer: str = col("tokenizer name (random models borrow the embedded SmolLM2 tokenizer)")
    dtype: str = col("compute and KV dtype: float32 | bfloat16 | float16")
    device: str = col("device name, e.g. `NVIDIA H200` or `cpu`")
    attn_impl: str = col("transformers attention implementation: sdpa | eager")
    deterministic: bool = col("torch deterministic algorithms + CUBLAS_WORKSPACE_CONFIG were forced")
    doc_tokens: int = col("document length L in tokens (exact)")
    query_tokens: int = col("question length in tokens (of the timed document's question)")
    doc_hash: str = col("SHA-256 (first 16 hex) of the timed document's token ids")
    corpus_hash: str = col("SHA-256 (first 16 hex) over the hashes of every document in the point")
    num_docs: int = col("documents x questions the exactness rates are over")
    # --- latency ---------------------------------------------------------------------------
    prefill_ms: float = col("one-pass prefill of document + question to first-token logits")
    prefill_ms_p25: float = col("25th percentile of prefill_ms")
    prefill_ms_p75: float = col("75th percentile of prefill_ms")
    reuse_ms: float = col("reuse: attach the stored KV to a fresh cache + question forward")
    reuse_ms_p25: float = col("25th percentile of reuse_ms")
    reuse_ms_p75: float = col("75th percentile of reuse_ms")
    speedup: float = col("prefill_ms / reuse_ms (ratio of medians); tiers: the faster of prefill_ms and "
                         "prefill_graph_ms over reuse_ms")
    speedup_ci_low: float = col("95% bootstrap CI of speedup, lower bound")
    speedup_ci_high: float = col("95% bootstrap CI of speedup, upper bound")
    reuse_graph_ms: float = col("reuse through a static cache with the question's forward replayed as a CUDA "
                                "graph (attach copies the KV in); GPU only")
    reuse_graph_ms_p25: float = col("25th percentile of reuse_graph_ms")
    reuse_graph_ms_p75: float = col("75th percentile of reuse_graph_ms")
    prefill_graph_ms: float = col("one-pass prefill through a static cache replayed as a CUDA graph; GPU only")
    prefill_graph_ms_p25: float = col("25th percentile of prefill_graph_ms")
    prefill_graph_ms_p75: float = col("75th percentile of prefill_graph_ms")
    speedup_graph: float = col("min(prefill_ms, prefill_graph_ms) / reuse_graph_ms: best prefill vs graph reuse")
    graph_max_abs_logit_diff: float = col("max |logit_graph - logit_eager_reuse| of the timed document's first token")
    graph_error: Optional[str] = col("why the CUDA-graph reader could not run (null when it ran or on CPU)")
    repeats: int = col("timed repeats per median (after warmup)")
    timer: str = col("`cuda_events` on GPU, `perf_counter` on CPU")
    kv_bytes: int = col("bytes of the document's KV: 2 x layers x kv_heads x head_dim x itemsize x L")
    prefill_flops: float = col("analytic FLOPs of the one-pass prefill (matmuls + causal attention)")
    reuse_flops: float = col("analytic FLOPs of the question forward against the cached document")
    # --- exactness (rates over num_docs document x question pairs) ----------------------
    gen_tokens: int = col("greedy continuation length G compared token by token")
    exact_fraction: float = col("fraction of continuations where reuse equals one-pass prefill on all G tokens")
    first_divergence_mean: float = col("mean index of the first differing token (G when none differs)")
    first_token_agree: float = col("fraction where the first token's top-1 agrees (reuse vs one-pass)")
    max_abs_logit_diff: float = col("max |logit_reuse - logit_onepass| over first-token logits, all docs")
    kl_mean: float = col("mean KL(one-pass || reuse) of first-token distributions, nats")
    kl_max: float = col("max KL(one-pass || reuse) of first-token distributions, nats")
    bitwise_twostage: float = col("fraction where reuse's first-token logits and G tokens are bitwise "
                                  "equal to a two-stage prefill (document, then question)")
    twostage_logits_bitwise: float = col("fraction where reuse's first-token logits alone are bitwise equal "
                                         "to the two-stage prefill's")
    twostage_max_abs_logit_diff: float = col("max |logit_reuse - logit_twostage| over first-token logits, all docs")
    repeatable_fraction: float = col("control: fraction where running reuse twice gives bitwise-equal "
                                     "first-token logits and G tokens (below 1: kernels are not deterministic)")
    # --- tiers ---------------------------------------------------------------------------
    # Reader path per timed read: fetch -> decode -> h2d -> attach -> query; reuse_ms is the
    # median of the per-read sums. Stages are timed with perf_counter after a device sync.
    tier: str = col("where the reader's KV lives: gpu | host | disk | redis | wan")
    tier_variant: str = col("disk: `cold` or `warm` page cache; wan: the link profile; empty otherwise")
    codec: str = col("codec the stored KV was encoded with (identity: the artifact's own safetensors)")
    stored_bytes: int = col("bytes the tier holds for the document (codec blob, or decoded KV where the "
                            "tier keeps it decoded)")
    encode_ms: float = col("publisher: codec encode of the artifact, once")
    put_ms: float = col("publisher: storing the blob in the tier, once")
    fetch_ms: float = col("reader: storage to host memory (median)")
    decode_ms: float = col("reader: codec decode, checksum verification included (median)")
    h2d_ms: float = col("reader: host-to-device copy (median); 0 where the KV is already on the device")
    attach_ms: float = col("reader: compatibility check and attaching the KV to the reader's cache (median)")
    query_ms: float = col("reader: the question's forward against the attached KV (median)")
    tier_query: str = col("reader's attach + query: `cuda_graph` (KV copied into a static cache, the "
                          "question's graph replayed) or `eager` (a fresh DynamicCache, HF's forward)")
    fetch_bytes: int = col("bytes moved by one fetch")
    fetch_gbps: float = col("fetch_bytes / fetch_ms, GB/s (1e9 B)")
    h2d_bytes: int = col("bytes moved host-to-device by one read")
    h2d_gbps: float = col("h2d_bytes / h2d_ms, GB/s (1e9 B)")
    link_gbps: float = col("ceiling of the tier's link, GB/s: pinned host-to-device copy (host); parallel "
                           "O_DIRECT read of a fresh file of the object's size, 64 MiB-1 GiB (disk); unpaced "
                           "loopback TCP (redis on its own server); configured bandwidth (wan); null where "
                           "not calibrated")
    wan_rtt_ms: float = col("wan: configured round-trip time")
    egress_usd: float = col("wan: fetch_bytes x the profile's egress $/GB (1e9 B), per read")
    cold_method: str = col("disk cold reads: how pages were dropped (fadvise | drop_caches | none)")
    cold_ok: bool = col("disk cold reads: every timed read started with none of the file's pages resident "
                        "(checked with mincore)")
    tier_reader: str = col("how the reader fetches: disk `posix`; "
                           "redis `hiredis` or `python` (redis-py's own parser)")
    tier_bitwise: bool = col("the KV read back from the tier equals the published KV bitwise (false by design "
                             "for lossy codecs)")
    # --- compress ------------------------------------------------------------------------
    # One row per (L, codec) on the first document's KV (the `codec` column above names it).
    # Ratios are kv_bytes / compressed_bytes; bounds are value_bits / entropy (kvbench.entropy).
    codec_lossless: bool = col("the codec round-trips bitwise by design")
    codec_device: str = col("where the codec decodes: `cpu` (then host-to-device) or `cuda` (after it)")
    compressed_bytes: int = col("bytes of the codec's blob (header and checksums included)")
    compress_ratio: float = col("kv_bytes / compressed_bytes")
    encode_gbps: float = col("kv_bytes / median encode time (artifact to host blob, checksums included), GB/s")
    decode_gbps: float = col("kv_bytes / median decode time (host blob to KV on the codec's device, "
                             "checksum verified), GB/s")
    encode_device_gbps: float = col("device codecs: kv_bytes / median on-device compress time, GB/s "
                                    "(no host copy, no checksum); null for host codecs")
    decode_device_gbps: float = col("device codecs: kv_bytes / median on-device decompress time, GB/s; "
                                    "null for host codecs")
    roundtrip_bitwise: bool = col("decode(encode(KV)) equals the KV bitwise")
    kv_rel_rmse: float = col("lossy codecs: ||decoded - KV|| / ||KV|| over all values (0 when lossless)")
    entropy_order0_bits: float = col("empirical order-0 entropy of one KV value's bit pattern, bits/value")
    entropy_planes_bits: float = col("sum over byte planes of each plane's order-0 entropy, bits/value")
    entropy_channel_bits: float = col("entropy conditioned on keys/values and head_dim channel, bits/value")
    bound_order0_ratio: float = col("value bits / entropy_order0_bits: best ratio of one order-0 model")
    bound_planes_ratio: float = col("value bits / entropy_planes_bits: best ratio of per-plane order-0 models")
    bound_channel_ratio: float = col("value bits / entropy_channel_bits: best ratio of per-channel order-0 models")
    loss_tokens: int = col("lossy codecs: held-out continuation tokens after each document (NLL over all "
                           "but the first, forwarded on top of the document's KV)")
    nll_exact: float = col("lossy codecs: mean NLL (nats/token) of the continuation with the exact KV")
    nll_lossy: float = col("lossy codecs: the same with decode(encode(KV))")
    nll_delta: float = col("nll_lossy - nll_exact, nats/token")
    # --- status and provenance --------------------------------------------------------------
    status: str = col("ok | skipped | oom | failed", "ok")
    reason: Optional[str] = col("why the status is not ok (one line)")
    elapsed_s: float = col("wall-clock seconds spent on the point")
    kvbench_version: str = col("kvbench version that wrote the row")
    timestamp: str = col("UTC time the row was written (ISO 8601)")
    # --- audit ---------------------------------------------------------------------------
    # Recomputing k random chunks of a bought artifact from its own preceding KV (kvbench.audit).
    # One row per (L, tamper, k); rates are over audit_docs documents of length L.
    tamper: str = col("audit: how the evaluated artifacts were altered: none (honest) | chunk (one span's KV "
                      "replaced, the KV after it left) | chunks (several spans) | noise (noise in one layer) | "
                      "rederived (one span's tokens changed and every later position recomputed from them)")
    audit_k: int = col("audit: chunks recomputed per audit, drawn at random")
    audit_chunk_tokens: int = col("audit: tokens per chunk")
    audit_chunks: int = col("audit: chunks in the document (ceil(L / audit_chunk_tokens))")
    audit_docs: int = col("audit: documents each tamper kind was applied to")
    detection_rate: float = col("audit: chance that k random chunks include one that disagrees with the "
                                "artifact beyond tolerance, mean over documents (tamper=none: false positives)")
    flagged_chunk_fraction: float = col("audit: mean fraction of the document's chunks that disagree")
    audit_tolerance_max: float = col("audit: largest per-layer tolerance on the relative per-token error "
                                     "(margin x the largest untampered error; 0: bitwise everywhere)")
    audit_honest_error_max: float = col("audit: largest relative per-token error over every chunk of the "
                                        "untampered calibration artifacts")
    audit_bitwise_layers: float = col("audit: fraction of (layer, K/V) whose untampered recomputation was "
                                      "bitwise equal, so their tolerance is 0")
    audit_ms: float = col("audit: k x the mean time of one chunk check (attach KV[:start], forward the "
                          "chunk, compare)")
    audit_cost_fraction: float = col("audit: audit_ms / prefill_ms (the one-pass prefill the audit avoids)")
    audit_flops_fraction: float = col("audit: analytic FLOPs of the k chunk forwards / prefill_flops")


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Row))
REQUIRED = ("experiment", "model", "weights", "dtype", "device", "attn_impl", "doc_tokens",
            "query_tokens", "prefill_ms", "reuse_ms", "speedup", "kv_bytes", "exact_fraction",
            "first_token_agree", "max_abs_logit_diff", "bitwise_twostage", "status")


def make_row(**fields: Any) -> dict[str, Any]:
    """A complete row dict in schema order; unknown column names are an error.

    Raises
    ------
    KeyError
        If a field is not a schema column (catches typos at the source).
    ValueError
        If ``status`` is unknown, or not ok without a ``reason``.
    """
    unknown = sorted(set(fields) - set(COLUMNS))
    if unknown:
        raise KeyError(f"not row columns: {unknown}; add them to kvbench.rows.Row with a doc")
    row = dataclasses.asdict(Row(**fields))
    if row["status"] not in STATUSES:
        raise ValueError(f"row status {row['status']!r} is not one of {STATUSES}")
    if row["status"] != "ok" and not row["reason"]:
        raise ValueError(f"row status {row['status']!r} needs a reason")
    return row


def one_line(exc: BaseException) -> str:
    """An exception as a row ``reason``: its type and the first line of its message."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def schema_markdown() -> str:
    """The schema as a Markdown table (column | meaning)."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{f.name}` | {f.metadata['doc']} |" for f in dataclasses.fields(Row)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(schema_markdown())
