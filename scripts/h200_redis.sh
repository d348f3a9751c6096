#!/usr/bin/env bash
# H200 (carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/nvcomp): the redis tier's points
# that a 1 GB MULTI limit refused in h200_tiers.sh / h200_nvcomp.sh, resumed into the same run
# folders (points already ok are skipped).
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━"; }
timeout 150 python3 -m kvbench +exp=tiers model.tokenizer=wheelhouse/tokenizer tier=redis \
    timing.warmup=1 timing.repeats=3 2>&1 | quiet
timeout 100 python3 -m kvbench +exp=tiers model.tokenizer=wheelhouse/tokenizer tier=redis codec=int4-kivi,nvcomp-ans-planes \
    'doc_tokens=[4096,16384,32768]' timing.warmup=1 timing.repeats=3 2>&1 | quiet
tar czf "$OUT/redis.tgz" results/tiers
