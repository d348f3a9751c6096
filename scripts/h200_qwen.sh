#!/usr/bin/env bash
# H200 (after scripts/h200_qwen_piece.sh for all eight pieces, machine still warm): the real
# Qwen2.5-Coder-0.5B's exactness in fp32, fp16 and bf16 at 1024 tokens over 32 documents, both
# readers (the headline part of conf/exp/exactness.yaml; scripts/h200_exactness_queue.sh runs the rest),
# then its bf16 KV's compressibility beside the entropy bounds, in what is left of the call.
set -uo pipefail
source scripts/gpu_env.sh || exit 1
quiet() { grep -v -E "it/s|s/it|━"; }
deadline=$((SECONDS + 560))
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -m kvbench.model_files qwen2_5_0_5b || exit 1
timeout 450 python3 -m kvbench +exp=exactness model=qwen2_5_0_5b 'doc_tokens=[1024]' 2>&1 | quiet
timeout $((deadline - SECONDS)) python3 -m kvbench +exp=compress model=qwen2_5_0_5b 'doc_tokens=[1024,4096]' 2>&1 | quiet
tar czf "$OUT/qwen.tgz" results/exactness results/compress
