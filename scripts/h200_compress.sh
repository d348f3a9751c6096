#!/usr/bin/env bash
# H200 call 2 of 3 (carry: wheelhouse/model-b; call 1's files are still on the node): KV
# compressibility with the host and lossy codecs on real fp16 SmolLM2 KV and random-weight
# Qwen3-4B-shape bf16 KV (nvCOMP's points are recorded skipped here; call 3 measures them).
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━"; }
python3 -c "from kvbench.models import embedded_gguf_path; print(embedded_gguf_path())" || exit 1
timeout 170 python3 -m kvbench +exp=compress model=smollm2 dtype=float16 'doc_tokens=[1024,4096]' 2>&1 | quiet
timeout 250 python3 -m kvbench +exp=compress model=qwen3_4b_random model.tokenizer=wheelhouse/tokenizer \
    'doc_tokens=[1024,4096]' 2>&1 | quiet
tar czf "$OUT/compress.tgz" results/compress
