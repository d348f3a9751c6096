#!/usr/bin/env bash
# H200 call E (next session; carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/nvcomp): the
# storage tiers that calls A-C did not re-measure with the fast reader: redis at 16k and 32k, the
# wan profiles, and the compressed KV (int4-KIVI, nvCOMP ANS on byte planes) on disk, redis and wan.
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━|Warning|warn\(" ; }
TOK=model.tokenizer=wheelhouse/tokenizer
timeout 120 python3 -m kvbench +exp=tiers tier=redis $TOK results_dir=new 'doc_tokens=[16384,32768]' \
    timing.warmup=1 timing.repeats=5 2>&1 | quiet
timeout 150 python3 -m kvbench +exp=tiers tier=wan $TOK results_dir=new tier.max_fetch_s=5 timing.warmup=1 \
    timing.repeats=5 2>&1 | quiet
timeout 280 python3 -m kvbench +exp=tiers tier=disk,redis,wan codec=int4-kivi,nvcomp-ans-planes $TOK results_dir=new \
    'doc_tokens=[4096,16384,32768]' tier.max_fetch_s=5 timing.warmup=1 timing.repeats=5 2>&1 | quiet
python3 -m kvbench.crossover new/tiers
tar czf "$OUT/e.tgz" new
