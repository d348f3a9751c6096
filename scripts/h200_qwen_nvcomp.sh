#!/usr/bin/env bash
# H200 (after scripts/h200_qwen_piece.sh for the first seven pieces; this call carries the eighth,
# and wheelhouse/base + nvcomp came in a call before): the real Qwen2.5-Coder-0.5B's KV through
# nvCOMP's on-device lossless codecs beside the entropy bounds, bf16 then fp16, one after the
# other (the rows time encode and decode, so nothing else shares the GPU).
set -uo pipefail
source scripts/gpu_env.sh || exit 1
KVB_DEADLINE=$((SECONDS + 300))
NVCOMP='compress.codecs=[identity,nvcomp-ans,nvcomp-zstd,nvcomp-gdeflate,nvcomp-bitcomp,nvcomp-cascaded,nvcomp-ans-planes,nvcomp-zstd-planes]'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -m kvbench.model_files qwen2_5_0_5b || exit 1
for dtype in bfloat16 float16; do
    kvb_run 150 +exp=compress model=qwen2_5_0_5b dtype=$dtype 'doc_tokens=[1024,4096]' "$NVCOMP"
done
tar czf "$OUT/qwen-nvcomp.tgz" results/compress
