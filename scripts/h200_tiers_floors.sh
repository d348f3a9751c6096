#!/usr/bin/env bash
# H200 (carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/nvcomp): the storage tiers again
# through the fast reader, now that tier rows carry the device floors and efficiencies
# (issue 8), in parts that each fit one ~9-minute call; each writes under new/ (rows resume by
# point id: copy them over results/tiers/ folder by folder).
#   bash scripts/h200_tiers_floors.sh 1   # gpu and host, 1024 .. 32768
#   bash scripts/h200_tiers_floors.sh 2   # disk (cold, warm) and redis at 4096, 16384, 32768
#   bash scripts/h200_tiers_floors.sh 3   # wan, and int4-KIVI / nvCOMP ANS planes on disk, redis, wan
set -uo pipefail
source scripts/gpu_env.sh
TOK=model.tokenizer=wheelhouse/tokenizer
LONG='doc_tokens=[4096,16384,32768]'
KVB_DEADLINE=$((SECONDS + 540))
kvb() { kvb_run 0 +exp=tiers "$TOK" results_dir=new timing.warmup=1 timing.repeats=5 "$@"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
case "${1:?usage: h200_tiers_floors.sh 1|2|3}" in
    1) kvb tier=gpu,host ;;
    2) kvb tier=disk "$LONG"
       kvb tier=redis "$LONG" ;;
    3) kvb tier=wan tier.max_fetch_s=5
       kvb tier=disk,redis,wan codec=int4-kivi,nvcomp-ans-planes 'doc_tokens=[4096,32768]' tier.max_fetch_s=5 ;;
esac
python3 -m kvbench.crossover new/tiers
tar czf "$OUT/tiers-$1.tgz" new
