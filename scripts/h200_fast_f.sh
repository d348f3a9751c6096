#!/usr/bin/env bash
# H200 call F (session 4; carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/nvcomp): what is
# left of issues 8 and 9 that fits one call, most important first, under one deadline:
#  1. many readers at 32k: shared at B = 256 (cut by call C's timeout) and a 1-token question
#     (a decode-like step) at 3774 and 32768, where the document's bytes, not the question's
#     attention FLOPs, dominate: the regime sharing is for;
#  2. the storage tiers not yet re-measured with the fast reader: redis at 16k and 32k, the wan
#     profiles, the compressed KV (int4-KIVI, nvCOMP ANS on byte planes) on disk, redis and wan.
# Writes under new/; copy each folder's rows into results/ (they resume by point id).
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━|Warning|warn\(" ; }
TOK=model.tokenizer=wheelhouse/tokenizer
deadline=$((SECONDS + 560))
kvb() {  # seconds-cap, then kvbench arguments; never past the call's deadline
    local cap=$1 left=$((deadline - SECONDS)); shift
    [ "$left" -lt 30 ] && { echo "skipped (deadline): $*"; return; }
    timeout $((cap < left ? cap : left)) python3 -m kvbench "$@" 2>&1 | quiet
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
kvb 70 +exp=throughput model=qwen3_4b_random $TOK results_dir=new 'doc_tokens=[32768]' \
    'throughput.methods=[shared]' 'throughput.batches=[256]'
kvb 110 +exp=throughput model=qwen3_4b_random $TOK results_dir=new timing.query_tokens=1 \
    'doc_tokens=[3774,32768]' 'throughput.batches=[1,4,16,64,256]'
kvb 80 +exp=tiers tier=redis $TOK results_dir=new 'doc_tokens=[16384,32768]' timing.warmup=1 timing.repeats=5
kvb 130 +exp=tiers tier=wan $TOK results_dir=new tier.max_fetch_s=5 timing.warmup=1 timing.repeats=5
kvb 200 +exp=tiers tier=disk,redis,wan codec=int4-kivi,nvcomp-ans-planes $TOK results_dir=new \
    'doc_tokens=[4096,32768]' tier.max_fetch_s=5 timing.warmup=1 timing.repeats=5
python3 -m kvbench.crossover new/tiers
tar czf "$OUT/f.tgz" new
