#!/usr/bin/env bash
# 2x H200 (kind nvidia-h200-x2; carry: wheelhouse/base wheelhouse/tokenizer; set KVBENCH_GIT_SHA):
# one sweep, one job per document length through hydra/launcher=local_gpus.
#   bash scripts/h200x2_launcher.sh kill   # over both GPUs: SIGKILL the whole sweep mid-way, run it
#                                          # again, and check that nothing was lost, duplicated or torn
#   bash scripts/h200x2_launcher.sh 1      # the same jobs on GPU 0 alone, then compared with the
#                                          # two-GPU rows (carry results/launcher back in first)
# Walls go to $OUT/walls.txt, checks to $OUT/check.txt and $OUT/compare.txt, rows + manifests to $OUT/*.tgz.
set -uo pipefail
MODE=${1:?usage: h200x2_launcher.sh kill|1}
source scripts/gpu_env.sh
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
LENGTHS='doc_tokens=[1024],[2048],[4096],[8192]'
sweep() {  # GPUS RUN_DIR [timeout args...]: the sweep through the launcher; prints its wall time
    local gpus=$1 run=$2 start; shift 2; start=$(date +%s.%N)
    setsid "$@" python3 -m kvbench +exp=sweep model=qwen3_4b_random model.tokenizer=wheelhouse/tokenizer \
        "$LENGTHS" timing.repeats=5 exactness.enabled=true exactness.num_docs=4 hydra/launcher=local_gpus \
        hydra.launcher.gpus_per_node="$gpus" results_dir="$run" 2>&1 | grep -v -E "it/s|s/it|━"
    echo "gpus=$gpus rc=${PIPESTATUS[0]} wall_s=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")" \
        | tee -a "$OUT/walls.txt"
}
case "$MODE" in
  kill)
    RUN=results/launcher/gpus2
    # timeout signals its own process group (setsid): the launcher and every job it started die
    sweep 2 "$RUN" timeout -s KILL 75
    python3 -c "from kvbench.results import load_rows; print('rows after the kill:', len(load_rows(['$RUN'])))" \
        | tee "$OUT/check.txt"
    sweep 2 "$RUN" timeout 420
    python3 - "$RUN" <<'PY' | tee -a "$OUT/check.txt"
import sys
from pathlib import Path
from kvbench.results import ResultStore, load_rows
rows = load_rows([sys.argv[1]])
print(f"rows: {len(rows)}; (point, reader) unique: {not rows.duplicated(['point_id', 'reader']).any()}; "
      f"statuses: {rows['status'].value_counts().to_dict()}")
print("lengths:", sorted(int(n) for n in rows["doc_tokens"].unique()), "x readers:", sorted(rows["reader"].unique()))
for folder in sorted({p.parent for p in Path(sys.argv[1]).rglob("manifest.json")}):
    for job in ResultStore(folder).manifests():  # which GPU ran each job, and whether it was the killed one
        print(folder.name, job.get("gpu_index"), [o for o in job.get("overrides", []) if "doc_tokens" in o],
              "killed" if job.get("end_time") is None else "finished")
PY
    tar czf "$OUT/launcher-kill.tgz" --exclude=.lock results/launcher ;;
  1)
    sweep 1 results/launcher/gpus1 timeout 540
    tar czf "$OUT/launcher-gpus1.tgz" --exclude=.lock results/launcher/gpus1
    [ -d results/launcher/gpus2 ] && python3 - <<'PY' | tee "$OUT/compare.txt"
from kvbench.results import load_rows
one, two = (load_rows([f"results/launcher/gpus{g}"]).set_index(["point_id", "reader"]) for g in (1, 2))
both = one.join(two, lsuffix="_1gpu", rsuffix="_2gpu", how="inner")
print(f"points: {len(one)} on one GPU, {len(two)} on two, {len(both)} in both")
for c in ["exact_fraction", "bitwise_twostage", "twostage_logits_bitwise", "first_token_agree"]:
    a, b = both[c + "_1gpu"], both[c + "_2gpu"]  # random weights: exactness is a determinism check here
    print(f"{c}:", "not measured" if a.isna().all() and b.isna().all() else
          f"identical: {bool(((a == b) | (a.isna() & b.isna())).all())}")
cols = ["doc_tokens_1gpu", "prefill_best_ms_1gpu", "prefill_best_ms_2gpu", "reuse_ms_1gpu", "reuse_ms_2gpu"]
print(both[cols].sort_values("doc_tokens_1gpu").round(2).to_string())
PY
    ;;
  *) echo "usage: $0 kill|1" >&2; exit 2 ;;
esac
