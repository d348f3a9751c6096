"""The one row type every experiment emits. Figures, tables and the cost model read rows.

Each field's ``metadata["doc"]`` is its documentation; ``python -m kvbench.rows.schema`` prints the
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
    model_file_sha256: str = col("SHA-256 of the GGUF file the weights were loaded from (null: hub or random)")
    tokenizer: str = col("tokenizer name (random models borrow the embedded SmolLM2 tokenizer)")
    dtype: str = col("compute and KV dtype: float32 | bfloat16 | float16")
    device: str = col("device name, e.g. `NVIDIA H200` or `cpu`")
    attn_impl: str = col("transformers attention implementation of the HF paths: sdpa | eager")
    reader: str = col(
        "how reuse ran (kvbench.forward.readers): `fast` (fast forward reading the KV in place, compiled, "
        "CUDA graph), `graph` (static cache the KV is copied into, CUDA graph) or `hf` (DynamicCache, "
        "eager; the reference)"
    )
    deterministic: bool = col(
        "torch deterministic algorithms enforced (+ CUBLAS_WORKSPACE_CONFIG): a kernel "
        "without a deterministic implementation fails the point instead of running"
    )
    doc_tokens: int = col("document length L in tokens (exact)")
    query_tokens: int = col("question length in tokens (of the timed document's question)")
    doc_hash: str = col("SHA-256 (first 16 hex) of the timed document's token ids")
    corpus_hash: str = col("SHA-256 (first 16 hex) over the hashes of every document in the point")
    num_docs: int = col("documents x questions the exactness rates are over")
    # --- latency ---------------------------------------------------------------------------
    prefill_ms: float = col(
        "one-pass prefill of document + question to first-token logits, HF eager forward; "
        "median over documents of each document's median"
    )
    prefill_ms_p25: float = col("25th percentile of prefill_ms (all samples)")
    prefill_ms_p75: float = col("75th percentile of prefill_ms (all samples)")
    prefill_fast_ms: float = col(
        "the same prefill through the fast forward (flash/cuDNN attention, compiled layers "
        "on CUDA, replayed as a CUDA graph)"
    )
    prefill_fast_ms_p25: float = col("25th percentile of prefill_fast_ms")
    prefill_fast_ms_p75: float = col("75th percentile of prefill_fast_ms")
    prefill_best_ms: float = col("the faster of prefill_ms and prefill_fast_ms (medians): what every speedup divides")
    prefill_best_path: str = col("which prefill is prefill_best_ms: `eager` or `fast`")
    reuse_ms: float = col("reuse through the row's reader: attach the stored KV + the question's forward")
    reuse_ms_p25: float = col("25th percentile of reuse_ms")
    reuse_ms_p75: float = col("75th percentile of reuse_ms")
    reader_attach: str = col(
        "what attach does: `reference` (the KV is read where it lies, no copy), `copy` "
        "(copied into a static cache) or `cache` (wrapped in a fresh DynamicCache)"
    )
    query_only_ms: float = col(
        "fast reader: the question's forward with no document (graph replay): its reuse "
        "minus this is the document's attention"
    )
    fast_fused: bool = col(
        "fast forward: q/k/v and gate/up ran as one GEMM each (kvbench.forward.fused); false: the model's own layers"
    )
    fused_weight_bytes: int = col("fast forward: device bytes of the concatenated q/k/v and gate/up weight copies")
    fuse_max_abs_logit_diff: float = col(
        "fast forward: max |logit difference| of the fused against the unfused layers on the first document's "
        "question (both uncompiled and eager, so only the fusion differs)"
    )
    doc_kernel: str = col(
        "fast reader: the document pass's kernel for the row's shape (`flash` | `flex` | `cudnn` | `triton`; "
        "kvbench.forward.document_pass)"
    )
    doc_kernel_flash_ms: float = col(
        "fast reader, document_kernel=auto: one layer's document pass on flash (median of CUDA-graph replays; "
        "rows without doc_kernel_cudnn_ms timed it eagerly)"
    )
    doc_kernel_flex_ms: float = col(
        "fast reader, document_kernel=auto: one layer's document pass on flex (median of CUDA-graph replays; "
        "rows without doc_kernel_cudnn_ms timed it eagerly)"
    )
    doc_kernel_cudnn_ms: float = col(
        "fast reader, document_kernel=auto: one layer's document pass on cudnn (median of CUDA-graph replays; "
        "rows without doc_kernel_cudnn_ms timed it eagerly)"
    )
    reuse_attention: str = col(
        "fast reader, document_kernel=auto: how the reuse's attention ran, `passes` (the document pass on "
        "doc_kernel, a pass over the question's own keys, their merge) or `fused` (both in one split-KV Triton "
        "launch; doc_kernel then names the pass it did not use); kvbench.forward.reuse_plan"
    )
    reuse_attention_passes_ms: float = col(
        "fast reader: one layer's reuse attention as passes (median of CUDA-graph replays)"
    )
    reuse_attention_fused_ms: float = col(
        "fast reader: one layer's reuse attention as one Triton launch (median of CUDA-graph replays)"
    )
    doc_kernel_triton_ms: float = col(
        "fast reader, document_kernel=auto: one layer's document pass on the split-KV Triton kernel and its merge "
        "(median of CUDA-graph replays; kvbench.forward.split_kernel)"
    )
    speedup: float = col(
        "prefill_best_ms / reuse_ms (ratio of medians); tiers: prefill_best_ms over the read's stage sum"
    )
    speedup_ci_low: float = col("95% bootstrap CI of speedup, lower bound")
    speedup_ci_high: float = col("95% bootstrap CI of speedup, upper bound")
    speedup_ci_n: int = col("samples on each side of the speedup's bootstrap (documents x repeats)")
    timing_docs: int = col("documents each latency is measured on (the timed paths interleaved per round)")
    repeats: int = col("timed rounds per document (after warmup)")
    timer: str = col("clock of the timed paths: `cuda_events` on GPU, `perf_counter` on CPU; tiers: per stage")
    kv_bytes: int = col("bytes of the document's KV: 2 x layers x kv_heads x head_dim x itemsize x L")
    prefill_flops: float = col("analytic FLOPs of the one-pass prefill (matmuls + causal attention)")
    reuse_flops: float = col("analytic FLOPs of the question forward against the cached document")
    # --- roofline (kvbench.measure.calibrate, kvbench.measure.floors) ---------------------------------------
    weight_bytes: int = col("bytes of weights one forward reads (an untied input embedding excluded)")
    peak_tflops: float = col("measured dense matmul peak of the device in the run's dtype, TFLOP/s")
    hbm_gbps: float = col("measured device-memory bandwidth (copy, bytes read + written), GB/s")
    prefill_floor_ms: float = col("max(prefill_flops / peak, weight_bytes / bandwidth)")
    reuse_floor_ms: float = col("max(reuse_flops / peak, (weight_bytes + kv_bytes) / bandwidth)")
    prefill_efficiency: float = col("prefill_floor_ms / prefill_best_ms (1 = at the roofline)")
    reuse_efficiency: float = col("reuse_floor_ms / reuse_ms (1 = at the roofline)")
    # --- reader agreement (first-token logits of the timed calls, over timing_docs) ------------
    reader_top1_agree: float = col("fraction of documents whose first token through this reader equals HF reuse's")
    reader_max_abs_logit_diff: float = col("max |logit_reader - logit_hf_reuse| of the first token")
    onepass_top1_agree: float = col(
        "fraction of documents whose first token through this reader equals the eager one-pass prefill's"
    )
    onepass_max_abs_logit_diff: float = col("max |logit_reader - logit_onepass| of the first token")
    # --- exactness (rates over num_docs document x question pairs) ----------------------
    gen_tokens: int = col(
        "greedy continuation length G compared token by token (throughput: decode steps per reader after its question)"
    )
    exact_fraction: float = col("fraction of continuations where reuse equals one-pass prefill on all G tokens")
    exact_fraction_ci_low: float = col("95% Wilson interval of exact_fraction, lower bound")
    exact_fraction_ci_high: float = col("95% Wilson interval of exact_fraction, upper bound")
    first_divergence_mean: float = col("mean index of the first differing token (G when none differs)")
    divergence_margin_mean: float = col(
        "mean over diverging pairs of the one-pass reference's top-1 minus top-2 "
        "logit at the first differing token (null when none diverges): near 0 "
        "means divergences happen at near-ties"
    )
    divergence_margin_min: float = col("smallest such margin over diverging pairs (null when none diverges)")
    first_token_agree: float = col("fraction where the first token's top-1 agrees (reuse vs one-pass)")
    first_token_agree_ci_low: float = col("95% Wilson interval of first_token_agree, lower bound")
    first_token_agree_ci_high: float = col("95% Wilson interval of first_token_agree, upper bound")
    reference_attn_impl: str = col(
        "attention kernel the one-pass reference ran with (sdpa | eager); it differs "
        "from attn_impl only in the kernel-choice control"
    )
    max_abs_logit_diff: float = col("max |logit_reuse - logit_onepass| over first-token logits, all docs")
    kl_mean: float = col("mean KL(one-pass || reuse) of first-token distributions, nats")
    kl_max: float = col("max KL(one-pass || reuse) of first-token distributions, nats")
    bitwise_twostage: float = col(
        "fraction, over the bitwise_twostage_n pairs whose reuse repeated, where "
        "reuse's first-token logits and G tokens are bitwise equal to a two-stage "
        "prefill (document, then question; fast reader: the same reader on the KV "
        "before serialisation); null when none repeated"
    )
    bitwise_twostage_ci_low: float = col("95% Wilson interval of bitwise_twostage, lower bound")
    bitwise_twostage_ci_high: float = col("95% Wilson interval of bitwise_twostage, upper bound")
    bitwise_twostage_n: int = col(
        "pairs whose reuse repeated bitwise (repeatable): the denominator of "
        "bitwise_twostage and twostage_logits_bitwise"
    )
    twostage_logits_bitwise: float = col(
        "fraction, over the same bitwise_twostage_n pairs, where reuse's "
        "first-token logits alone are bitwise equal to the two-stage prefill's"
    )
    twostage_logits_bitwise_ci_low: float = col("95% Wilson interval of twostage_logits_bitwise, lower bound")
    twostage_logits_bitwise_ci_high: float = col("95% Wilson interval of twostage_logits_bitwise, upper bound")
    twostage_max_abs_logit_diff: float = col("max |logit_reuse - logit_twostage| over first-token logits, all docs")
    repeatable_fraction: float = col(
        "control: fraction where running reuse twice gives bitwise-equal "
        "first-token logits and G tokens (below 1: kernels are not deterministic)"
    )
    repeatable_fraction_ci_low: float = col("95% Wilson interval of repeatable_fraction, lower bound")
    repeatable_fraction_ci_high: float = col("95% Wilson interval of repeatable_fraction, upper bound")
    # --- tiers ---------------------------------------------------------------------------
    # Reader path per timed read: fetch -> decode -> h2d -> attach -> query; reuse_ms is the
    # median of the per-read sums. Host stages are timed by perf_counter, device stages by
    # CUDA events with one synchronisation per read (the row's `timer` names each stage's clock).
    tier: str = col("where the reader's KV lives: gpu | host | disk | redis | wan")
    tier_variant: str = col("disk: `cold` or `warm` page cache; wan: the link profile; empty otherwise")
    codec: str = col("codec the stored KV was encoded with (identity: the artifact's own safetensors)")
    stored_bytes: int = col(
        "bytes the tier holds for the document (codec blob, or decoded KV where the tier keeps it decoded)"
    )
    encode_ms: float = col("publisher: codec encode of the artifact, once")
    put_ms: float = col("publisher: storing the blob in the tier, once")
    fetch_ms: float = col("reader: storage to host memory (median; stream: summed over chunks / tier_workers)")
    decode_ms: float = col(
        "reader: codec decode, checksum verification included (median; stream: a GPU codec's decode on the "
        "device, the chunks' digests being verify_ms)"
    )
    h2d_ms: float = col(
        "reader: host-to-device copy (median; stream: the copy stream's busy time); 0 where the KV is "
        "already on the device"
    )
    attach_ms: float = col("reader: compatibility check and attaching the KV to the reader's cache (median)")
    query_ms: float = col("reader: the question's forward against the attached KV (median)")
    fetch_bytes: int = col("bytes moved by one fetch")
    fetch_gbps: float = col("fetch_bytes / fetch_ms, GB/s (1e9 B)")
    h2d_bytes: int = col("bytes moved host-to-device by one read")
    h2d_gbps: float = col("h2d_bytes / h2d_ms, GB/s (1e9 B)")
    link_gbps: float = col(
        "ceiling of the tier's link, GB/s: pinned host-to-device copy (host); parallel "
        "O_DIRECT read of a fresh file of the object's size, 64 MiB-1 GiB (disk); unpaced "
        "loopback TCP (redis on its own server); configured bandwidth (wan); null where "
        "not calibrated"
    )
    wan_rtt_ms: float = col("wan: configured round-trip time")
    egress_usd: float = col("wan: fetch_bytes x the profile's egress $/GB (1e9 B), per read")
    cold_method: str = col("disk cold reads: how pages were dropped (fadvise | drop_caches | none)")
    cold_ok: bool = col(
        "disk cold reads: every timed read started with none of the file's pages resident (checked with mincore)"
    )
    cold_direct: bool = col("disk cold streaming reads: the file was opened with O_DIRECT (false: refused here)")
    tier_reader: str = col("how the reader fetches: disk `posix`; redis `hiredis` or `python` (redis-py's own parser)")
    tier_bitwise: bool = col(
        "the KV read back from the tier equals the published KV bitwise (false by design for lossy codecs)"
    )
    tier_io: str = col(
        "how a stored object was read (disk, redis, wan): `stream` (chunks fetched by tier_workers threads into "
        "reused pinned slots, each verified as it lands and copied to the device while later ones load) or "
        "`serial` (fetch all, verify all, copy all: the loader before streaming, kept as the control)"
    )
    tier_workers: int = col("stream: threads fetching and verifying chunks (connections, for redis and wan)")
    tier_chunk_bytes: int = col("stream: bytes per verified chunk of the stored object (one XXH3-64 each)")
    load_ms: float = col(
        "stream: first request to last copy, every chunk verified and on the device (median); fetch, verify "
        "and h2d overlap inside it, so reuse_ms = load + decode + attach + query"
    )
    verify_ms: float = col("stream: chunk digests, summed over chunks / tier_workers (median)")
    wait_ms: float = col("stream: chunks waiting for a free pinned slot, summed / tier_workers (median)")
    verify_gbps: float = col("stream: fetch_bytes / verify_ms, GB/s (1e9 B)")
    load_gbps: float = col("stream: fetch_bytes / load_ms, GB/s (1e9 B)")
    storage_link_gbps: float = col(
        "measured ceiling of the storage link, GB/s: parallel page-cache reads (disk warm), parallel O_DIRECT "
        "reads (disk cold), tier_workers parallel GETs of 16 MiB values (redis), the profile's bandwidth (wan)"
    )
    hash_link_gbps: float = col("measured XXH3-64 over tier_workers threads, GB/s (kvbench.measure.links)")
    h2d_link_gbps: float = col("measured pinned host-to-device copy, GB/s")
    tier_floor_ms: float = col(
        "the least time a read and its reuse can take on this host: stored_bytes over the links on the "
        "tier's path, where stages the host's cores serve add (page-cache copy, digests, a Redis socket) "
        "and DMA or paced links overlap (O_DIRECT disk, h2d, the wan link), plus the wan profile's two "
        "round trips, plus reuse_floor_ms (kvbench.measure.links.tier_floor_ms)"
    )
    tier_efficiency: float = col("tier_floor_ms / reuse_ms")
    # --- compress ------------------------------------------------------------------------
    # One row per (L, codec) on the first document's KV (the `codec` column above names it).
    # Ratios are kv_bytes / compressed_bytes; bound_*_ratio are value_bits / order-0 entropy
    # (kvbench.measure.entropy): entropies of one model each, not bounds on every coder.
    codec_lossless: bool = col("the codec round-trips bitwise by design")
    codec_device: str = col("where the codec decodes: `cpu` (then host-to-device) or `cuda` (after it)")
    compressed_bytes: int = col("bytes of the codec's blob (header and checksums included)")
    compress_ratio: float = col("kv_bytes / compressed_bytes")
    encode_gbps: float = col("kv_bytes / median encode time (artifact to host blob, checksums included), GB/s")
    decode_gbps: float = col(
        "kv_bytes / median decode time (host blob to KV on the codec's device, checksum verified), GB/s"
    )
    encode_device_gbps: float = col(
        "device codecs: kv_bytes / median on-device compress time, GB/s "
        "(no host copy, no checksum); null for host codecs"
    )
    decode_device_gbps: float = col(
        "device codecs: kv_bytes / median on-device decompress time, GB/s; null for host codecs"
    )
    roundtrip_bitwise: bool = col("decode(encode(KV)) equals the KV bitwise")
    kv_rel_rmse: float = col("lossy codecs: ||decoded - KV|| / ||KV|| over all values (0 when lossless)")
    entropy_order0_bits: float = col("empirical order-0 entropy of one KV value's bit pattern, bits/value")
    entropy_planes_bits: float = col("sum over byte planes of each plane's order-0 entropy, bits/value")
    entropy_channel_bits: float = col("entropy conditioned on keys/values and head_dim channel, bits/value")
    bound_order0_ratio: float = col("value bits / entropy_order0_bits: best ratio of one order-0 model")
    bound_planes_ratio: float = col("value bits / entropy_planes_bits: best ratio of per-plane order-0 models")
    bound_channel_ratio: float = col("value bits / entropy_channel_bits: best ratio of per-channel order-0 models")
    entropy_channel_planes_bits: float = col(
        "16-bit KV: H(high byte | kind, channel) + H(low byte | kind, channel, high byte), Miller-Madow "
        "corrected, bits/value (entropy_channel_bits factored, for comparison with the two below)"
    )
    entropy_prev_token_bits: float = col(
        "16-bit KV: as entropy_channel_planes_bits, the high byte also given the previous token's high byte "
        "in the same channel, bits/value"
    )
    entropy_prev_layer_bits: float = col(
        "16-bit KV: as entropy_channel_planes_bits, the high byte also given the high byte at the same head, "
        "token and channel of the previous layer, bits/value"
    )
    loss_tokens: int = col(
        "lossy codecs: held-out continuation tokens after each document (NLL over all "
        "but the first, forwarded on top of the document's KV)"
    )
    nll_exact: float = col("lossy codecs: mean NLL (nats/token) of the continuation with the exact KV")
    nll_lossy: float = col("lossy codecs: the same with decode(encode(KV))")
    nll_delta: float = col("nll_lossy - nll_exact, nats/token")
    nll_delta_ci_low: float = col("95% bootstrap interval (over documents) of nll_delta: low end")
    nll_delta_ci_high: float = col("95% bootstrap interval (over documents) of nll_delta: high end")
    # --- throughput: B readers of one document in one batched forward ------------------------
    batch: int = col("readers answered in one forward (throughput)")
    method: str = col(
        "throughput: `shared` (one copy of the document KV, read once per batch) or `naive` "
        "(a copy per reader, each read by its reader)"
    )
    batch_ms: float = col("device time of one batched forward (CUDA-graph replay), median")
    batch_ms_p25: float = col("25th percentile of batch_ms")
    batch_ms_p75: float = col("75th percentile of batch_ms")
    per_reader_ms: float = col("batch_ms / batch: the device time a provider pays per reuse")
    compute_floor_ms: float = col("per reader: its question's FLOPs (with attention to the document) at peak")
    memory_floor_ms: float = col("per reader: (weights + document KV) read once per batch, over batch")
    per_reader_floor_ms: float = col("max(compute_floor_ms, memory_floor_ms)")
    efficiency: float = col("per_reader_floor_ms / per_reader_ms")
    tokens_per_s: float = col("question tokens processed per second: batch x query_tokens / batch_ms")
    peak_mem_bytes: int = col("peak device memory allocated during the point (CUDA)")
    batch_top1_agree: float = col("fraction of readers whose first token in the batch equals their answer alone")
    batch_max_abs_logit_diff: float = col("max |logit_batched - logit_alone| over the batch's first tokens")
    # throughput.gen_tokens > 0: each reader then decodes gen_tokens greedy tokens, one batched step each
    decode_step_ms: float = col(
        "device time of one batched decode step (B readers, one token each, over the "
        "document and each reader's own KV; CUDA-graph replay) at the middle step "
        "(own KV: query_tokens + gen_tokens // 2 tokens), median"
    )
    decode_step_ms_p25: float = col("25th percentile of decode_step_ms")
    decode_step_ms_p75: float = col("75th percentile of decode_step_ms")
    decode_doc_kernel: str = col("decode step (shared document): the document pass's kernel for B one-token rows")
    decode_attention: str = col(
        "decode step (shared document), document_kernel=auto: `passes` (the document pass, the own-cache pass, "
        "their merge) or `fused` (the document and each reader's cache in one split-KV Triton launch); "
        "kvbench.forward.reuse_plan"
    )
    decode_attention_passes_ms: float = col("decode step: one layer's attention as passes (CUDA-graph replay)")
    decode_attention_fused_ms: float = col(
        "decode step: one layer's attention as one Triton launch (CUDA-graph replay)"
    )
    decode_own_kernel: str = col(
        "decode step: the pass over each reader's own KV (`masked` | `flash` | `triton`; fast.own_kernel, "
        "auto resolved; kvbench.forward.own_pass)"
    )
    decode_own_masked_ms: float = col(
        "decode step, own_kernel=auto: one layer's own-cache pass on masked, every slot filled (median of "
        "CUDA-graph replays)"
    )
    decode_own_flash_ms: float = col(
        "decode step, own_kernel=auto: one layer's own-cache pass on flash, every slot filled (median of "
        "CUDA-graph replays)"
    )
    decode_own_triton_ms: float = col(
        "decode step, own_kernel=auto: one layer's own-cache pass on triton, every slot filled (median of "
        "CUDA-graph replays)"
    )
    decode_per_reader_ms: float = col("decode_step_ms / batch: the device time a provider pays per decoded token")
    decode_tokens_per_s: float = col("decoded tokens per second: batch / decode_step_ms")
    decode_compute_floor_ms: float = col(
        "per reader: one token's FLOPs on doc_tokens + query_tokens + gen_tokens // 2 cached tokens, at peak"
    )
    decode_memory_floor_ms: float = col(
        "per reader: (weights + document KV once (shared) or batch times (naive) + "
        "every reader's own KV) read once per step, over batch"
    )
    decode_per_reader_floor_ms: float = col("max(decode_compute_floor_ms, decode_memory_floor_ms)")
    decode_efficiency: float = col("decode_per_reader_floor_ms / decode_per_reader_ms")
    decode_top1_agree: float = col(
        "fraction of the readers' greedy tokens (first + gen_tokens decoded) in the "
        "batch equal to the same reader's decoded alone"
    )
    # --- economics ---------------------------------------------------------------------------
    # experiment=economics prices other experiments' rows (kvbench.economics.cost) with a price sheet
    # (conf/cost/); nothing is measured. GB = 1e9 B; dollars are USD.
    econ_row: str = col(
        "`paper` (the paper's numbers from its own inputs: on these rows prefill_ms, "
        "reuse_ms and kv_bytes are the paper's, not measured here), `cost` (one measured "
        "point priced), `tariff` (an API cache tariff beside the measured cost ratio), "
        "`claim` (one of the paper's conclusions, the paper's value beside the measured one)"
    )
    reuse_reader: str = col(
        "reader whose reuse time was priced: `fast`, `graph` or `hf` (reuse rows), "
        "the tier reader (tiers rows), `paper`"
    )
    reuse_basis: str = col(
        "`single` (one request's reuse time) or `batched` (per-reader time in a "
        "shared-document batch of `batch_readers`, from experiment=throughput)"
    )
    batch_readers: int = col("readers per batch behind a `batched` reuse time")
    price_sheet: str = col("name of the price sheet (conf/cost/) the dollars come from")
    gpu_price: str = col("key of the GPU price used (cost.gpu_hour), or `implied` for the paper's")
    gpu_usd_per_hour: float = col("USD per GPU-hour used for every device-time dollar of the row")
    prefill_usd: float = col("device dollars of one prefill (prefill_ms at gpu_usd_per_hour)")
    reuse_usd: float = col("device dollars of one reuse (reuse_ms, or per-reader ms when batched)")
    reuse_usd_per_mreads: float = col(
        "dollars per million reads: reuse device dollars, plus egress of the shipped bytes for the wan tier"
    )
    prefill_usd_per_mreads: float = col("dollars per million reads when every reader prefills")
    readers_total: float = col("readers of the document in the scenario (the paper's 80 million by default)")
    total_prefill_usd: float = col("readers_total x prefill_usd")
    total_reuse_usd: float = col("readers_total x reuse_usd (device time only)")
    breakeven_reads: float = col(
        "N* = (write + hosting) / (prefill_usd - reuse_usd), write = one prefill; null when reuse is not cheaper"
    )
    cost_ratio: float = col("reuse device time / prefill device time (what a read costs, as a fraction of a prefill)")
    egress_price: str = col("key of the egress price used (cost.egress)")
    egress_usd_per_gb: float = col("egress USD per GB (1e9 B) used")
    egress_usd_raw: float = col("egress dollars to ship the document's KV once, uncompressed")
    egress_usd_lossless: float = col("the same after the best lossless codec measured for this model and dtype")
    egress_usd_lossy: float = col("the same after the best-ratio lossy codec measured (gives up exactness)")
    lossless_codec: str = col("codec behind egress_usd_lossless (best median ratio, experiment=compress)")
    lossless_ratio: float = col("its compression ratio")
    lossy_codec: str = col("codec behind egress_usd_lossy")
    lossy_ratio: float = col("its compression ratio")
    egress_over_prefill: float = col("egress_usd_raw / prefill_usd: above 1, shipping costs more than prefilling")
    hosting_price: str = col(
        "key of the storage price for the row's tier (cost.storage; reuse rows: the gpu "
        "tier's), or `hbm` (the KV's share of the GPU's memory at the GPU-hour price)"
    )
    hosting_usd_per_hour: float = col("dollars per hour to keep the document's KV (shipped bytes) resident")
    breakeven_reads_per_hour: float = col(
        "reads per hour above which hosting pays for itself: hosting_usd_per_hour / (prefill_usd - reuse_usd)"
    )
    breakeven_link_gbps: float = col(
        "slowest link (GB/s) from which fetching the KV still beats prefill: "
        "bytes / (prefill - reuse compute); reuse compute = reuse_ms (reuse rows) "
        "or reuse_ms - fetch_ms - h2d_ms (tiers rows)"
    )
    tariff: str = col("key of the API tariff (cost.api_tariffs)")
    tariff_read_multiplier: float = col("cache-read price / uncached input price")
    tariff_write_multiplier: float = col("cache-write price / uncached input price")
    tariff_lifetime_s: float = col("how long a cache entry lives unless read again (null: not published)")
    tariff_storage_usd_per_hour: float = col("the tariff's storage fee for this document's tokens, per hour")
    provider_margin: float = col(
        "tariff_read_multiplier - cost_ratio: what a cache read leaves the provider, "
        "as a fraction of the uncached input price, if that price just covers a prefill"
    )
    claim: str = col("id of the paper's conclusion (claim rows)")
    claim_text: str = col("the conclusion and the test applied to it")
    claim_paper: float = col("the paper's value of the claim's number")
    claim_measured: float = col("the same number from the measured rows")
    claim_unit: str = col("unit of claim_paper and claim_measured")
    claim_holds: bool = col("whether the conclusion holds on the measured rows (the test in claim_text)")
    claim_margin: float = col("claim_measured / claim_paper (how far the measured number is from the paper's)")
    claim_note: str = col("what the measured value rests on (length, reader, price, tiers)")
    # --- status and provenance --------------------------------------------------------------
    status: str = col("ok | skipped | oom | failed", "ok")
    reason: Optional[str] = col("why the status is not ok (one line)")
    elapsed_s: float = col("wall-clock seconds spent on the point")
    kvbench_version: str = col("kvbench version that wrote the row")
    timestamp: str = col("UTC time the row was written (ISO 8601)")
    # --- audit ---------------------------------------------------------------------------
    # Recomputing k random chunks of a bought artifact from its own preceding KV (kvbench.audit.recompute).
    # One row per (L, tamper, k); rates are over audit_docs documents of length L.
    tamper: str = col(
        "audit: how the evaluated artifacts were altered: none (honest) | chunk (one span's KV "
        "replaced, the KV after it left) | chunks (several spans) | noise (noise in one layer) | "
        "rederived (one span's tokens changed and every later position recomputed from them)"
    )
    audit_k: int = col("audit: chunks recomputed per audit, drawn at random")
    audit_chunk_tokens: int = col("audit: tokens per chunk")
    audit_chunks: int = col("audit: chunks in the document (ceil(L / audit_chunk_tokens))")
    audit_docs: int = col("audit: documents each tamper kind was applied to")
    detection_rate: float = col(
        "audit: chance that k random chunks include one that disagrees with the "
        "artifact beyond tolerance, mean over documents (tamper=none: false positives)"
    )
    flagged_chunk_fraction: float = col("audit: mean fraction of the document's chunks that disagree")
    audit_tolerance_max: float = col(
        "audit: largest per-layer tolerance on the relative per-token error "
        "(margin x the largest untampered error; 0: bitwise everywhere)"
    )
    audit_honest_error_max: float = col(
        "audit: largest relative per-token error over every chunk of the untampered calibration artifacts"
    )
    audit_bitwise_layers: float = col(
        "audit: fraction of (layer, K/V) whose untampered recomputation was bitwise equal, so their tolerance is 0"
    )
    audit_ms: float = col(
        "audit: one audit of k random chunks: with audit_forward=fast one forward of all k (median over draws), "
        "with hf k x the mean time of one chunk check (attach KV[:start], forward the chunk, compare)"
    )
    audit_cost_fraction: float = col("audit: audit_ms / prefill_best_ms (the one-pass prefill the audit avoids)")
    audit_forward: str = col(
        "audit: `fast` (the k chunks in one fast forward) or `hf` (HF eager, one forward per chunk)"
    )
    audit_flops_fraction: float = col("audit: analytic FLOPs of the k chunk forwards / prefill_flops")
    audit_chunk_kernel: str = col(
        "audit (fast): the k chunks' attention, `varlen` (FlashAttention-2's variable-length call over the "
        "prefixes, in audit_chunk_splits parts, a causal pass over the chunks' own keys, a merge) or `triton` "
        "(all of it in one split-KV Triton launch, kvbench.forward.split_kernel); rows without it ran varlen"
    )
    audit_chunk_splits: int = col(
        "audit (fast): parts the document's KV was cut into for the k chunks' varlen document pass, merged by "
        "log-sum-exp (1: whole, or triton, which splits inside its launch; variable-length FlashAttention-2 does "
        "not split keys itself); rows without it ran whole"
    )
    audit_chunk_split_plan: int = col("audit (fast): the parts of the split candidate timed against the whole pass")
    audit_chunk_whole_ms: float = col(
        "audit (fast): one layer's chunk attention with the document whole (CUDA-graph replay; rows without "
        "audit_chunk_kernel timed the document pass alone)"
    )
    audit_chunk_split_ms: float = col(
        "audit (fast): one layer's chunk attention with the document in audit_chunk_split_plan parts "
        "(CUDA-graph replay; rows without audit_chunk_kernel timed the document pass alone)"
    )
    audit_chunk_triton_ms: float = col(
        "audit (fast): one layer's chunk attention in one split-KV Triton launch (CUDA-graph replay)"
    )


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Row))
REQUIRED = (
    "experiment",
    "model",
    "weights",
    "dtype",
    "device",
    "attn_impl",
    "doc_tokens",
    "query_tokens",
    "prefill_ms",
    "prefill_best_ms",
    "reuse_ms",
    "speedup",
    "kv_bytes",
    "prefill_floor_ms",
    "reuse_floor_ms",
    "status",
)


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
        raise KeyError(f"not row columns: {unknown}; add them to kvbench.rows.schema.Row with a doc")
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
