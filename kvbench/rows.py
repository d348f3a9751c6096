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
    speedup: float = col("prefill_ms / reuse_ms (ratio of medians)")
    speedup_ci_low: float = col("95% bootstrap CI of speedup, lower bound")
    speedup_ci_high: float = col("95% bootstrap CI of speedup, upper bound")
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
    # --- status and provenance --------------------------------------------------------------
    status: str = col("ok | skipped | oom | failed", "ok")
    reason: Optional[str] = col("why the status is not ok (one line)")
    elapsed_s: float = col("wall-clock seconds spent on the point")
    kvbench_version: str = col("kvbench version that wrote the row")
    timestamp: str = col("UTC time the row was written (ISO 8601)")


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


def schema_markdown() -> str:
    """The schema as a Markdown table (column | meaning)."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{f.name}` | {f.metadata['doc']} |" for f in dataclasses.fields(Row)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(schema_markdown())
