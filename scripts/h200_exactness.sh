#!/usr/bin/env bash
# H200: the exactness matrix (conf/exp/exactness.yaml), real weights only, in parts that each fit
# one ~9-minute device call:
#   scripts/h200_exactness.sh PART     PART 1 (the headline) .. 6; see the case list below
# Carry first, one folder per call in any order (made by `make wheelhouse wheelhouse-qwen`):
# wheelhouse/base (+ wheelhouse/tokenizer), wheelhouse/model-a, wheelhouse/model-b, then
# wheelhouse/qwen-00 ... wheelhouse/qwen-07; gpu_env.sh keeps each on the node and joins and
# verifies the Qwen GGUF once all eight are there. The machine must stay warm between calls.
#
# Cost, estimated from the committed SmolLM2 sweep (~20 ms per HF eager forward on the H200):
# a document takes 97 forwards (one-pass, two-stage, reuse and its repeat, 24 greedy tokens
# each), ~2 s; a point of D = 32 documents ~65 s; loading Qwen (GGUF dequantisation) ~15 s per
# dtype. The whole matrix (2 models x 3 dtypes x 256 .. 8000 / 20000, + the control) is ~30 points,
# ~45 minutes: more than one call, so it is trimmed into parts of ~6 points (~8 minutes). A part
# cut off by the deadline loses only the point in flight; re-run it with its rows carried back
# and it resumes (points already ok are skipped).
# Measured 2026-11-30: a Qwen point at 1024 tokens took 4-4.5 minutes (HF eager decoding, both
# readers), about twice the estimate, so a part holds about two Qwen points. Part 1's three
# Qwen points are committed (results/exactness/) and resume as done; its SmolLM2 points are not.
# The experiment records no latency (conf/exp/exactness.yaml: timing.enabled=false), so parts
# may share a GPU: HF eager decoding of a 0.5B model leaves the GPU mostly idle, waiting on
# Python. On the two-GPU kind (scripts/h200x2_pair.sh; carry wheelhouse/base + tokenizer after
# the eight piece calls, and model-a / model-b for part 4's SmolLM2 point), two parts per GPU:
#   bash scripts/h200x2_pair.sh "bash scripts/h200_exactness.sh 2 & bash scripts/h200_exactness.sh 4; wait" \
#                               "bash scripts/h200_exactness.sh 3 & bash scripts/h200_exactness.sh 5; wait"
# then again for whatever the deadline cut (rows resume), then part 6. Not yet measured: how
# much slower a part runs beside another on one GPU (the parts' deadlines bound it either way).
# Each part tars results/exactness into $OUT/exactness-PART.tgz; unpack them all (rows resume
# by point id, so merging the folders keeps every row once).
set -uo pipefail
source scripts/gpu_env.sh || exit 1
KVB_DEADLINE=$((SECONDS + 520))
kvb() { kvb_run 0 +exp=exactness "$@"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -m kvbench.model_files qwen2_5_0_5b || exit 1  # the verified GGUF is on the node
case "${1:-1}" in
    1) kvb 'doc_tokens=[1024]' ;;                                   # 2 models x fp32/fp16/bf16
    2) kvb exactness.reference_attn_impl=eager dtype=bfloat16 'doc_tokens=[1024]'  # kernel-choice control
       kvb dtype=bfloat16 'doc_tokens=[256,4096]' ;;
    3) kvb dtype=float16,float32 'doc_tokens=[4096]'
       kvb dtype=float16 'doc_tokens=[256]' ;;
    4) kvb dtype=float32 'doc_tokens=[256]'
       kvb model=smollm2 'doc_tokens=[8000]' ;;                     # SmolLM2 at its context
    5) kvb model=qwen2_5_0_5b 'doc_tokens=[16384]' ;;
    6) kvb model=qwen2_5_0_5b 'doc_tokens=[20000]' ;;               # Qwen's longest disjoint documents
    *) echo "usage: $0 [1-6]" >&2; exit 2 ;;
esac
tar czf "$OUT/exactness-${1:-1}.tgz" results/exactness  # one per part: a pair of parts writes two
