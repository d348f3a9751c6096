#!/usr/bin/env bash
# 2x H200 (carry: wheelhouse/base wheelhouse/tokenizer; set KVBENCH_GIT_SHA): one sweep, one job
# per document length through hydra/launcher=local_gpus, run on one GPU and then split over both.
#   bash scripts/h200x2_launcher.sh 1    # every job on GPU 0, one at a time
#   bash scripts/h200x2_launcher.sh 2    # the same jobs over GPUs 0 and 1; then compares the two
# Walls go to $OUT/walls.txt, the comparison to $OUT/compare.txt, rows + manifests to $OUT/*.tgz.
set -uo pipefail
GPUS=${1:?usage: h200x2_launcher.sh 1|2}
source scripts/gpu_env.sh
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
RUN=results/launcher/gpus$GPUS
start=$(date +%s.%N)
timeout 560 python3 -m kvbench +exp=sweep model=qwen3_4b_random model.tokenizer=wheelhouse/tokenizer \
    'doc_tokens=[1024],[2048],[4096],[8192],[16384]' timing.repeats=10 exactness.num_docs=4 \
    hydra/launcher=local_gpus hydra.launcher.gpus_per_node="$GPUS" results_dir="$RUN" 2>&1 \
    | grep -v -E "it/s|s/it|━"
echo "gpus=$GPUS rc=${PIPESTATUS[0]} wall_s=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")" | tee -a "$OUT/walls.txt"
tar czf "$OUT/launcher-gpus$GPUS.tgz" --exclude=.lock "$RUN"
[ "$GPUS" = 2 ] && [ -d results/launcher/gpus1 ] && python3 - <<'PY' | tee "$OUT/compare.txt"
from kvbench.results import load_rows
one, two = (load_rows([f"results/launcher/gpus{g}"]).set_index("point_id") for g in (1, 2))
both = one.join(two, lsuffix="_1gpu", rsuffix="_2gpu", how="inner")
exact = ["exact_fraction", "bitwise_twostage", "twostage_logits_bitwise", "first_token_agree"]
print(f"points: {len(one)} on one GPU, {len(two)} on two, {len(both)} in both")
for c in exact:
    print(f"{c} identical: {bool((both[c + '_1gpu'] == both[c + '_2gpu']).all())}")
cols = ["doc_tokens_1gpu", "prefill_ms_1gpu", "prefill_ms_2gpu", "reuse_graph_ms_1gpu", "reuse_graph_ms_2gpu"]
print(both[cols].sort_values("doc_tokens_1gpu").round(2).to_string())
PY
