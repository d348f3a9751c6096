#!/usr/bin/env bash
# 2x H200 (kind nvidia-h200-x2): two scripts at once in one call, one per GPU, so that one
# machine start and one call's device time buy two ~9-minute runs. Each script sees one GPU
# (CUDA_VISIBLE_DEVICES); its log goes to $OUT/gpu0.log or $OUT/gpu1.log. Pair runs that
# contend for nothing but the host's cores (a GPU-bound run beside another, or the GPU and host
# tiers beside disk and redis): each run's rows are timed on its own GPU.
#   bash scripts/h200x2_pair.sh "bash scripts/h200x2_launcher.sh 1" "bash scripts/h200_fast_d.sh"
set -uo pipefail
source scripts/gpu_env.sh || exit 1  # install the carried wheels once, before both scripts source it
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
CUDA_VISIBLE_DEVICES=0 bash -c "$1" > "$OUT/gpu0.log" 2>&1 &
CUDA_VISIBLE_DEVICES=1 bash -c "$2" > "$OUT/gpu1.log" 2>&1 &
wait
for log in "$OUT"/gpu0.log "$OUT"/gpu1.log; do echo "== $log"; tail -n 25 "$log"; done
