#!/usr/bin/env bash
# H200 call B (carry: wheelhouse/model-b; call A's files are still on the node):
# the foundation sweep for SmolLM2 (real weights), then the storage tiers for the Qwen3-4B shape.
set -uo pipefail
source scripts/gpu_env.sh
python3 -c "from kvbench.models import embedded_gguf_path; print(embedded_gguf_path())" || exit 1
python3 -m kvbench +exp=sweep model=smollm2 timing.repeats=10 overwrite=true 2>&1 | grep -v -E "it/s|s/it|━"
python3 -m kvbench +exp=tiers model.tokenizer=wheelhouse/tokenizer 'doc_tokens=[1024,4096,16384,32768]' \
    timing.warmup=1 timing.repeats=3 tier.max_fetch_s=5 2>&1 | grep -v -E "it/s|s/it|━"
python3 -m kvbench.crossover results/tiers
tar czf "$OUT/b.tgz" results/sweep/model=smollm2 results/tiers
